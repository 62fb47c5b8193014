"""The public page's figures over 1,000,000 households: what one uncached page costs.

The data is benchmarks/allocation.py's (the same households, generated on first use and
kept: `data/bench-allocation-N.sqlite3` and the PostgreSQL database
`gotong_bench_allocation_N` on the server of GOTONG_TEST_DATABASE_URL or --postgres).  The
public page (gotong/bot/public.py) computes its figures once per area every few seconds;
each of these is timed here, each run in a fresh session, after warm-ups:

    area_figures  per kota (the whole province), per kecamatan of one kota (Jakarta Timur)
                  and per kelurahan of one kecamatan (Jakarta Timur's with the most
                  kelurahan), the tables of the page
    daily_counts  the chart: requests and deliveries per local day over the last 30 days,
                  for the whole province and for the kota
    totals        the headline cards of the whole province
    page          the queries of one uncached page, as compute_figures makes them, for the
                  province, the kota, the kecamatan and one of its kelurahan
    snapshot      what the public page computes now (gotong/bot/web/public.py
                  compute_snapshot): every area's figures and 30 days at once, small
                  counts hidden; with the counts changed since the last computation (the
                  threshold alternating 5/6, so no hidden cells are kept from the run
                  before) and unchanged

area_figures and daily_counts are measured against a baseline in the same run,
alternately, and both must give the same figures or the benchmark stops with an error:

* area_figures: the baseline reads every request's (kelurahan, status) and every delivered
  delivery's (request, kelurahan, category, quantity) in scope into Python and counts there,
  which is what one writes without GROUP BY;
* daily_counts: the same queries with the timestamp compared through an expression
  (`coalesce(created_at, created_at)`), so that neither ix_help_request_created nor
  ix_delivery_delivered can serve the range.

totals, the pages and the snapshot have no baseline.  For each the median and 95th
percentile in ms are printed, with ratio = ours / baseline::

    .venv/bin/python benchmarks/public_figures.py [--households N] [--runs R] [--only BACKEND]
                                                  [--postgres URL] [--regenerate]

Without a PostgreSQL server (no URL, or it does not answer), that backend is skipped with a
message.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from allocation import (
    CASE_KOTA,
    NOW,
    Prepared,
    Timing,
    add_data_arguments,
    alternate,
    bench_config,
    checked_backends,
    median_ms,
    p95_ms,
    prepared_backends,
    timed,
)
from sidebyside import run_benchmark
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.bot.process import settle_heap
from gotong.bot.services import Services, open_services
from gotong.bot.web.public import CHART_DAYS
from gotong.models.area import AreaDirectory, AreaEntry, AreaLevel
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.disclosure import public_snapshot
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge, PledgeStatus
from gotong.models.stats import (
    DEFAULT_TIMEZONE,
    IN_DELIVERY_STATUSES,
    MONEY,
    WAITING_STATUSES,
    AreaFigure,
    DayCount,
    area_figures,
    daily_counts,
    totals,
    utc_bounds,
)

TIMEZONE = DEFAULT_TIMEZONE
# The chart's days as the page would show them at the benchmark's "now".
UNTIL = NOW.astimezone(ZoneInfo(TIMEZONE)).date()
SINCE = UNTIL - timedelta(days=CHART_DAYS - 1)

Query = Callable[[AsyncSession], Awaitable[Any]]


# --- the baselines ------------------------------------------------------------------------


def _ancestor_at(areas: AreaDirectory, area_id: int, level: AreaLevel) -> int | None:
    entry = areas.get(area_id)
    while entry is not None and entry.level != level:
        entry = areas.get(entry.parent_id) if entry.parent_id is not None else None
    return entry.id if entry is not None else None


def _rows(areas: AreaDirectory, within: int | None) -> list[AreaEntry]:
    """The areas one level below `within` (the kota for the province)."""
    return areas.regencies() if within is None else areas.children(within)


async def baseline_area_figures(session: AsyncSession, areas: AreaDirectory,
                                within: int | None) -> list[AreaFigure]:
    """area_figures(level of the rows, within=within), counted in Python from the rows."""
    rows = _rows(areas, within)
    level = AreaLevel(rows[0].level)
    row_of = {village: row.id for row in rows for village in areas.villages_under([row.id])}
    scope = list(row_of)
    waiting: dict[int, int] = defaultdict(int)
    in_delivery: dict[int, int] = defaultdict(int)
    requests = select(HelpRequest.village_id, HelpRequest.status)
    if within is not None:
        requests = requests.where(HelpRequest.village_id.in_(scope))
    for village_id, status in (await session.execute(requests)).all():
        row_id = row_of.get(village_id)
        if row_id is None:
            continue
        if status in WAITING_STATUSES:
            waiting[row_id] += 1
        elif status in IN_DELIVERY_STATUSES:
            in_delivery[row_id] += 1
    helped: dict[int, set[int]] = defaultdict(set)
    packages: dict[int, int] = defaultdict(int)
    money: dict[int, int] = defaultdict(int)
    deliveries = (select(Delivery.request_id, HelpRequest.village_id, Delivery.category,
                         Delivery.quantity)
                  .join(HelpRequest, HelpRequest.id == Delivery.request_id)
                  .where(Delivery.status == DeliveryStatus.DELIVERED))
    if within is not None:
        deliveries = deliveries.where(HelpRequest.village_id.in_(scope))
    for request_id, village_id, category, quantity in (await session.execute(deliveries)).all():
        row_id = row_of.get(village_id)
        if row_id is None:
            continue
        helped[row_id].add(request_id)
        if category == MONEY:
            money[row_id] += quantity
        else:
            packages[row_id] += quantity
    pledge_packages: dict[int, int] = defaultdict(int)
    pledge_money: dict[int, int] = defaultdict(int)
    if level != AreaLevel.VILLAGE:
        pledges = select(Pledge.target_area_id, Pledge.category, Pledge.received_quantity
                         ).where(Pledge.status == PledgeStatus.RECEIVED)
        for target_id, category, received in (await session.execute(pledges)).all():
            row_id = None if target_id is None else _ancestor_at(areas, target_id, level)
            if row_id is None:
                continue
            if category == MONEY:
                pledge_money[row_id] += received or 0
            else:
                pledge_packages[row_id] += received or 0
    by_village = level == AreaLevel.VILLAGE
    return [AreaFigure(
        area_id=row.id, name=row.name, level=level, households_helped=len(helped[row.id]),
        households_waiting=waiting[row.id], households_in_delivery=in_delivery[row.id],
        packages_delivered=packages[row.id], money_delivered=money[row.id],
        pledge_packages_received=None if by_village else pledge_packages[row.id],
        pledge_money_received=None if by_village else pledge_money[row.id],
    ) for row in sorted(rows, key=lambda r: (r.name, r.id))]


def _unindexed(column: Any) -> ColumnElement[datetime]:
    """The column's value through an expression: no index on the column can serve it."""
    return func.coalesce(column, column)


