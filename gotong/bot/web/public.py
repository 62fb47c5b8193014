"""The public transparency page: what the aid has done, per kota, kecamatan and kelurahan,
and day by day, for anyone to read. Counts only: nothing on it or in its JSON names,
reaches or identifies a household, a donor or a volunteer.

The page is public and may be hit hard, so the figures of each area are computed once per
few seconds (`FigureCache`) and shared by every visitor in that time; the page's script
then polls the same figures as JSON to refresh them in place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.numbers import format_decimal

from gotong.bot.services import Services
from gotong.bot.web.pages import SERVICES, page_language, render
from gotong.models.area import AreaDirectory, AreaEntry, AreaLevel
from gotong.models.stats import (
    AreaFigure,
    DayCount,
    Totals,
    area_figures,
    daily_counts,
    totals,
)

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
    """Everything the page shows for the whole city (area None) or for one area."""

    area: AreaEntry | None
    # The areas above it, from the kota down, then the area itself.
    trail: tuple[AreaEntry, ...]
    headline: dict[str, int]
    rows: list[AreaFigure]
    rows_level: AreaLevel | None
    days: list[DayCount]
    computed_at: datetime


class FigureCache:
    """Figures per area, each computed at most once per `seconds`: a burst of visitors
    shares one set of queries (the first computes, the others wait for it)."""

    def __init__(self, seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        # Keys are area ids that exist (or None), so the cache is as big as the city.
        self._entries: dict[int | None, tuple[float, PublicFigures]] = {}
        self._locks: dict[int | None, asyncio.Lock] = {}

    def _fresh(self, key: int | None) -> PublicFigures | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > self._clock() else None

    async def get(self, key: int | None,
                  compute: Callable[[], Awaitable[PublicFigures]]) -> PublicFigures:
        figures = self._fresh(key)
        if figures is not None:
            return figures
        async with self._locks.setdefault(key, asyncio.Lock()):
            figures = self._fresh(key)
            if figures is None:
                figures = await compute()
                self._entries[key] = (self._clock() + self.seconds, figures)
            return figures


PUBLIC_FIGURES = web.AppKey("public_figures", FigureCache)


def _trail(areas: AreaDirectory, area: AreaEntry) -> tuple[AreaEntry, ...]:
    trail: list[AreaEntry] = []
    entry: AreaEntry | None = area
    while entry is not None and entry.level != AreaLevel.PROVINCE:
        trail.insert(0, entry)
        entry = areas.get(entry.parent_id) if entry.parent_id is not None else None
    return tuple(trail)


def _totals_headline(figures: Totals) -> dict[str, int]:
    return {key: int(getattr(figures, key)) for key in HEADLINE_LABELS}


def _area_headline(figure: AreaFigure) -> dict[str, int]:
    # An area's own figures: those of the cards that a row of the table has too.
    values = {key: getattr(figure, key, None) for key in HEADLINE_LABELS}
    return {key: int(value) for key, value in values.items() if value is not None}


async def compute_figures(services: Services, area: AreaEntry | None) -> PublicFigures:
    """The figures of the whole city, or of one kota, kecamatan or kelurahan."""
    areas = services.areas
    timezone = services.config.i18n.timezone
    now = datetime.now(UTC)
    until = now.astimezone(ZoneInfo(timezone)).date()
    since = until - timedelta(days=CHART_DAYS - 1)
    async with services.sessions() as session:
        if area is None:
            headline = _totals_headline(await totals(session))
            rows = await area_figures(session, areas, AreaLevel.REGENCY)
            days = await daily_counts(session, since=since, until=until, timezone=timezone)
            return PublicFigures(None, (), headline, rows, AreaLevel.REGENCY, days, now)
        level = AreaLevel(area.level)
        villages = areas.villages_under([area.id])
        [own] = await area_figures(session, areas, level, village_ids=villages)
        child_level = CHILD_LEVEL.get(level)
        rows = [] if child_level is None else await area_figures(
            session, areas, child_level, within=area.id)
        days = await daily_counts(session, since=since, until=until, timezone=timezone,
                                  village_ids=villages)
    return PublicFigures(area, _trail(areas, area), _area_headline(own), rows, child_level,
                         days, now)


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
    services = request.app[SERVICES]
    return await request.app[PUBLIC_FIGURES].get(
        area.id if area is not None else None, lambda: compute_figures(services, area))


def format_figure(key: str, value: int, language: str) -> str:
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
    query = f"?area={area.id}" if area is not None else ""
    cards = [{"key": key, "label": HEADLINE_LABELS[key],
              "value": format_figure(key, value, language)}
             for key, value in figures.headline.items()]
    columns = [key for key in COLUMN_LABELS
               if figures.rows_level != AreaLevel.VILLAGE
               or key != "pledge_packages_received"]
    rows = [{"id": row.area_id, "name": row.name,
             "cells": [{"key": key, "value": format_figure(key, getattr(row, key), language)}
                       for key in columns]}
            for row in figures.rows]
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
        "chart_days": CHART_DAYS,
        "figures_url": FIGURES_PATH + query,
        "refresh_seconds": services.config.web.public_refresh_seconds,
        "timezone": services.config.i18n.timezone,
        "updated": _local_time(figures.computed_at, services.config.i18n.timezone),
    })


def figures_json(figures: PublicFigures) -> dict[str, Any]:
    """The figures as the page's script reads them (and anyone else may)."""
    area = figures.area
    return {
        "area": None if area is None else {"id": area.id, "name": area.name,
                                           "level": area.level},
        "updated_at": figures.computed_at.isoformat(),
        "headline": figures.headline,
        "areas": [{"id": row.area_id, "name": row.name, "level": str(row.level),
                   "households_helped": row.households_helped,
                   "households_waiting": row.households_waiting,
                   "households_in_delivery": row.households_in_delivery,
                   "packages_delivered": row.packages_delivered,
                   "money_delivered": row.money_delivered,
                   "pledge_packages_received": row.pledge_packages_received,
                   "pledge_money_received": row.pledge_money_received}
                  for row in figures.rows],
        "days": [{"day": day.day.isoformat(), "requests": day.requests,
                  "deliveries": day.deliveries} for day in figures.days],
    }


async def public_figures(request: web.Request) -> web.Response:
    area = _requested_area(request)
    figures = await _figures(request, area)
    response = web.json_response(figures_json(figures))
    # Proxies may keep it as long as we do ourselves.
    seconds = int(request.app[PUBLIC_FIGURES].seconds)
    response.headers["Cache-Control"] = f"public, max-age={seconds}"
    return response


def add_routes(app: web.Application) -> None:
    """Register the public page's routes (the cache can be replaced before start-up)."""
    app[PUBLIC_FIGURES] = FigureCache()
    app.router.add_get(PATH, public_page)
    app.router.add_get(FIGURES_PATH, public_figures)
