"""The figures' counters (models/figures.py) against a full recount: after every step of a
varied history (requests on both sides of a local midnight, verification, allocation,
delivery, statuses going back, two deliveries of one household changed by one statement,
money, erasure of a household, rows deleted), what the pages read from the counters is
what counting every request and delivery gives; and counting afresh (the migration's
fill) gives the counters the triggers kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text

from gotong.bot.services import Services
from gotong.models.delivery import Delivery
from gotong.models.erasure import erase_person
from gotong.models.figures import VillageDayFigures, VillageFigures, clock_zone, refill_async
from gotong.models.help_request import HelpRequest
from gotong.models.stats import (
    daily_counts,
    daily_counts_by_village,
    recount_daily_counts,
    recount_daily_counts_by_village,
    recount_village_sums,
    village_sums,
)
from tests.models.aid_world import AidWorld
from tests.models.test_stats import SELATAN, TIMUR, allocated, delivered

ZONE = "Asia/Jakarta"
SINCE, UNTIL = date(2024, 5, 1), date(2024, 5, 8)
# 16:59:59 UTC is 23:59:59 in Jakarta on the 3rd; 17:00 UTC is midnight of the 4th there.
BEFORE_MIDNIGHT = datetime(2024, 5, 3, 16, 59, 59, tzinfo=UTC)
AT_MIDNIGHT = datetime(2024, 5, 3, 17, 0, tzinfo=UTC)


async def assert_counters_match(services: Services, aggregator_ids: list[int],
                                villages: list[int]) -> None:
    """Every figure the pages read from the counters equals a recount."""
    async with services.sessions() as session:
        assert await clock_zone(session) == ZONE
        assert await village_sums(session) == await recount_village_sums(session)
        assert await daily_counts_by_village(session, since=SINCE, until=UNTIL,
                                             timezone=ZONE) == \
            await recount_daily_counts_by_village(session, since=SINCE, until=UNTIL,
                                                  timezone=ZONE)
        for scope in ({}, {"village_ids": villages}, {"aggregator_ids": aggregator_ids[:1]},
                      {"village_ids": villages[:1], "aggregator_ids": aggregator_ids}):
            assert await daily_counts(session, since=SINCE, until=UNTIL, timezone=ZONE,
                                      **scope) == \
                await recount_daily_counts(session, since=SINCE, until=UNTIL, timezone=ZONE,
                                           **scope)  # type: ignore[arg-type]


async def counters(services: Services) -> tuple[set[tuple[object, ...]], ...]:
    """The counters' rows that hold something (a count gone back to 0 keeps its row)."""
    async with services.sessions() as session:
        villages = {tuple(row) for row in (await session.execute(select(
            VillageFigures.village_id, VillageFigures.waiting, VillageFigures.in_delivery,
            VillageFigures.helped, VillageFigures.packages, VillageFigures.money))).all()
            if any(row[1:])}
        days = {tuple(row) for row in (await session.execute(select(
            VillageDayFigures.village_id, VillageDayFigures.day,
            VillageDayFigures.aggregator_id, VillageDayFigures.requested,
            VillageDayFigures.delivered))).all() if any(row[3:])}
    return villages, days


async def execute(services: Services, statement: str, **parameters: object) -> None:
    async with services.sessions() as session, session.begin():
        await session.execute(text(statement), parameters)