async def baseline_daily_counts(session: AsyncSession, *, since: date, until: date,
                                timezone: str, village_ids: Collection[int] | None = None
                                ) -> list[DayCount]:
    """daily_counts with its time ranges out of reach of the timestamp indexes."""
    start, end = utc_bounds(since, until, timezone)
    created = _unindexed(HelpRequest.created_at)
    delivered_at = _unindexed(Delivery.delivered_at)
    requests = select(HelpRequest.created_at).where(created >= start, created < end)
    deliveries = (select(Delivery.delivered_at)
                  .where(Delivery.status == DeliveryStatus.DELIVERED,
                         delivered_at >= start, delivered_at < end))
    if village_ids is not None:
        villages = list(village_ids)
        requests = requests.where(HelpRequest.village_id.in_(villages))
        deliveries = (deliveries.join(HelpRequest, HelpRequest.id == Delivery.request_id)
                      .where(HelpRequest.village_id.in_(villages)))
    zone = ZoneInfo(timezone)
    requested: dict[date, int] = defaultdict(int)
    for instant in await session.scalars(requests):
        requested[instant.astimezone(zone).date()] += 1
    delivered: dict[date, int] = defaultdict(int)
    for arrived in await session.scalars(deliveries):
        if arrived is not None:
            delivered[arrived.astimezone(zone).date()] += 1
    days = (since + timedelta(days=n) for n in range((until - since).days + 1))
    return [DayCount(day, requested.get(day, 0), delivered.get(day, 0)) for day in days]


# --- the page -----------------------------------------------------------------------------


