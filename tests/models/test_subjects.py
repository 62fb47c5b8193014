"""The check that keeps notices from going out stale, in the model: what a notice records
of its subject, how a digest gathers the subjects of its news, and the claim that reads
them all in one query."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.delivery import Delivery
from gotong.models.digest import MAX_SUBJECTS, Digest, send_digests
from gotong.models.notifications import RULES, STILL, Event
from gotong.models.outbox import About, Notice, OutboxMessage, OutboxStatus, enqueue
from gotong.models.sending import claim, release_held
from tests.bot.dispatch_harness import add_contacts
from tests.lookups import outbox
from tests.models.test_tasks import Mile

OPEN = "delivery.open_for_volunteers"
LEASE = timedelta(minutes=1)


def test_news_that_stays_true_once_it_happened_has_no_rule() -> None:
    final = {Event.REQUEST_CANCELLED, Event.REQUEST_REJECTED, Event.REQUEST_DELIVERED,
             Event.PLEDGE_RECEIVED, Event.PLEDGE_COMPLETED, Event.DISPUTE_DISMISSED,
             Event.DISPUTE_UPHELD, Event.TASK_CANCELLED, Event.TASK_REASSIGNED_AWAY}
    for event_, audiences in RULES.items():
        stills = {a.key: a.still for a in audiences}
        if event_ in final:
            assert set(stills.values()) == {None}, event_
    # The household's receipt of its request is always sent; staff's news of it is not.
    [receipt, queue] = RULES[Event.REQUEST_SUBMITTED]
    assert receipt.still is None and queue.still is not None
    assert {name.partition(".")[0] for name in STILL} == {
        "request", "delivery", "pledge", "volunteer", "conversation"}


async def test_a_notice_records_what_it_is_about(services: Services) -> None:
    mile = await Mile(services).setup(stock=1)
    volunteer = await mile.volunteer()
    [task] = await mile.deliveries(1)
    await mile.assign(task, volunteer)
    code = (await mile.get(task)).code
    [household, card] = [(r.still, r.subject_ids, r.subject_assignment) for r in
                         await outbox(services) if r.message_key in (
                             "notice.delivery_assigned", "notice.task_assigned")]
    assert household == ("delivery.with_the_volunteer_named", [task], code)
    assert card == ("delivery.assigned_to_them", [task], code)
    # News that stays true records nothing.
    [verified] = await outbox(services, "notice.request_verified")
    assert verified.still == "request.verified"
    [received] = await outbox(services, "notice.pledge_received")
    assert (received.still, received.subject_ids) == (None, None)


async def test_a_digest_gathers_the_subjects_of_its_news(services: Services) -> None:
    [contact] = await add_contacts(services, [950_001])
    now = utcnow()
    digest = Digest(contact_id=contact, topic="open_tasks", message_key="notice.tasks_open",
                    params={}, essential=True)
    digest.note(About(OPEN, (1,)))
    digest.changed_at = now
    digest.note(About(OPEN, (2, 1)))
    assert digest.about() == About(OPEN, (1, 2))
    # Once sent, the next news is of its own subjects only.
    digest.changed_at = None
    digest.note(About(OPEN, (3,)))
    digest.changed_at = now
    assert digest.about() == About(OPEN, (3,))
    # News of a subject without a rule, or of too many to keep, is always sent.
    digest.note(None)
    assert digest.about() is None
    digest.changed_at = None
    digest.note(About(OPEN, tuple(range(MAX_SUBJECTS))))
    digest.changed_at = now
    digest.note(About(OPEN, (MAX_SUBJECTS,)))
    assert digest.about() is None


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(services.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(services.engine.sync_engine, "before_cursor_execute", count)


async def test_the_claim_reads_every_subject_in_one_query(services: Services) -> None:
    mile = await Mile(services).setup(stock=3)
    tasks = await mile.deliveries(3)
    contacts = await add_contacts(services, range(951_001, 951_031))
    async with services.sessions() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status=OutboxStatus.SENT))
        now = utcnow()
        for n, contact in enumerate(contacts):
            # Some tell of one delivery, some (digests) of all three, one of a rule no
            # longer known: sent as before there were rules.
            ids = tuple(tasks) if n % 2 else (tasks[n % 3],)
            enqueue(session, Notice(contact_id=contact, key="notice.tasks_open", params={},
                                    about=About(OPEN if n else "delivery.gone", ids)), now)
        # The first delivery is taken back meanwhile.
        await session.execute(update(Delivery).where(Delivery.id == tasks[0])
                              .values(status="cancelled"))
    async with services.engine.connect() as connection, connection.begin():
        with statements(services) as seen:
            claimed, skipped = await claim(connection, ["telegram"], utcnow(), 100, LEASE,
                                           "test")
    # The rows (one walk of the index for those pending, one for those whose lease ran
    # out), their subjects, and one write each for the claimed and the skipped.
    assert len(seen) == 5, seen
    # Of one delivery each, those of the cancelled one are outdated (but the one whose
    # rule is unknown); those of all three still hold.
    stale = {c for n, c in enumerate(contacts) if n and n % 2 == 0 and n % 3 == 0}
    assert skipped == len(stale)
    assert {row.contact_id for row in claimed} == set(contacts) - stale
    rows = {r.contact_id: r for r in await outbox(services) if r.contact_id in stale}
    assert {(r.status, r.last_error) for r in rows.values()} == {("skipped", "outdated")}


async def test_news_held_for_whatsapps_window_is_checked_when_released(
        services: Services) -> None:
    mile = await Mile(services).setup(stock=1)
    volunteer = await mile.volunteer()
    [task] = await mile.deliveries(1)
    async with services.sessions() as session, session.begin():
        await send_digests(session, mile.now, timedelta(hours=1))
    contact = await mile.volunteer_contact(volunteer)
    [row] = await outbox(services, "notice.tasks_open")
    async with services.sessions() as session, session.begin():
        # Its template went out; the text waits for the person to write again.
        await session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id)
                              .values(status=OutboxStatus.HELD))
    await mile.assign(task, volunteer)  # meanwhile, the delivery was given to them
    async with services.engine.connect() as connection, connection.begin():
        assert await release_held(connection, contact, utcnow()) == 1
        claimed, skipped = await claim(connection, ["telegram"], utcnow(), 100, LEASE,
                                       "test")
    assert skipped >= 1 and row.id not in {c.id for c in claimed}
    async with services.sessions() as session:
        held = await session.scalar(select(OutboxMessage).where(OutboxMessage.id == row.id))
    assert held is not None and (held.status, held.last_error) == ("skipped", "outdated")


async def test_a_row_whose_subject_cannot_be_read_stops_no_claim(services: Services) -> None:
    """Subjects written by hand, or damaged: each such row is sent unchecked, and the rows
    behind it are claimed as ever (one odd row used to fail every claim)."""
    mile = await Mile(services).setup(stock=1)
    [task] = await mile.deliveries(1)
    odd: list[Any] = [5, "12", [None], [1, None], ["1"], {"a": 1}, [True]]
    contacts = await add_contacts(services, range(952_001, 952_002 + len(odd)))
    async with services.sessions() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status=OutboxStatus.SENT))
        now = utcnow()
        rows = [enqueue(session, Notice(contact_id=contact, key="notice.tasks_open",
                                        params={}, about=About(OPEN, (task,))), now)
                for contact in contacts]
        await session.flush()
        for row, value in zip(rows, odd, strict=False):
            row.subject_ids = value
    async with services.engine.connect() as connection, connection.begin():
        claimed, skipped = await claim(connection, ["telegram"], utcnow(), 100, LEASE, "test")
    assert skipped == 0
    assert {row.contact_id for row in claimed} == set(contacts)


async def test_many_subjects_are_read_in_parts(services: Services) -> None:
    """More subject ids than one statement may carry (large digests in a large batch:
    PostgreSQL takes 32,767 parameters at most, some SQLite builds 999)."""
    mile = await Mile(services).setup(stock=2)
    tasks = await mile.deliveries(2)
    contacts = await add_contacts(services, range(953_001, 953_331))
    many = (*tasks, *range(10_000_000, 10_000_000 + MAX_SUBJECTS - 2))
    async with services.sessions() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status=OutboxStatus.SENT))
        now = utcnow()
        for contact in contacts:
            enqueue(session, Notice(contact_id=contact, key="notice.tasks_open", params={},
                                    about=About(OPEN, many)), now)
        for contact in contacts[:3]:
            enqueue(session, Notice(contact_id=contact, key="notice.tasks_open", params={},
                                    about=About(OPEN, (999_999_999,))), now)
    async with services.engine.connect() as connection, connection.begin():
        claimed, skipped = await claim(connection, ["telegram"], utcnow(), 400, LEASE, "test")
    # Each of the 330 tells of open deliveries (still open); the 3 of one that is gone
    # wait behind them, their contacts' first rows being claimed.
    assert len(claimed) == len(contacts) and skipped == 0
