"""The public transparency page: what the aid has done, per kota, kecamatan and kelurahan,
and day by day, for anyone to read. Counts only: nothing on it or in its JSON names,
reaches or identifies a household, a donor or a volunteer.

Counts of households below `public.min_count` are hidden ("fewer than 5"), with others
where they would give them away by subtraction (models/disclosure.py). That needs every
area's figures at once, so they are computed together, once per few seconds
(`FigureCache`), and every area's page and JSON in that time are read from them; the
page's script then polls the same figures as JSON to refresh them in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.numbers import format_decimal

from gotong.bot.services import Services
from gotong.bot.web.pages import SERVICES, page_language, render
from gotong.models.area import AreaDirectory, AreaEntry, AreaLevel
from gotong.models.disclosure import ROOT, PublicArea, PublicDay, PublicSnapshot, public_snapshot

log = logging.getLogger(__name__)

PATH = "/public"
FIGURES_PATH = "/public/figures.json"
# Days in the chart, today included.
CHART_DAYS = 30
# How long one computation of an area's figures serves every visitor.
CACHE_SECONDS = 5.0

# The headline figures, in the order of the cards, with what each is called.
HEADLINE_LABELS = {
    "households_helped": "web.public.households_helped",
    "households_waiting": "web.public.households_waiting",
    "households_in_delivery": "web.public.households_in_delivery",
    "packages_delivered": "web.public.packages_delivered",
    "kelurahan_reached": "web.public.kelurahan_reached",
    "pledge_packages_received": "web.public.pledge_packages_received",
    "pledge_money_received": "web.public.pledge_money_received",
    "aggregators": "web.public.aggregators",
    "volunteers": "web.public.volunteers",
}
# The figures of each row of the JSON's table of areas.
AREA_FIGURES = ("households_helped", "households_waiting", "households_in_delivery",
                "packages_delivered", "money_delivered", "pledge_packages_received",
                "pledge_money_received")
# Figures counted in rupiah rather than in households or packages.
MONEY_FIGURES = {"pledge_money_received", "money_delivered"}
# The columns of the table of areas.
COLUMN_LABELS = {
    "households_helped": "web.public.households_helped",
    "households_waiting": "web.public.households_waiting",
    "households_in_delivery": "web.public.households_in_delivery",
    "packages_delivered": "web.public.packages_delivered",
    "pledge_packages_received": "web.public.pledge_packages_received",
}
TABLE_HEADINGS = {
    AreaLevel.REGENCY: "web.public.by_regency",
    AreaLevel.DISTRICT: "web.public.by_district",
    AreaLevel.VILLAGE: "web.public.by_village",
}
CHILD_LEVEL = {
    AreaLevel.REGENCY: AreaLevel.DISTRICT,
    AreaLevel.DISTRICT: AreaLevel.VILLAGE,
}


@dataclass(frozen=True)
class PublicFigures:
    """Everything the page shows for the whole city (area None) or for one area; a
    figure is None where it is hidden (fewer than `min_count`)."""

    area: AreaEntry | None
    # The areas above it, from the kota down, then the area itself.
    trail: tuple[AreaEntry, ...]
    headline: dict[str, int | None]
    rows: list[tuple[AreaEntry, PublicArea]]
    rows_level: AreaLevel | None
    days: list[PublicDay]
    # The sums of the days shown.
    period: dict[str, int | None]
    computed_at: datetime
    min_count: int


T = TypeVar("T")
# The key of the figures of every area together.
SNAPSHOT = "snapshot"


class FigureCache:
    """Figures, each computed at most once per `seconds`: a burst of visitors shares one
    set of queries (the first computes, the others wait for it)."""

    def __init__(self, seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        # Keys are area ids that exist (or None), and SNAPSHOT: as many as the city.
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    def _fresh(self, key: Hashable) -> object | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > self._clock() else None

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        figures = self._fresh(key)
        if figures is not None:
            return cast(T, figures)
        async with self._locks.setdefault(key, asyncio.Lock()):
            figures = self._fresh(key)
            if figures is None:
                figures = await compute()
                self._entries[key] = (self._clock() + self.seconds, figures)
            return cast(T, figures)


PUBLIC_FIGURES = web.AppKey("public_figures", FigureCache)
# The computation of the figures started with the server (done once it has run), and
# how long the server waits for it before it serves.
FIRST_FIGURES = web.AppKey("first_figures", asyncio.Task[None])
FIRST_FIGURES_WAIT = 2.0


def _trail(areas: AreaDirectory, area: AreaEntry) -> tuple[AreaEntry, ...]:
    trail: list[AreaEntry] = []
    entry: AreaEntry | None = area
    while entry is not None and entry.level != AreaLevel.PROVINCE:
        trail.insert(0, entry)
        entry = areas.get(entry.parent_id) if entry.parent_id is not None else None
    return tuple(trail)


def _headline(snapshot: PublicSnapshot, node: int) -> dict[str, int | None]:
    """The cards: an area's own figures (those a row of the table has too); for the
    whole city, its totals as well."""
    own = snapshot.areas[node].figures
    if node != ROOT:
        return {key: own[key] for key in HEADLINE_LABELS
                if key in own and not (key.startswith("pledge_") and own[key] is None)}
    assert snapshot.totals is not None
    whole = snapshot.totals
    return {key: own[key] if key in own else int(getattr(whole, key))
            for key in HEADLINE_LABELS}


async def compute_snapshot(services: Services) -> PublicSnapshot:
    """Every area's published figures, with the last `CHART_DAYS` days."""
    timezone = services.config.i18n.timezone
    until = datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
    since = until - timedelta(days=CHART_DAYS - 1)
    async with services.reads() as session:
        return await public_snapshot(session, services.areas, since=since, until=until,
                                     timezone=timezone,
                                     min_count=services.config.public.min_count)