async def page(session: AsyncSession, areas: AreaDirectory, area: AreaEntry | None) -> None:
    """The queries compute_figures (gotong/bot/public.py) makes for one page, with the
    chart's days at the benchmark's "now"."""
    if area is None:
        await totals(session)
        await area_figures(session, areas, AreaLevel.REGENCY)
        await daily_counts(session, since=SINCE, until=UNTIL, timezone=TIMEZONE)
        return
    level = AreaLevel(area.level)
    villages = areas.villages_under([area.id])
    await area_figures(session, areas, level, village_ids=villages)
    child_level = {AreaLevel.REGENCY: AreaLevel.DISTRICT,
                   AreaLevel.DISTRICT: AreaLevel.VILLAGE}.get(level)
    if child_level is not None:
        await area_figures(session, areas, child_level, within=area.id)
    await daily_counts(session, since=SINCE, until=UNTIL, timezone=TIMEZONE,
                       village_ids=villages)


# --- the queries as timed ------------------------------------------------------------------


def ours_table(areas: AreaDirectory, level: AreaLevel, within: int | None
               ) -> Callable[[AsyncSession], Awaitable[list[AreaFigure]]]:
    return lambda session: area_figures(session, areas, level, within=within)


def baseline_table(areas: AreaDirectory, within: int | None
                   ) -> Callable[[AsyncSession], Awaitable[list[AreaFigure]]]:
    return lambda session: baseline_area_figures(session, areas, within)


def ours_chart(villages: Collection[int] | None
               ) -> Callable[[AsyncSession], Awaitable[list[DayCount]]]:
    return lambda session: daily_counts(session, since=SINCE, until=UNTIL, timezone=TIMEZONE,
                                        village_ids=villages)


def baseline_chart(villages: Collection[int] | None
                   ) -> Callable[[AsyncSession], Awaitable[list[DayCount]]]:
    return lambda session: baseline_daily_counts(session, since=SINCE, until=UNTIL,
                                                 timezone=TIMEZONE, village_ids=villages)


def one_page(areas: AreaDirectory, area: AreaEntry | None) -> Query:
    return lambda session: page(session, areas, area)


# --- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Places:
    kota: AreaEntry
    kecamatan: AreaEntry
    kelurahan: AreaEntry


def find_places(areas: AreaDirectory) -> Places:
    """The case kota, its kecamatan with the most kelurahan, and that one's first."""
    [kota] = [r for r in areas.regencies() if r.name == CASE_KOTA]
    kecamatan = max(areas.children(kota.id),
                    key=lambda d: (len(areas.children(d.id)), -d.id))
    kelurahan = min(areas.children(kecamatan.id), key=lambda v: v.id)
    return Places(kota, kecamatan, kelurahan)


async def backfill_delivered_at(services: Services) -> int:
    """Data generated before deliveries had their `delivered_at` gets it now (it is when
    the delivery was last updated, as the generator now sets it)."""
    async with services.sessions() as session, session.begin():
        result = await session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.DELIVERED, Delivery.delivered_at.is_(None))
            .values(delivered_at=Delivery.updated_at)
            .execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)


def _line(backend: str, what: str, timing: Timing) -> str:
    ours, base = median_ms(timing.ours), median_ms(timing.baseline)
    return (f"{backend} {what}: ours median {ours:.1f} ms (p95 {p95_ms(timing.ours):.1f}), "
            f"baseline median {base:.1f} ms (p95 {p95_ms(timing.baseline):.1f}), "
            f"ratio={ours / base:.3f}")


async def alone(services: Services, query: Query, runs: int, warmups: int) -> list[float]:
    """Seconds of each measured run of one query without a baseline."""
    times = []
    for number in range(warmups + runs):
        seconds, _ = await timed(services.sessions, query, lambda found: None)
        if number >= warmups:
            times.append(seconds)
    return times


def _same(found: Any) -> Any:
    return found


