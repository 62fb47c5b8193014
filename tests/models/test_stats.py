"""Figures for the public page and the dashboard: requests and deliveries per local day,
per-area roll-up and drill-down, scoping, and the headline totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gotong.bot.services import Services
from gotong.models.allocation import Pick, allocate
from gotong.models.area import AreaLevel
from gotong.models.fulfilment import mark_delivered
from gotong.models.stats import AreaFigure, DayCount, area_figures, daily_counts, totals
from gotong.models.volunteer import NewVolunteer, register_volunteer
from tests.models.aid_world import AidWorld

TIMUR = "Jakarta Timur"
SELATAN = "Jakarta Selatan"
COOLDOWN = timedelta(days=14)
# 16:30 UTC is 23:30 in Jakarta (UTC+7): still the 3rd there.
LATE_ON_THE_3RD = datetime(2024, 5, 3, 16, 30, tzinfo=UTC)
EARLY_ON_THE_4TH = datetime(2024, 5, 3, 17, 30, tzinfo=UTC)


async def allocated(world: AidWorld, aggregator_id: int, request_id: int, quantity: int = 1,
                    category: str = "food_package", at: datetime | None = None) -> int:
    """Allocate to one household; the delivery's id."""
    async with world.services.sessions() as session, session.begin():
        outcome = await allocate(session, world.services.areas, aggregator_id, category,
                                 quantity, [Pick(request_id)], world.staff_id,
                                 at or world.now, COOLDOWN)
    assert outcome.refused == []
    return outcome.deliveries[0].id


async def delivered(world: AidWorld, aggregator_id: int, request_id: int, quantity: int = 1,
                    category: str = "food_package", at: datetime | None = None) -> int:
    delivery_id = await allocated(world, aggregator_id, request_id, quantity, category, at)
    async with world.services.sessions() as session, session.begin():
        await mark_delivered(session, world.services.areas, delivery_id, world.staff_id,
                             at or world.now)
    return delivery_id


def regency(services: Services, name: str) -> int:
    [entry] = services.areas.named(AreaLevel.REGENCY, name)
    return entry.id