def figures_of(areas: AreaDirectory, area: AreaEntry | None, snapshot: PublicSnapshot
               ) -> PublicFigures:
    """The figures of the whole city, or of one kota, kecamatan or kelurahan."""
    node = ROOT if area is None else area.id
    child_level = AreaLevel.REGENCY if area is None else CHILD_LEVEL.get(AreaLevel(area.level))
    children = areas.regencies() if area is None else (
        areas.children(area.id) if child_level is not None else [])
    rows = [(child, snapshot.areas[child.id]) for child in
            sorted(children, key=lambda c: (c.name, c.id)) if child.id in snapshot.areas]
    published = snapshot.areas[node]
    return PublicFigures(area, _trail(areas, area) if area is not None else (),
                         _headline(snapshot, node), rows, child_level, published.days,
                         published.period, snapshot.computed_at, snapshot.min_count)


def _requested_area(request: web.Request) -> AreaEntry | None:
    """The area in `?area=`, None for the whole city; 404 for one we do not show."""
    asked = request.query.get("area")
    if not asked:
        return None
    areas = request.app[SERVICES].areas
    area = areas.get(int(asked)) if asked.isdigit() and len(asked) < 12 else None
    if area is None or area.level not in TABLE_HEADINGS:
        raise web.HTTPNotFound()
    # Areas of a province no longer in scope may still be in the database.
    if _trail(areas, area)[0].id not in {r.id for r in areas.regencies()}:
        raise web.HTTPNotFound()
    return area


async def _figures(request: web.Request, area: AreaEntry | None) -> PublicFigures:
    """The area's figures, read from those of every area, computed at most once per
    `FigureCache.seconds` whatever the number of visitors and areas asked for."""
    return figures_of(request.app[SERVICES].areas, area, await _snapshot(request.app))


async def _snapshot(app: web.Application) -> PublicSnapshot:
    """Every area's figures, from the cache or computed (once for every visitor)."""
    services = app[SERVICES]
    return await app[PUBLIC_FIGURES].get(SNAPSHOT, lambda: compute_snapshot(services))


def format_figure(key: str, value: int | None, language: str, fewer: str = "") -> str:
    """A figure as the page shows it; `fewer` ("fewer than 5") where it is hidden."""
    if value is None:
        return fewer
    number = str(format_decimal(value, locale=language))
    # "Rp" is how rupiah are written in either language.
    return f"Rp {number}" if key in MONEY_FIGURES else number


def _local_time(instant: datetime, timezone: str) -> str:
    return instant.astimezone(ZoneInfo(timezone)).strftime("%H:%M")