async def bench_backend(backend: str, prepared: Prepared, households: int, runs: int,
                        warmups: int) -> None:
    services = await open_services(bench_config(prepared.url), migrate=True)
    # As `gotong run` does after start-up.
    settle_heap()
    try:
        areas = services.areas
        print(f"== {backend}: {prepared.label}")
        if prepared.generation is None:
            print(f"reused: {households:,} households generated by an earlier run")
        else:
            print(f"generated {households:,} households in {prepared.generation:.1f} s")
        filled = await backfill_delivered_at(services)
        if filled:
            print(f"gave {filled:,} delivered deliveries of older data their delivered_at")
        places = find_places(areas)
        kota_villages = areas.villages_under([places.kota.id])
        async with services.sessions() as session:
            chart = await daily_counts(session, since=SINCE, until=UNTIL, timezone=TIMEZONE)
        print(f"chart {SINCE} to {UNTIL}: {sum(d.requests for d in chart):,} requests, "
              f"{sum(d.deliveries for d in chart):,} deliveries; kota "
              f"{places.kota.name} ({len(kota_villages)} kelurahan), kecamatan "
              f"{places.kecamatan.name} ({len(areas.children(places.kecamatan.id))} kelurahan)")

        tables: list[tuple[str, int | None, AreaLevel]] = [
            ("area_figures per kota (province)", None, AreaLevel.REGENCY),
            (f"area_figures per kecamatan of {places.kota.name}", places.kota.id,
             AreaLevel.DISTRICT),
            (f"area_figures per kelurahan of {places.kecamatan.name}", places.kecamatan.id,
             AreaLevel.VILLAGE),
        ]
        for what, within, level in tables:
            timing = await alternate(services.sessions, ours_table(areas, level, within),
                                     baseline_table(areas, within), runs, warmups, _same)
            print(_line(backend, what, timing), flush=True)

        charts: list[tuple[str, set[int] | None]] = [
            (f"daily_counts {CHART_DAYS} days (province)", None),
            (f"daily_counts {CHART_DAYS} days ({places.kota.name})", kota_villages),
        ]
        for what, villages in charts:
            timing = await alternate(services.sessions, ours_chart(villages),
                                     baseline_chart(villages), runs, warmups, _same)
            print(_line(backend, what, timing), flush=True)

        times = await alone(services, totals, runs, warmups)
        async with services.sessions() as session:
            figures = await totals(session)
        print(f"{backend} totals: ours median {median_ms(times):.1f} ms "
              f"(p95 {p95_ms(times):.1f}); {figures}", flush=True)

        pages: list[tuple[str, AreaEntry | None]] = [
            ("province", None), (places.kota.name, places.kota),
            (places.kecamatan.name, places.kecamatan), (places.kelurahan.name, places.kelurahan)]
        for what, area in pages:
            times = await alone(services, one_page(areas, area), runs, warmups)
            print(f"{backend} uncached page ({what}): ours median {median_ms(times):.1f} ms "
                  f"(p95 {p95_ms(times):.1f})", flush=True)

        # What the page computes now: every area's figures and days at once, small counts
        # hidden (models/disclosure.py). Hidden cells are kept while the counts do not
        # change, so the threshold alternates between 5 and 6 for a run that finds none
        # kept (as after any change of the counts), then stays for one that finds them.
        for what, thresholds in (("counts changed", (5, 6)), ("counts unchanged", (5,))):
            threshold = itertools.cycle(thresholds)
            times = await alone(services, lambda session, threshold=threshold: (
                public_snapshot(session, areas, since=SINCE, until=UNTIL, timezone=TIMEZONE,
                                min_count=next(threshold))), runs, warmups)
            print(f"{backend} public snapshot, every area ({what}): ours median "
                  f"{median_ms(times):.1f} ms (p95 {p95_ms(times):.1f})", flush=True)
    finally:
        await services.close()


@dataclass(frozen=True)
class Settings:
    households: int
    runs: int
    warmups: int
    backends: tuple[str, ...]
    postgres: str | None
    data_dir: Path
    regenerate: bool


async def benchmark(settings: Settings) -> None:
    async for backend, prepared in prepared_backends(
            settings.backends, settings.postgres, settings.data_dir, settings.households,
            settings.regenerate):
        await bench_backend(backend, prepared, settings.households, settings.runs,
                            settings.warmups)


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_data_arguments(parser, runs=20, warmups=2, households_help=(
        "households of allocation.py's data (default 1,000,000)"))
    args = parser.parse_args(argv)
    backends = checked_backends(parser, args)
    return Settings(args.households, args.runs, args.warmups, backends, args.postgres,
                    args.data_dir, args.regenerate)


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(benchmark(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
