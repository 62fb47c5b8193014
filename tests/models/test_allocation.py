"""Allocation: priority order, exact quantities per pledge and stock, the cool-down across
aggregators, donors' target areas, and concurrent allocations that never overdraw."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gotong.bot.services import Services
from gotong.models.allocation import Allocated, Pick, allocate, propose
from gotong.models.area import AreaLevel
from gotong.models.db import create_engine, create_session_factory
from gotong.models.delivery import Delivery, DeliverySource
from gotong.models.digest import Digest, send_digests
from gotong.models.fulfilment import mark_delivered
from gotong.models.outbox import OutboxMessage
from gotong.models.pledge import Pledge, PledgeStatus
from gotong.models.request_status import RequestStatus
from gotong.models.rules import NotAllowed
from gotong.models.stock import StockItem, cancel_pledge, receive_pledge
from gotong.models.volunteer import NewVolunteer, register_volunteer
from tests.lookups import outbox
from tests.models.aid_world import AidWorld

COOLDOWN = timedelta(days=14)
TIMUR = "Jakarta Timur"


async def _allocate(world: AidWorld, aggregator_id: int, request_ids: list[int],
                    per_household: int = 1, reasons: dict[int, str] | None = None,
                    days_later: int = 0) -> Allocated:
    reasons = reasons or {}
    async with world.services.sessions() as session, session.begin():
        return await allocate(session, world.services.areas, aggregator_id, "food_package",
                              per_household, [Pick(r, reasons.get(r)) for r in request_ids],
                              world.staff_id, world.now + timedelta(days=days_later), COOLDOWN)


async def _proposal(world: AidWorld, aggregator_id: int, kota: str, days_later: int = 0
                    ) -> list[int]:
    areas = world.services.areas
    [regency] = areas.named(AreaLevel.REGENCY, kota)
    villages = areas.villages_under([regency.id])
    async with world.services.sessions() as session:
        proposed = await propose(session, villages, 10,
                                 world.now + timedelta(days=days_later), COOLDOWN)
    return [r.id for r in proposed]


async def test_stock_goes_by_priority_and_quantities_add_up_per_pledge(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    small = await world.household(village, size=1)
    large = await world.household(village, size=6, vulnerabilities=("elderly",))
    middle = await world.household(village, size=4)
    first = await world.pledge(aggregator, 4, received=3)
    second = await world.pledge(aggregator, 5, received=2)
    assert await world.stock(aggregator) == 5

    assert await _proposal(world, aggregator, TIMUR) == [large, middle, small]
    outcome = await _allocate(world, aggregator, [large, middle, small], per_household=2)

    assert [d.request_id for d in outcome.deliveries] == [large, middle]
    assert outcome.refused == [(small, "no_stock")]
    # Oldest pledge first: the large household takes 2 of the first pledge, the middle
    # one the last of the first and 1 of the second.
    assert [[(s.pledge_id, s.quantity) for s in d.sources] for d in outcome.deliveries] == [
        [(first, 2)], [(first, 1), (second, 1)]]
    pledges = await world.pledges([first, second])
    assert [(p.received_quantity, p.allocated_quantity) for p in pledges] == [(3, 3), (2, 1)]
    assert await world.stock(aggregator) == 1
    assert await world.statuses([large, middle, small]) == ["allocated", "allocated",
                                                           "verified"]
    # Allocated households leave the proposal; the one left waits for stock.
    assert await _proposal(world, aggregator, TIMUR) == [small]


@pytest.mark.parametrize("same", ["nik", "phone", "name_address"])
async def test_a_household_served_by_another_aggregator_waits_out_the_cooldown(
        services: Services, same: str) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator("Jakarta Selatan")
    await world.pledge(timur, 5, received=5)
    await world.pledge(selatan, 5, received=5)
    # Two registrations of one household, one in each aggregator's area (it moved), that
    # share only one of NIK, phone, or name and address.
    shared = {"nik": {"nik": "3171234508900001"}, "phone": {"phone": "+6281377778888"},
              "name_address": {"name": "Siti Aminah", "street": "Jl. Melati 5"}}[same]
    village_timur = world.village(TIMUR)
    here = await world.household(village_timur, **shared)  # type: ignore[arg-type]
    if same == "name_address":
        # The same name and address can only be the same kelurahan: a second aggregator
        # covering it serves it here.
        there = await world.household(village_timur, name="Siti Aminah",
                                      street="Jl. Melati 5")
        other = timur
    else:
        there = await world.household(world.village("Jakarta Selatan"),
                                      **shared)  # type: ignore[arg-type]
        other = selatan
    served = await _allocate(world, timur, [here])
    assert [d.request_id for d in served.deliveries] == [here]

    assert there not in await _proposal(world, other, "Jakarta Selatan"
                                        if other == selatan else TIMUR)
    refused = await _allocate(world, other, [there])
    assert refused.deliveries == [] and refused.refused == [(there, "cooldown")]
    # After the cool-down it is proposed again ...
    assert there in await _proposal(world, other, "Jakarta Selatan" if other == selatan
                                    else TIMUR, days_later=15)
    # ... and before it, staff can override with a reason, which is kept.
    overridden = await _allocate(world, other, [there], reasons={there: "flood victims"})
    assert [(d.request_id, d.override_reason) for d in overridden.deliveries] == [
        (there, "flood victims")]


async def test_stock_pledged_for_another_area_is_not_given_here(services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    here, elsewhere = world.village(TIMUR, 0), world.village(TIMUR, 1)
    household = await world.household(here)
    targeted = await world.pledge(aggregator, 3, received=3,
                                  target_area_id=world.district_of(elsewhere))
    outcome = await _allocate(world, aggregator, [household])
    assert outcome.refused == [(household, "no_stock_for_area")]
    assert await world.stock(aggregator) == 3
    assert await world.statuses([household]) == ["verified"]
    # A pledge for anywhere serves it, and the targeted one is left for its area.
    anywhere = await world.pledge(aggregator, 1, received=1)
    outcome = await _allocate(world, aggregator, [household])
    assert [[s.pledge_id for s in d.sources] for d in outcome.deliveries] == [[anywhere]]
    assert [p.allocated_quantity for p in await world.pledges([targeted, anywhere])] == [0, 1]


async def test_concurrent_allocations_never_take_more_than_the_stock(
        services: Services, database_url: str) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    households = [await world.household(village) for _ in range(12)]
    pledge = await world.pledge(aggregator, 7, received=7)
    # Four staff members' processes, each with its own engine, allocate at once: three
    # pick households of their own, and every one of them also picks the first household.
    engines = [create_engine(database_url) for _ in range(4)]
    try:
        async def staff(index: int) -> Allocated:
            sessions = create_session_factory(engines[index])
            picks = [households[0], *households[1 + 3 * index: 4 + 3 * index]]
            async with sessions() as session, session.begin():
                return await allocate(session, services.areas, aggregator, "food_package", 1,
                                      [Pick(r) for r in picks], world.staff_id, world.now,
                                      COOLDOWN)

        outcomes = await asyncio.gather(*(staff(i) for i in range(4)))
    finally:
        for engine in engines:
            await engine.dispose()
    delivered = [d.request_id for o in outcomes for d in o.deliveries]
    assert len(delivered) == 7 == len(set(delivered))
    assert households[0] in delivered
    async with services.sessions() as session:
        stock = await session.scalar(select(StockItem.quantity))
        rows = await session.scalar(select(func.count()).select_from(Delivery))
        drawn = await session.scalar(select(func.sum(DeliverySource.quantity)))
        allocated = await session.scalar(select(Pledge.allocated_quantity)
                                         .where(Pledge.id == pledge))
    assert (stock, rows, drawn, allocated) == (0, 7, 7, 7)
    assert (await world.statuses(households)).count(RequestStatus.ALLOCATED) == 7


async def test_a_donor_hears_progress_once_per_interval(services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    households = [await world.household(village) for _ in range(3)]
    await world.pledge(aggregator, 3, received=3)
    for household in households[:2]:
        await _allocate(world, aggregator, [household])

    async def digests(minutes: int) -> list[OutboxMessage]:
        async with services.sessions() as session, session.begin():
            await send_digests(session, world.now + timedelta(minutes=minutes),
                               timedelta(hours=1))
        return await outbox(services, "notice.pledge_progress")

    [progress] = await digests(1)
    # Two allocations, one message, with the totals of the moment it was written.
    assert (progress.params["allocated"], progress.params["households"],
            progress.params["received"]) == (2, 2, 3)
    await _allocate(world, aggregator, [households[2]])
    assert len(await digests(30)) == 1  # within the hour: kept for later
    later = await digests(61)
    assert [m.params["allocated"] for m in later] == [2, 3]
    assert len(await digests(200)) == 2  # nothing new, nothing sent
    async with services.sessions() as session:
        [digest] = (await session.scalars(select(Digest))).all()
    assert digest.changed_at is None


async def test_a_pledge_is_received_once_and_only_its_donor_cancels_it(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    received = await world.pledge(aggregator, 5, received=4)
    waiting = await world.pledge(aggregator, 5)
    async with services.sessions() as session, session.begin():
        pledge = await session.get(Pledge, received)
        assert pledge is not None
        with pytest.raises(NotAllowed):
            await receive_pledge(session, pledge, 4, world.staff_id, world.now)
        with pytest.raises(NotAllowed):
            await cancel_pledge(session, pledge, pledge.contact_id, world.now)
        other = await session.get(Pledge, waiting)
        assert other is not None
        with pytest.raises(NotAllowed):
            await cancel_pledge(session, other, world.staff_id, world.now)
        await cancel_pledge(session, other, other.contact_id, world.now)
    assert [p.status for p in await world.pledges([received, waiting])] == [
        PledgeStatus.RECEIVED, PledgeStatus.CANCELLED]
    assert await world.stock(aggregator) == 4


async def test_the_donor_hears_all_delivered_when_the_last_unit_arrives(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    households = [await world.household(village) for _ in range(2)]
    pledge = await world.pledge(aggregator, 2, received=2)
    outcome = await _allocate(world, aggregator, households)
    deliveries = [d.id for d in outcome.deliveries]

    async def keys() -> list[str]:
        return [m.message_key or "" for m in await outbox(services)]

    before = await keys()
    async with services.sessions() as session, session.begin():
        await mark_delivered(session, services.areas, deliveries[0], world.staff_id,
                             world.now)
    assert (await keys())[len(before):] == ["notice.request_delivered"]
    async with services.sessions() as session, session.begin():
        await mark_delivered(session, services.areas, deliveries[1], world.staff_id,
                             world.now)
        with pytest.raises(NotAllowed):
            await mark_delivered(session, services.areas, deliveries[1], world.staff_id,
                                 world.now)
    assert (await keys())[len(before) + 1:] == ["notice.request_delivered",
                                                "notice.pledge_completed"]
    async with services.sessions() as session:
        completed = await session.scalar(select(OutboxMessage).where(
            OutboxMessage.message_key == "notice.pledge_completed"))
    assert completed is not None
    place = services.areas.get(village)
    assert place is not None
    assert (completed.params["delivered"], completed.params["households"],
            completed.params["kelurahan"]) == (2, 2, place.name)
    # The progress news still waiting for its interval is not sent after "all delivered".
    async with services.sessions() as session, session.begin():
        assert await send_digests(session, world.now + timedelta(days=1),
                                  timedelta(hours=1)) == 0
    [done] = await world.pledges([pledge])
    assert (done.received_quantity, done.allocated_quantity, done.delivered_quantity) == (
        2, 2, 2)
    assert await world.statuses(households) == ["delivered", "delivered"]


async def test_volunteers_of_the_area_hear_of_new_deliveries_in_a_digest(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator("Jakarta Selatan")
    village = world.village(TIMUR)
    households = [await world.household(village) for _ in range(2)]
    await world.pledge(timur, 2, received=2)
    volunteers = {}
    for name, aggregator, area, status in (
            ("near", timur, world.district_of(village), True),
            ("elsewhere", timur, world.district_of(world.village(TIMUR, 1)), True),
            ("other organisation", selatan, world.district_of(village), True),
            ("not approved", timur, world.district_of(village), False)):
        contact_id = await world.contact()
        async with services.sessions() as session, session.begin():
            await register_volunteer(session, contact_id, NewVolunteer(
                aggregator_id=aggregator, name=name, phone="+6281200000000",
                area_ids=[area], travel="motorbike", capacity=5, approved=status),
                world.now)
        volunteers[name] = contact_id
    await _allocate(world, timur, households)
    async with services.sessions() as session, session.begin():
        await send_digests(session, world.now, timedelta(hours=1))
    told = [m.contact_id for m in await outbox(services, "notice.tasks_open")]
    # Two deliveries, one message, to the one approved volunteer of that organisation
    # who covers the kecamatan.
    assert list(told) == [volunteers["near"]]
