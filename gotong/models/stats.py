"""Figures for the public page and the staff dashboard: counts and sums, never a person.

Every function here returns numbers per day or per area and nothing that names, reaches
or identifies a household, a donor or a volunteer.

Per-area figures are aggregated in SQL per kelurahan (a GROUP BY on `village_id`) and rolled
up to kecamatan and kota with the in-memory area directory: the database has no area
hierarchy to join on, and the directory already knows every kelurahan's parents.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Select, case, cast, distinct, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.aggregator import Aggregator
from gotong.models.area import AreaDirectory, AreaEntry, AreaLevel
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.figures import VillageDayFigures, VillageFigures, clock_zone
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge, PledgeStatus
from gotong.models.request_status import RequestStatus
from gotong.models.volunteer import Volunteer, VolunteerStatus

DEFAULT_TIMEZONE = "Asia/Jakarta"
# Money is counted in rupiah; every other category in packages or items, which can be
# added up. The two are never summed together.
MONEY = "money"
# Waiting: asked (submitted) or checked by staff (verified), nothing allocated yet.
WAITING_STATUSES = (RequestStatus.SUBMITTED, RequestStatus.VERIFIED)
# Aid is allocated and on its way, or a delivery failed and staff are deciding.
IN_DELIVERY_STATUSES = (RequestStatus.ALLOCATED, RequestStatus.OUT_FOR_DELIVERY,
                        RequestStatus.FAILED)
# The levels a table of figures can list; below the province, which is the whole scope.
TABLE_LEVELS = (AreaLevel.REGENCY, AreaLevel.DISTRICT, AreaLevel.VILLAGE)

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class DayCount:
    """Help requests submitted and deliveries confirmed delivered on one local day."""

    day: date
    requests: int
    deliveries: int


@dataclass(frozen=True)
class AreaFigure:
    """What happened in one kota, kecamatan or kelurahan.

    `households_helped` counts requests that received at least one delivery (a household
    that asked twice, months apart, counts twice). Pledges count where the donor asked
    them to go (the pledge's target kota or kecamatan, or an area within this one): the
    aggregator's coverage often spans several areas and would count one pledge in each.
    Pledges for anywhere, or for a wider area than this one, are not in any row (only in
    the totals); donors never target a kelurahan, so rows of kelurahan have None.
    """

    area_id: int
    name: str
    level: AreaLevel
    households_helped: int
    households_waiting: int
    households_in_delivery: int
    packages_delivered: int
    money_delivered: int
    pledge_packages_received: int | None
    pledge_money_received: int | None


@dataclass(frozen=True)
class Totals:
    """The headline figures of the whole deployment."""

    households_helped: int
    households_waiting: int
    households_in_delivery: int
    packages_delivered: int
    money_delivered: int
    kelurahan_reached: int
    pledges_received: int
    pledge_packages_received: int
    pledge_money_received: int
    aggregators: int
    volunteers: int


def utc_bounds(since: date, until: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants where local day `since` starts and local day `until` ends."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(since, time(), zone).astimezone(UTC)
    end = datetime.combine(until + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


async def daily_counts(session: AsyncSession, *, since: date, until: date,
                       timezone: str = DEFAULT_TIMEZONE,
                       village_ids: Collection[int] | None = None,
                       aggregator_ids: Collection[int] | None = None) -> list[DayCount]:
    """Requests submitted and deliveries delivered per local day from `since` to `until`
    (both included, every day present).

    `village_ids` keeps requests and deliveries of households in those kelurahan;
    `aggregator_ids` keeps deliveries of those aggregators (requests belong to no
    aggregator until one allocates to them, so it does not narrow them).

    Read from the counters per kelurahan and day (models/figures.py) when they are kept
    in `timezone`; otherwise counted from the requests and deliveries themselves."""
    if until < since:
        return []
    if await clock_zone(session) != timezone:
        return await recount_daily_counts(session, since=since, until=until,
                                          timezone=timezone, village_ids=village_ids,
                                          aggregator_ids=aggregator_ids)
    kept = VillageDayFigures
    delivered: Any = kept.delivered
    if aggregator_ids is not None:
        delivered = case((kept.aggregator_id.in_(list(aggregator_ids)), kept.delivered),
                         else_=0)
    query = (select(kept.day, func.sum(kept.requested), func.sum(delivered))
             .where(kept.day >= since, kept.day <= until).group_by(kept.day))
    if village_ids is not None:
        query = query.where(kept.village_id.in_(list(village_ids)))
    counted = {day: (int(requests), int(deliveries))
               for day, requests, deliveries in (await session.execute(query)).all()}
    return [DayCount(day, *counted.get(day, (0, 0)))
            for day in (since + timedelta(days=n) for n in range((until - since).days + 1))]


async def recount_daily_counts(session: AsyncSession, *, since: date, until: date,
                               timezone: str = DEFAULT_TIMEZONE,
                               village_ids: Collection[int] | None = None,
                               aggregator_ids: Collection[int] | None = None
                               ) -> list[DayCount]:
    """`daily_counts` counted from every request and delivery in the period (any zone;
    the cost of the city's month).

    Each row is put in its local day in SQL, by comparing its timestamp with the UTC
    instants where the local days start (computed here with the zone's rules): the same
    on SQLite (naive UTC) and PostgreSQL, right in zones with daylight saving, which an
    SQL offset would not be, and only one row per day comes back.
    """
    if until < since:
        return []
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
    # Where each day starts, and where the last one ends.
    bounds = [utc_bounds(day, day, timezone)[0] for day in days]
    bounds.append(utc_bounds(until, until, timezone)[1])
    start, end = bounds[0], bounds[-1]
    requests = select(_day_of(HelpRequest.created_at, bounds).label("day")).where(
        HelpRequest.created_at >= start, HelpRequest.created_at < end)
    deliveries = (select(_day_of(Delivery.delivered_at, bounds).label("day"))
                  .where(Delivery.status == DeliveryStatus.DELIVERED,
                         Delivery.delivered_at >= start, Delivery.delivered_at < end))
    if village_ids is not None:
        villages = list(village_ids)
        requests = requests.where(HelpRequest.village_id.in_(villages))
        deliveries = (deliveries.join(HelpRequest, HelpRequest.id == Delivery.request_id)
                      .where(HelpRequest.village_id.in_(villages)))
    if aggregator_ids is not None:
        deliveries = deliveries.where(Delivery.aggregator_id.in_(list(aggregator_ids)))
    requested = await _per_day(session, requests)
    delivered = await _per_day(session, deliveries)
    return [DayCount(day, requested.get(n, 0), delivered.get(n, 0))
            for n, day in enumerate(days)]


async def daily_counts_by_village(session: AsyncSession, *, since: date, until: date,
                                  timezone: str = DEFAULT_TIMEZONE
                                  ) -> dict[int, dict[int, tuple[int, int]]]:
    """Requests submitted and deliveries delivered per kelurahan and local day, as
    `daily_counts` counts them: {village id: {day number (0 for `since`): (requests,
    deliveries)}}, only the days with something; from the counters when they are kept
    in `timezone`."""
    if until < since:
        return {}
    if await clock_zone(session) != timezone:
        return await recount_daily_counts_by_village(session, since=since, until=until,
                                                     timezone=timezone)
    kept = VillageDayFigures
    # A row per kelurahan and day of the city (some 8,000 a month), read on the event
    # loop: the sums cast back to integers (PostgreSQL's sum of bigints is a numeric,
    # each a Decimal to make), on the session's connection (plain rows, without the ORM's
    # handling of each).
    connection = await session.connection()
    rows = await connection.execute(
        select(kept.village_id, kept.day, cast(func.sum(kept.requested), BigInteger),
               cast(func.sum(kept.delivered), BigInteger))
        .where(kept.day >= since, kept.day <= until).group_by(kept.village_id, kept.day))
    counts: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    for village, day, requests, deliveries in rows.all():
        if requests or deliveries:
            counts[int(village)][(day - since).days] = (int(requests), int(deliveries))
    return dict(counts)


async def recount_daily_counts_by_village(session: AsyncSession, *, since: date,
                                          until: date, timezone: str = DEFAULT_TIMEZONE
                                          ) -> dict[int, dict[int, tuple[int, int]]]:
    """`daily_counts_by_village` counted from every request and delivery."""
    if until < since:
        return {}
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
    bounds = [utc_bounds(day, day, timezone)[0] for day in days]
    bounds.append(utc_bounds(until, until, timezone)[1])
    start, end = bounds[0], bounds[-1]
    counts: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    requests = (select(HelpRequest.village_id.label("village"),
                       _day_of(HelpRequest.created_at, bounds).label("day"))
                .where(HelpRequest.created_at >= start, HelpRequest.created_at < end))
    deliveries = (select(HelpRequest.village_id.label("village"),
                         _day_of(Delivery.delivered_at, bounds).label("day"))
                  .join(HelpRequest, HelpRequest.id == Delivery.request_id)
                  .where(Delivery.status == DeliveryStatus.DELIVERED,
                         Delivery.delivered_at >= start, Delivery.delivered_at < end))
    for column, rows in enumerate((requests, deliveries)):
        numbered = rows.subquery()
        result = await session.execute(
            select(numbered.c.village, numbered.c.day, func.count())
            .group_by(numbered.c.village, numbered.c.day))
        for village, day, count in result.all():
            if day is not None:
                counts[int(village)][int(day)][column] += int(count)
    return {village: {day: (pair[0], pair[1]) for day, pair in per_day.items()}
            for village, per_day in counts.items()}


async def village_sums(session: AsyncSession) -> dict[int, tuple[int, int, int, int, int]]:
    """Per kelurahan: households helped, waiting and in delivery, packages and rupiah
    delivered."""
    return _as_tuples(await _village_sums(session, None))


async def recount_village_sums(session: AsyncSession
                               ) -> dict[int, tuple[int, int, int, int, int]]:
    """`village_sums` counted from every request and delivery of the city."""
    return _as_tuples(await _recount_village_sums(session, None))


def _as_tuples(sums: dict[int, _Sums]) -> dict[int, tuple[int, int, int, int, int]]:
    # Kelurahan whose counters went back to 0 are as absent as those never counted.
    return {village: (s.helped, s.waiting, s.in_delivery, s.packages, s.money)
            for village, s in sums.items()
            if (s.helped, s.waiting, s.in_delivery, s.packages, s.money) != (0,) * 5}


async def pledges_by_target(session: AsyncSession) -> dict[int, tuple[int, int]]:
    """Received packages (or items) and rupiah per area a donor chose."""
    return await _pledges_by_target(session)


def _day_of(column: Any, bounds: list[datetime]) -> Any:
    """The number of the day (0 for the first) that the timestamp falls in (None past
    the last day)."""
    ends = bounds[1:]
    return case((column < ends[-1], _day_among(column, ends, 0, len(ends))), else_=None)


def _day_among(column: Any, ends: list[datetime], first: int, stop: int) -> Any:
    """The first day from `first` (included) to `stop` (excluded) that ends after the
    timestamp, which is before the last one's end. Halving the days at each step, a
    row is compared 5 times for 30 days rather than 15 times on average one day after
    another: a kota's month of requests is counted row by row."""
    if stop - first == 1:
        return literal(first)
    middle = (first + stop) // 2
    return case((column < ends[middle - 1], _day_among(column, ends, first, middle)),
                else_=_day_among(column, ends, middle, stop))


async def _per_day(session: AsyncSession, rows: Select[Any]) -> dict[int, int]:
    """Rows per day number, counted in SQL."""
    numbered = rows.subquery()
    counted = await session.execute(select(numbered.c.day, func.count())
                                    .group_by(numbered.c.day))
    return {int(day): int(count) for day, count in counted.all() if day is not None}


@dataclass
class _Sums:
    helped: int = 0
    waiting: int = 0
    in_delivery: int = 0
    packages: int = 0
    money: int = 0
    pledge_packages: int = 0
    pledge_money: int = 0

    def add(self, other: _Sums) -> None:
        self.helped += other.helped
        self.waiting += other.waiting
        self.in_delivery += other.in_delivery
        self.packages += other.packages
        self.money += other.money
        self.pledge_packages += other.pledge_packages
        self.pledge_money += other.pledge_money


def _scoped(query: SelectT, village_ids: list[int] | None) -> SelectT:
    """The query kept to requests in these kelurahan (all for None)."""
    if village_ids is None:
        return query
    return query.where(HelpRequest.village_id.in_(village_ids))


async def _village_sums(session: AsyncSession, village_ids: list[int] | None
                        ) -> dict[int, _Sums]:
    """Request and delivery figures per kelurahan, from their counters (a row each)."""
    kept = VillageFigures
    query = select(kept.village_id, kept.helped, kept.waiting, kept.in_delivery,
                   kept.packages, kept.money)
    if village_ids is not None:
        query = query.where(kept.village_id.in_(village_ids))
    return {int(village): _Sums(int(helped), int(waiting), int(in_delivery),
                                int(packages), int(money))
            for village, helped, waiting, in_delivery, packages, money
            in (await session.execute(query)).all()}


async def _recount_village_sums(session: AsyncSession, village_ids: list[int] | None
                                ) -> dict[int, _Sums]:
    """Request and delivery figures per kelurahan, two GROUP BY queries."""
    sums: dict[int, _Sums] = defaultdict(_Sums)
    open_requests = _scoped(
        select(HelpRequest.village_id, HelpRequest.status, func.count())
        .where(HelpRequest.status.in_([*WAITING_STATUSES, *IN_DELIVERY_STATUSES]))
        .group_by(HelpRequest.village_id, HelpRequest.status), village_ids)
    for village_id, status, count in (await session.execute(open_requests)).all():
        if status in WAITING_STATUSES:
            sums[village_id].waiting += count
        else:
            sums[village_id].in_delivery += count
    is_money = Delivery.category == MONEY
    delivered = _scoped(
        select(HelpRequest.village_id, func.count(distinct(Delivery.request_id)),
               func.coalesce(func.sum(case((is_money, 0), else_=Delivery.quantity)), 0),
               func.coalesce(func.sum(case((is_money, Delivery.quantity), else_=0)), 0))
        .join(HelpRequest, HelpRequest.id == Delivery.request_id)
        .where(Delivery.status == DeliveryStatus.DELIVERED)
        .group_by(HelpRequest.village_id), village_ids)
    for village_id, helped, packages, money in (await session.execute(delivered)).all():
        sums[village_id].helped += int(helped)
        sums[village_id].packages += int(packages)
        sums[village_id].money += int(money)
    return sums


async def _pledges_by_target(session: AsyncSession) -> dict[int, tuple[int, int]]:
    """Received quantity per target area: (packages or items, rupiah)."""
    is_money = Pledge.category == MONEY
    received = func.coalesce(Pledge.received_quantity, 0)
    rows = await session.execute(
        select(Pledge.target_area_id,
               func.coalesce(func.sum(case((is_money, 0), else_=received)), 0),
               func.coalesce(func.sum(case((is_money, received), else_=0)), 0))
        .where(Pledge.status == PledgeStatus.RECEIVED, Pledge.target_area_id.is_not(None))
        .group_by(Pledge.target_area_id))
    return {int(area_id): (int(packages), int(money))
            for area_id, packages, money in rows.all() if area_id is not None}


def _ancestor_at(areas: AreaDirectory, area_id: int, level: AreaLevel) -> int | None:
    """The area at `level` that holds `area_id` (itself if it is at that level)."""
    entry = areas.get(area_id)
    while entry is not None and entry.level != level:
        entry = areas.get(entry.parent_id) if entry.parent_id is not None else None
    return entry.id if entry is not None else None


def _rows_at(areas: AreaDirectory, level: AreaLevel, within: int | None) -> list[AreaEntry]:
    if within is None:
        regencies = areas.regencies()
        if level == AreaLevel.REGENCY:
            return regencies
        districts = [d for r in regencies for d in areas.children(r.id)]
        if level == AreaLevel.DISTRICT:
            return districts
        return [v for d in districts for v in areas.children(d.id)]
    parent = areas.get(within)
    if parent is None or TABLE_LEVELS.index(level) <= _depth(parent):
        raise ValueError(f"no {level} areas within area {within}")
    rows = [parent]
    while rows and rows[0].level != level:
        rows = [child for row in rows for child in areas.children(row.id)]
    return rows


def _depth(entry: AreaEntry) -> int:
    # The province is above every table level: -1.
    return TABLE_LEVELS.index(AreaLevel(entry.level)) if entry.level in TABLE_LEVELS else -1


async def area_figures(session: AsyncSession, areas: AreaDirectory, level: AreaLevel, *,
                       within: int | None = None,
                       village_ids: Collection[int] | None = None) -> list[AreaFigure]:
    """Figures for every area at `level` (kota, kecamatan or kelurahan) in scope, or
    within the area `within`, by name. With `village_ids`, only what happened in those
    kelurahan counts, and only areas holding one of them are listed."""
    if level not in TABLE_LEVELS:
        raise ValueError(f"no figures per {level}")
    rows = _rows_at(areas, level, within)
    scope = None if village_ids is None else list(village_ids)
    if scope is not None:
        holding = {_ancestor_at(areas, v, level) for v in scope}
        rows = [row for row in rows if row.id in holding]
    sums: dict[int, _Sums] = {row.id: _Sums() for row in rows}
    # Only the kelurahan of the rows are counted: those in scope, or within `within`.
    counted = scope
    if counted is None and within is not None:
        counted = sorted(areas.villages_under([within]))
    for village_id, village_sums in (await _village_sums(session, counted)).items():
        row_id = _ancestor_at(areas, village_id, level)
        if row_id in sums:
            sums[row_id].add(village_sums)
    if level != AreaLevel.VILLAGE:
        for target_id, (packages, money) in (await _pledges_by_target(session)).items():
            if scope is not None and not areas.villages_under([target_id]) & set(scope):
                continue
            row_id = _ancestor_at(areas, target_id, level)
            if row_id in sums:
                sums[row_id].pledge_packages += packages
                sums[row_id].pledge_money += money
    by_village = level == AreaLevel.VILLAGE
    return [AreaFigure(
        area_id=row.id, name=row.name, level=level,
        households_helped=sums[row.id].helped, households_waiting=sums[row.id].waiting,
        households_in_delivery=sums[row.id].in_delivery,
        packages_delivered=sums[row.id].packages, money_delivered=sums[row.id].money,
        pledge_packages_received=None if by_village else sums[row.id].pledge_packages,
        pledge_money_received=None if by_village else sums[row.id].pledge_money,
    ) for row in sorted(rows, key=lambda r: (r.name, r.id))]


async def totals(session: AsyncSession) -> Totals:
    """The headline figures: every request, delivery and received pledge."""
    sums = _Sums()
    village_sums = await _village_sums(session, None)
    for figures in village_sums.values():
        sums.add(figures)
    is_money = Pledge.category == MONEY
    received = func.coalesce(Pledge.received_quantity, 0)
    pledges, packages, money = (await session.execute(
        select(func.count(),
               func.coalesce(func.sum(case((is_money, 0), else_=received)), 0),
               func.coalesce(func.sum(case((is_money, received), else_=0)), 0))
        .where(Pledge.status == PledgeStatus.RECEIVED))).one()
    aggregators = await session.scalar(select(func.count()).select_from(Aggregator))
    # A person volunteering for two aggregators is one volunteer.
    volunteers = await session.scalar(
        select(func.count(distinct(Volunteer.contact_id)))
        .where(Volunteer.status == VolunteerStatus.APPROVED))
    return Totals(
        households_helped=sums.helped, households_waiting=sums.waiting,
        households_in_delivery=sums.in_delivery, packages_delivered=sums.packages,
        money_delivered=sums.money,
        kelurahan_reached=sum(1 for figures in village_sums.values() if figures.helped),
        pledges_received=int(pledges), pledge_packages_received=int(packages),
        pledge_money_received=int(money), aggregators=int(aggregators or 0),
        volunteers=int(volunteers or 0))