async def test_days_are_local_days_and_every_day_is_present(services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    await world.pledge(aggregator, 5, received=5)
    late = await world.household(village, at=LATE_ON_THE_3RD)
    await world.household(village, at=EARLY_ON_THE_4TH)
    # 16:59 UTC on the 4th is 23:59 in Jakarta, still the 4th.
    await delivered(world, aggregator, late, at=datetime(2024, 5, 4, 16, 59, tzinfo=UTC))

    async with services.sessions() as session:
        jakarta = await daily_counts(session, since=date(2024, 5, 2), until=date(2024, 5, 5),
                                     timezone="Asia/Jakarta")
        utc = await daily_counts(session, since=date(2024, 5, 2), until=date(2024, 5, 5),
                                 timezone="UTC")
        one_day = await daily_counts(session, since=date(2024, 5, 4), until=date(2024, 5, 4),
                                     timezone="Asia/Jakarta")
        backwards = await daily_counts(session, since=date(2024, 5, 4),
                                       until=date(2024, 5, 3), timezone="Asia/Jakarta")

    assert jakarta == [DayCount(date(2024, 5, 2), 0, 0), DayCount(date(2024, 5, 3), 1, 0),
                       DayCount(date(2024, 5, 4), 1, 1), DayCount(date(2024, 5, 5), 0, 0)]
    assert utc == [DayCount(date(2024, 5, 2), 0, 0), DayCount(date(2024, 5, 3), 2, 0),
                   DayCount(date(2024, 5, 4), 0, 1), DayCount(date(2024, 5, 5), 0, 0)]
    assert one_day == [DayCount(date(2024, 5, 4), 1, 1)]
    assert backwards == []


async def test_days_scoped_by_kelurahan_and_by_aggregator(services: Services) -> None:
    world = AidWorld(services)
    east, south = await world.aggregator(TIMUR), await world.aggregator(SELATAN)
    east_village, south_village = world.village(TIMUR), world.village(SELATAN)
    await world.pledge(east, 5, received=5)
    await world.pledge(south, 5, received=5)
    at = datetime(2024, 6, 10, 3, 0, tzinfo=UTC)
    east_households = [await world.household(east_village, at=at) for _ in range(3)]
    south_household = await world.household(south_village, at=at)
    await delivered(world, east, east_households[0], at=at)
    await delivered(world, south, south_household, at=at)
    day = date(2024, 6, 10)

    async def counts(**scope: object) -> DayCount:
        async with services.sessions() as session:
            [count] = await daily_counts(session, since=day, until=day,
                                         timezone="Asia/Jakarta", **scope)  # type: ignore[arg-type]
        return count

    assert await counts() == DayCount(day, 4, 2)
    assert await counts(village_ids=[east_village]) == DayCount(day, 3, 1)
    assert await counts(village_ids=[south_village]) == DayCount(day, 1, 1)
    assert await counts(village_ids=[]) == DayCount(day, 0, 0)
    # Aggregators narrow deliveries only: a request is nobody's until allocated.
    assert await counts(aggregator_ids=[south]) == DayCount(day, 4, 1)
    assert await counts(village_ids=[east_village], aggregator_ids=[south]) == \
        DayCount(day, 3, 0)


@pytest.fixture
async def world(services: Services) -> AidWorld:
    """Jakarta Timur: one household helped (3 packages), one on its way, two waiting, one
    helped with money; Jakarta Selatan: one waiting. Pledges for Jakarta Timur, for a
    kecamatan of it, and for anywhere."""
    world = AidWorld(services)
    east, south = await world.aggregator(TIMUR), await world.aggregator(SELATAN)
    village = world.village(TIMUR)
    district = world.district_of(village)
    await world.pledge(east, 10, received=8, target_area_id=regency(services, TIMUR))
    await world.pledge(east, 4, received=3, target_area_id=district)
    await world.pledge(east, 2, received=2)
    await world.pledge(east, 500_000, received=400_000, category="money",
                       target_area_id=district)
    await world.pledge(east, 9)  # not received yet: not counted
    helped = await world.household(village)
    await delivered(world, east, helped, quantity=3)
    await allocated(world, east, await world.household(village))
    await world.household(village)
    await world.household(village, verified=False)
    await delivered(world, east, await world.household(village), quantity=150_000,
                    category="money")
    await world.household(world.village(SELATAN))
    await world.pledge(south, 1)
    return world


def figures(rows: list[AreaFigure]) -> dict[str, tuple[int | None, ...]]:
    return {row.name: (row.households_helped, row.households_waiting,
                       row.households_in_delivery, row.packages_delivered,
                       row.money_delivered, row.pledge_packages_received,
                       row.pledge_money_received) for row in rows}


async def test_figures_per_kota_roll_up_every_kelurahan(services: Services,
                                                         world: AidWorld) -> None:
    async with services.sessions() as session:
        rows = await area_figures(session, services.areas, AreaLevel.REGENCY)

    names = [row.name for row in rows]
    assert names == sorted(names)
    assert {r.name for r in services.areas.regencies()} == set(names)
    assert all(row.level == AreaLevel.REGENCY for row in rows)
    by_name = figures(rows)
    # helped, waiting, on the way, packages, rupiah, pledged packages, pledged rupiah.
    assert by_name.pop("Kota Jakarta Timur") == (2, 2, 1, 3, 150_000, 8 + 3, 400_000)
    assert by_name.pop("Kota Jakarta Selatan") == (0, 1, 0, 0, 0, 0, 0)
    assert set(by_name.values()) == {(0, 0, 0, 0, 0, 0, 0)}


async def test_drill_down_to_kecamatan_and_kelurahan(services: Services,
                                                     world: AidWorld) -> None:
    areas = services.areas
    village = world.village(TIMUR)
    district = world.district_of(village)
    async with services.sessions() as session:
        districts = await area_figures(session, areas, AreaLevel.DISTRICT,
                                       within=regency(services, TIMUR))
        villages = await area_figures(session, areas, AreaLevel.VILLAGE, within=district)
        all_districts = await area_figures(session, areas, AreaLevel.DISTRICT)

    assert [row.area_id for row in districts] == [
        d.id for d in sorted(areas.children(regency(services, TIMUR)),
                             key=lambda d: (d.name, d.id))]
    by_id = {row.area_id: row for row in districts}
    # The kecamatan has its own pledges, not those for the whole kota.
    assert figures([by_id.pop(district)]) == {
        by_id_name(services, district): (2, 2, 1, 3, 150_000, 3, 400_000)}
    assert {(r.households_helped, r.pledge_packages_received) for r in by_id.values()} == \
        {(0, 0)}
    assert {row.area_id for row in villages} == {v.id for v in areas.children(district)}
    helped, waiting, on_the_way, packages, money, pledged, pledged_money = figures(
        villages)[by_id_name(services, village)]
    assert (helped, waiting, on_the_way, packages, money) == (2, 2, 1, 3, 150_000)
    # Donors choose a kota or a kecamatan, never a kelurahan.
    assert pledged is None and pledged_money is None
    assert len(all_districts) == sum(len(areas.children(r.id)) for r in areas.regencies())
    assert sum(row.households_waiting for row in all_districts) == 3


def by_id_name(services: Services, area_id: int) -> str:
    entry = services.areas.get(area_id)
    assert entry is not None
    return entry.name


async def test_figures_scoped_to_kelurahan(services: Services, world: AidWorld) -> None:
    village = world.village(TIMUR)
    async with services.sessions() as session:
        rows = await area_figures(session, services.areas, AreaLevel.REGENCY,
                                  village_ids=[village])
        south = await area_figures(session, services.areas, AreaLevel.DISTRICT,
                                   village_ids=[world.village(SELATAN)])
        none = await area_figures(session, services.areas, AreaLevel.REGENCY, village_ids=[])

    assert figures(rows) == {"Kota Jakarta Timur": (2, 2, 1, 3, 150_000, 11, 400_000)}
    assert [(r.households_waiting, r.pledge_packages_received) for r in south] == [(1, 0)]
    assert none == []


async def test_a_level_or_parent_that_has_no_table_is_refused(services: Services) -> None:
    village = AidWorld(services).village(TIMUR)
    async with services.sessions() as session:
        with pytest.raises(ValueError):
            await area_figures(session, services.areas, AreaLevel.PROVINCE)
        with pytest.raises(ValueError):
            await area_figures(session, services.areas, AreaLevel.DISTRICT, within=village)
        with pytest.raises(ValueError):
            await area_figures(session, services.areas, AreaLevel.VILLAGE, within=-1)


async def test_totals(services: Services, world: AidWorld) -> None:
    aggregator = await world.aggregator("Jakarta Utara")
    approved, pending = await world.contact(), await world.contact()
    async with services.sessions() as session, session.begin():
        for contact in (approved, pending):
            await register_volunteer(session, contact, NewVolunteer(
                aggregator_id=aggregator, name="Relawan", phone="+6281200000000",
                area_ids=[], travel="foot", capacity=5, approved=contact == approved),
                world.now)
    async with services.sessions() as session:
        headline = await totals(session)

    assert headline.households_helped == 2
    assert headline.households_waiting == 3
    assert headline.households_in_delivery == 1
    assert headline.packages_delivered == 3
    assert headline.money_delivered == 150_000
    assert headline.kelurahan_reached == 1
    assert headline.pledges_received == 4
    assert headline.pledge_packages_received == 8 + 3 + 2
    assert headline.pledge_money_received == 400_000
    assert headline.aggregators == 3
    assert headline.volunteers == 1


async def test_an_empty_world_has_zero_figures(services: Services) -> None:
    async with services.sessions() as session:
        headline = await totals(session)
        rows = await area_figures(session, services.areas, AreaLevel.REGENCY)
    assert set(vars(headline).values()) == {0}
    assert {figures([row])[row.name] for row in rows} == {(0, 0, 0, 0, 0, 0, 0)}
