"""Volunteers' news (deliveries open in their area, a task given to them, a task given to
someone else) goes through the outbox and reaches them in order, within Telegram's flood
limits, however many changes a busy staff member makes at once; a task card of a task
given to someone else before it went out is not sent."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.contact import Contact
from gotong.models.delivery import Delivery
from gotong.models.digest import send_digests
from gotong.models.volunteer import Volunteer
from tests.bot.dispatch_harness import DispatchUnderTest, dispatch_config, wait_settled
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.lookups import outbox
from tests.models.test_tasks import Mile

# Limits scaled up from Telegram's (1/s per chat, 30/s overall) so that the test takes
# seconds; the dispatcher is told the same limits the fake enforces.
PER_CHAT = 10.0
OVERALL = 25.0
TASKS = 12
REASSIGNED = 6

OPEN = "Ada pengantaran baru yang menunggu relawan"
ASSIGNED = "Tugas antar baru"
TAKEN_AWAY = "sudah diberikan kepada relawan lain"
VOLUNTEERS_NEWS = ("notice.tasks_open", "notice.task_assigned", "notice.task_reassigned")


async def chat_of(services: Services, volunteer_id: int) -> int:
    async with services.sessions() as session:
        chat_id = await session.scalar(
            select(Contact.chat_id).join(Volunteer, Volunteer.contact_id == Contact.id)
            .where(Volunteer.id == volunteer_id))
    assert chat_id is not None
    return int(chat_id)


def kinds(texts: list[str]) -> list[str]:
    """Each text as the kind of news it is (or itself, when it is none of them)."""
    return [next((kind for kind in (OPEN, ASSIGNED, TAKEN_AWAY) if kind in text), text)
            for text in texts]


async def test_task_news_goes_through_the_outbox_in_order_within_the_limits(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    mile = await Mile(services).setup(stock=TASKS + 1)
    first = await mile.volunteer()
    second = await mile.volunteer("Sari Dewi")
    # One delivery stays open: the news of open deliveries still holds when it goes out.
    *tasks, _ = await mile.deliveries(TASKS + 1)
    # The news of open deliveries waits in a digest until the dispatcher's minute pass
    # writes it to the outbox.
    async with services.sessions() as session, session.begin():
        assert await send_digests(session, mile.now, timedelta(hours=1)) >= 2
    # A busy moment: every task to the first volunteer, then half of them, locked after
    # wrong codes, given to the second.
    for task in tasks:
        await mile.assign(task, first)
    async with services.sessions() as session, session.begin():
        for task in tasks[:REASSIGNED]:
            delivery = await session.get(Delivery, task)
            assert delivery is not None
            delivery.locked = True
    for task in tasks[:REASSIGNED]:
        await mile.assign(task, second)

    async with services.sessions() as session, session.begin():
        staff = await session.get(Contact, mile.world.staff_id)
        assert staff is not None
        staff.chat_id = "990001"  # a Telegram chat, as every contact of a real bot

    fake.enforce_rate_limits(per_chat_per_second=PER_CHAT, overall_per_second=OVERALL)
    dispatch = DispatchUnderTest(services, dispatch_config(
        config, fake, messages_per_second=OVERALL, chat_messages_per_second=PER_CHAT))
    await dispatch.start()
    try:
        counts = await wait_settled(services, within=60)
    finally:
        await dispatch.stop()

    assert set(counts) == {"sent", "skipped"}
    assert len(fake.all_messages()) == counts["sent"]
    assert fake.rate_limit_violations == 0
    # The first volunteer's cards of the tasks given to the second before they went out
    # are outdated: only that they were taken away reaches them.
    assert kinds(fake.texts(await chat_of(services, first))) == (
        [OPEN] + [ASSIGNED] * (TASKS - REASSIGNED) + [TAKEN_AWAY] * REASSIGNED)
    assert kinds(fake.texts(await chat_of(services, second))) == (
        [OPEN] + [ASSIGNED] * REASSIGNED)
    # Every message the volunteers got is an outbox row, settled as sent.
    rows = await outbox(services)
    keys = [r.message_key for r in rows if r.status == "sent"]
    assert sorted(k for k in keys if k and k.startswith(("notice.task", "notice.tasks"))) == (
        ["notice.task_assigned"] * TASKS
        + ["notice.task_reassigned"] * REASSIGNED + ["notice.tasks_open"] * 2)
    assert [(r.message_key, r.last_error) for r in rows if r.status == "skipped"
            and r.message_key in VOLUNTEERS_NEWS] == [
        ("notice.task_assigned", "outdated")] * REASSIGNED
