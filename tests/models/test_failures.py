"""What staff are shown of the messages that did not reach their people: which rows, for
which reason, and which of them a new try can get through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, update

from gotong.bot.services import Services
from gotong.models.contact import Contact
from gotong.models.failures import reason_counts, retry, unreached, worth_retrying
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import OutboxMessage
from gotong.models.pledge import Pledge
from tests.models.aid_world import AidWorld

TIMUR, SELATAN = "Jakarta Timur", "Jakarta Selatan"
STUCK_AFTER = timedelta(minutes=30)


async def add_row(services: Services, contact_id: int, status: str, *, age: timedelta,
                  failure: str | None = None, failed: timedelta | None = None,
                  key: str | None = "notice.request_verified", error: str | None = None
                  ) -> int:
    world_now = AidWorld(services).now
    row: dict[str, Any] = {
        "contact_id": contact_id, "priority": 1, "essential": True, "message_key": key,
        "params": {}, "actions": [], "status": status, "attempts": 1, "parts_sent": 0,
        "next_attempt_at": world_now - age, "created_at": world_now - age,
        "failure": failure, "last_error": error,
        "failed_at": world_now - failed if failed is not None else None}
    async with services.sessions() as session, session.begin():
        return int((await session.execute(
            insert(OutboxMessage).returning(OutboxMessage.id), [row])).scalar_one())


async def contact_of(services: Services, model: type[HelpRequest] | type[Pledge],
                     row_id: int) -> int:
    async with services.sessions() as session:
        found = await session.get(model, row_id)
        assert found is not None
        return found.contact_id


async def test_staff_see_their_peoples_failures_with_the_ones_worth_a_new_try(
        services: Services) -> None:
    world = AidWorld(services)
    timur, selatan = await world.aggregator(TIMUR), await world.aggregator(SELATAN)
    request = await world.household(world.village(TIMUR))
    household = await contact_of(services, HelpRequest, request)
    pledge = await world.pledge(timur, 5)
    donor = await contact_of(services, Pledge, pledge)
    stranger = await contact_of(services, HelpRequest,
                                await world.household(world.village(SELATAN)))
    hour = timedelta(hours=1)
    rows = {
        "stuck": await add_row(services, household, "pending", age=2 * hour),
        "held": await add_row(services, household, "held", age=2 * hour),
        "gave_up": await add_row(services, household, "failed", age=hour,
                                 failure="gave_up", failed=hour),
        "blocked": await add_row(services, household, "skipped", age=hour,
                                 failure="unreachable", failed=hour, error="unreachable"),
        "refused": await add_row(services, household, "failed", age=hour,
                                 failure="refused", failed=hour),
        "reply": await add_row(services, household, "failed", age=hour, failure="gave_up",
                               failed=hour, key=None),
        "donor": await add_row(services, donor, "failed", age=hour, failure="unknown",
                               failed=2 * hour, key="notice.pledge_received"),
        "old": await add_row(services, household, "failed", age=40 * hour),
    }
    # Not listed: news just written, news outdated, another aggregator's household.
    await add_row(services, household, "pending", age=timedelta(minutes=5))
    await add_row(services, household, "skipped", age=hour, error="outdated")
    foreign = await add_row(services, stranger, "failed", age=hour, failure="gave_up",
                            failed=hour)
    now = world.now
    async with services.sessions() as session:
        listed = {row.row_id: row for row in await unreached(session, [timur], now,
                                                             STUCK_AFTER)}
        assert [r.row_id for r in await unreached(session, [selatan], now,
                                                  STUCK_AFTER)] == [foreign]
        assert await reason_counts(session, now, STUCK_AFTER, [timur]) == {
            "unreachable": 1, "refused": 1, "gave_up": 2, "unknown": 2, "stuck": 1,
            "held": 1}
        assert (await reason_counts(session, now, STUCK_AFTER))["gave_up"] == 3
    assert set(listed) == set(rows.values()) and foreign not in listed
    by_name = {name: listed[row_id] for name, row_id in rows.items()}
    reference = (await world.pledges([pledge]))[0].code
    assert (by_name["donor"].role, by_name["donor"].reference) == ("donor", reference)
    assert by_name["gave_up"].role == "household"
    assert by_name["gave_up"].reference.startswith("GT-")
    assert {name: row.reason for name, row in by_name.items()} == {
        "stuck": "stuck", "held": "held", "gave_up": "gave_up", "blocked": "unreachable",
        "refused": "refused", "reply": "gave_up", "donor": "unknown", "old": "unknown"}
    # Worth a new try: what failed for a passing or unknown cause, unless its text is gone.
    assert {name for name, row in by_name.items() if row.retry} == {"gave_up", "donor",
                                                                     "old"}

    async with services.sessions() as session, session.begin():
        assert (await retry(session, [selatan], rows["gave_up"], now, STUCK_AFTER))[1] == \
            "not theirs"
        assert (await retry(session, [timur], rows["blocked"], now, STUCK_AFTER))[1] == \
            "not worth it"
        assert (await retry(session, [timur], rows["gave_up"], now, STUCK_AFTER))[1] is None
    # The person who blocked the bot wrote again since: the news is worth a new try now.
    async with services.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == household)
                              .values(last_inbound_at=now - timedelta(minutes=1)))
        assert (await retry(session, [timur], rows["blocked"], now, STUCK_AFTER))[1] is None
        again = await session.get(OutboxMessage, rows["blocked"])
        assert again is not None
        assert (again.status, again.failure, again.attempts) == ("pending", None, 0)


def test_a_person_who_wrote_about_when_the_news_failed_is_worth_a_new_try() -> None:
    failed = datetime(2025, 3, 1, 12, 0, 30, 700_000, tzinfo=UTC)
    now = failed + timedelta(minutes=5)

    def worth(wrote: datetime | None) -> bool:
        return worth_retrying("unreachable", True, wrote, failed, now)

    # When they wrote is kept to the minute and dated to the second: "halo" sent in the
    # second the news failed, or stored as a minute before it, may have come after it.
    assert worth(failed.replace(microsecond=0))
    assert worth(failed - timedelta(seconds=50))
    assert worth(failed + timedelta(minutes=2))
    # Before that, and never, it may not.
    assert not worth(failed - timedelta(minutes=2))
    assert not worth(None)
    # A message the app will never take is not tried again, whenever they wrote.
    assert not worth_retrying("refused", True, now, failed, now)