async def test_counters_equal_a_recount_through_a_varied_history(services: Services) -> None:
    world = AidWorld(services)
    east, south = await world.aggregator(TIMUR), await world.aggregator(SELATAN)
    await world.pledge(east, 20, received=20)
    await world.pledge(south, 5, received=5)
    village, other_village, south_village = (world.village(TIMUR), world.village(TIMUR, 1),
                                             world.village(SELATAN))
    scope = ([east, south], [village, other_village, south_village])
    await assert_counters_match(services, *scope)

    # Requests either side of midnight in Jakarta, one left submitted.
    late = await world.household(village, at=BEFORE_MIDNIGHT)
    early = await world.household(village, at=AT_MIDNIGHT)
    waiting = await world.household(other_village, at=AT_MIDNIGHT, verified=False)
    southern = await world.household(south_village, at=BEFORE_MIDNIGHT)
    await assert_counters_match(services, *scope)

    # Delivered either side of midnight, by two aggregators; one only allocated.
    first = await delivered(world, east, late, quantity=3, at=BEFORE_MIDNIGHT)
    await delivered(world, east, early, quantity=2, at=AT_MIDNIGHT)
    await delivered(world, south, southern, at=AT_MIDNIGHT + timedelta(days=1))
    await allocated(world, east, await world.household(other_village, at=AT_MIDNIGHT))
    await assert_counters_match(services, *scope)

    # A second delivery of a household already helped, in money: helped once.
    async with services.sessions() as session, session.begin():
        session.add(Delivery(request_id=late, aggregator_id=east, category="money",
                             quantity=150_000, status="delivered", delivered_at=AT_MIDNIGHT,
                             created_at=AT_MIDNIGHT, updated_at=AT_MIDNIGHT))
    await assert_counters_match(services, *scope)

    # Statuses going back: both deliveries of that household failed by one statement,
    # then one delivered again; a request back to submitted, then verified again.
    await execute(services, "UPDATE delivery SET status = 'failed' WHERE request_id = :id",
                  id=late)
    await assert_counters_match(services, *scope)
    await execute(services, "UPDATE delivery SET status = 'delivered' WHERE id = :id",
                  id=first)
    await execute(services, "UPDATE help_request SET status = 'submitted' WHERE id = :id",
                  id=early)
    await assert_counters_match(services, *scope)
    await execute(services, "UPDATE help_request SET status = 'verified' WHERE id = :id",
                  id=early)
    # A request moved to another kelurahan and to the other side of midnight.
    await execute(services, "UPDATE help_request SET village_id = :village, created_at = "
                  "created_at WHERE id = :id", village=south_village, id=waiting)
    await assert_counters_match(services, *scope)

    # Erasure of households: one helped, one with aid allocated (taken back into stock).
    async with services.sessions() as session:
        contacts = dict((await session.execute(select(HelpRequest.id, HelpRequest.contact_id)
                                                .where(HelpRequest.id.in_([late, early]))))
                        .all())
    for request_id in (late, early):
        async with services.sessions() as session, session.begin():
            await erase_person(session, services.areas, contacts[request_id],
                               AT_MIDNIGHT + timedelta(days=2))
        await assert_counters_match(services, *scope)

    # Rows deleted (as the demo's reset does): a delivery, then its request.
    async with services.sessions() as session:
        delivery = (await session.scalars(select(Delivery).where(
            Delivery.request_id == southern))).one()
    await execute(services, "DELETE FROM delivery_source WHERE delivery_id = :id",
                  id=delivery.id)
    await execute(services, "DELETE FROM delivery WHERE id = :id", id=delivery.id)
    await assert_counters_match(services, *scope)

    # Counting afresh, as migration 0026 does, gives the counters the triggers kept.
    kept = await counters(services)
    async with services.engine.begin() as connection:
        await refill_async(connection, ZONE)
    assert await counters(services) == kept
    await assert_counters_match(services, *scope)


async def test_a_zone_other_than_the_counters_is_counted_from_the_rows(
        services: Services) -> None:
    world = AidWorld(services)
    await world.household(world.village(TIMUR), at=BEFORE_MIDNIGHT, verified=False)
    async with services.sessions() as session:
        [utc] = await daily_counts(session, since=date(2024, 5, 3), until=date(2024, 5, 3),
                                   timezone="UTC")
        [jakarta] = await daily_counts(session, since=date(2024, 5, 3),
                                       until=date(2024, 5, 3), timezone=ZONE)
    assert (utc.requests, jakarta.requests) == (1, 1)
    # Kept in UTC from now on: the counters are counted again, and agree.
    async with services.engine.begin() as connection:
        await refill_async(connection, "UTC")
    async with services.sessions() as session:
        assert await clock_zone(session) == "UTC"
        assert await daily_counts_by_village(session, since=SINCE, until=UNTIL,
                                             timezone="UTC") == \
            await recount_daily_counts_by_village(session, since=SINCE, until=UNTIL,
                                                  timezone="UTC")