async def public_page(request: web.Request) -> web.Response:
    try:
        area = _requested_area(request)
    except web.HTTPNotFound:
        return render(request, "public_missing.html", {"home": PATH}, status=404)
    figures = await _figures(request, area)
    services = request.app[SERVICES]
    language = page_language(request)
    fewer = services.catalog.text(language, "web.public.fewer_than", count=figures.min_count)
    query = f"?area={area.id}" if area is not None else ""
    cards = [{"key": key, "label": HEADLINE_LABELS[key], "hidden": value is None,
              "value": format_figure(key, value, language, fewer)}
             for key, value in figures.headline.items()]
    columns = [key for key in COLUMN_LABELS
               if figures.rows_level != AreaLevel.VILLAGE
               or key != "pledge_packages_received"]
    rows = [{"id": entry.id, "name": entry.name,
             "cells": [{"key": key, "hidden": published.figures[key] is None,
                        "value": format_figure(key, published.figures[key], language, fewer)}
                       for key in columns]}
            for entry, published in figures.rows]
    period = {key: format_figure(key, value, language, fewer)
              for key, value in figures.period.items()}
    return render(request, "public.html", {
        "home": PATH,
        "area": area,
        "trail": figures.trail,
        "cards": cards,
        "columns": [{"key": key, "label": COLUMN_LABELS[key]} for key in columns],
        "rows": rows,
        "table_heading": TABLE_HEADINGS.get(figures.rows_level) if figures.rows_level
        else None,
        "days": figures.days,
        "period": period,
        "fewer": fewer,
        "min_count": figures.min_count,
        "chart_days": CHART_DAYS,
        "figures_url": FIGURES_PATH + query,
        "refresh_seconds": services.config.web.public_refresh_seconds,
        "timezone": services.config.i18n.timezone,
        "updated": _local_time(figures.computed_at, services.config.i18n.timezone),
    })


def figures_json(figures: PublicFigures) -> dict[str, Any]:
    """The figures as the page's script reads them (and anyone else may). A figure hidden
    because it is below `min_count` is null, and named in the `suppressed` list beside
    it (`headline_suppressed` for the headline)."""
    area = figures.area
    return {
        "area": None if area is None else {"id": area.id, "name": area.name,
                                           "level": area.level},
        "updated_at": figures.computed_at.isoformat(),
        "min_count": figures.min_count,
        "headline": figures.headline,
        "headline_suppressed": [key for key, value in figures.headline.items()
                                if value is None],
        "areas": [{"id": entry.id, "name": entry.name, "level": str(entry.level),
                   **{key: published.figures[key] for key in AREA_FIGURES},
                   "suppressed": published.suppressed}
                  for entry, published in figures.rows],
        "days": [{"day": day.day.isoformat(), "requests": day.requests,
                  "deliveries": day.deliveries,
                  "suppressed": [key for key in ("requests", "deliveries")
                                 if getattr(day, key) is None]} for day in figures.days],
        "period": {**figures.period,
                   "suppressed": [key for key, value in figures.period.items()
                                  if value is None]},
    }


async def public_figures(request: web.Request) -> web.Response:
    area = _requested_area(request)
    figures = await _figures(request, area)
    response = web.json_response(figures_json(figures))
    # Proxies may keep it as long as we do ourselves.
    seconds = int(request.app[PUBLIC_FIGURES].seconds)
    response.headers["Cache-Control"] = f"public, max-age={seconds}"
    return response


async def _compute_first(app: web.Application) -> None:
    """The figures computed before the first visitor: a process's first computation
    works out which small counts to hide from nothing (a few hundred ms for a city of a
    million households), every later one starts from the cells hidden before."""
    try:
        await _snapshot(app)
    except Exception as error:  # the database may be away at start
        log.warning("public figures not computed at start (%s): the first visitor will",
                    type(error).__name__)


async def _first_figures(app: web.Application) -> AsyncIterator[None]:
    """Compute the figures as the server starts. The server waits for them up to
    `FIRST_FIGURES_WAIT` seconds, so that its first pages do not share the CPU with
    them; a database slow or away at start delays it no longer than that, and the
    computation goes on beside it (a visitor meanwhile waits for it, as for any other
    under way)."""
    computing = asyncio.create_task(_compute_first(app))
    app[FIRST_FIGURES] = computing
    await asyncio.wait([computing], timeout=FIRST_FIGURES_WAIT)
    yield
    computing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await computing


def add_routes(app: web.Application) -> None:
    """Register the public page's routes (the cache can be replaced before start-up)."""
    app[PUBLIC_FIGURES] = FigureCache()
    app.cleanup_ctx.append(_first_figures)
    app.router.add_get(PATH, public_page)
    app.router.add_get(FIGURES_PATH, public_figures)
