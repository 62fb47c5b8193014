"""The public figures with small counts hidden, as statistics offices publish tables.

A count of 1 household helped in a kelurahan, or 1 request on one day, points at one
household that its neighbours can name. So every count of households below
`min_count` (but above 0) is hidden: "primary suppression". Hiding it is not enough when
the page also shows the total it adds up to: a kecamatan of 6 with kelurahan of 5, 0 and
one hidden gives the hidden one away by subtraction. So within every sum the page shows
(an area and the areas in it, on the same day or now; an area's 30 days and each day) a
hidden cell never stands alone: another is hidden with it, the smallest one that is not
0, and more until the hidden ones together hold at least `min_count` when the total is
shown ("complementary suppression"). Hiding one cell can make another sum hold a lone
hidden cell, so the rule is applied until nothing changes.

The figures of every area and day are computed together, once, so that an area shows the
same (hidden or not) on its own page, in its parent's table and in the JSON.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.area import AreaDirectory, AreaLevel
from gotong.models.stats import (
    Totals,
    daily_counts_by_village,
    pledges_by_target,
    totals,
    village_sums,
)

# The whole city (every province in scope): the root of the tree of areas.
ROOT = 0
# The column of an area's days that holds their sum.
PERIOD = -1
# Counts of households, each a table of its own.
HOUSEHOLD_COUNTS = ("households_helped", "households_waiting", "households_in_delivery")
# Amounts that tell as much as the households they went to: hidden with them.
FOLLOWS = {"packages_delivered": "households_helped", "money_delivered": "households_helped"}
DAY_COUNTS = ("requests", "deliveries")

K = TypeVar("K", bound=Hashable)
# A kelurahan's (or wider area's) count on one day (or PERIOD).
Cell = tuple[int, int]


def suppress(values: Mapping[K, int], sums: Iterable[tuple[K, Sequence[K]]],
             min_count: int) -> set[K]:
    """The cells to hide: those above 0 and below `min_count`, and those to hide with
    them so that no cell of a sum (`total = parts`) can be worked out from the others."""
    hidden = {key for key, value in values.items() if 0 < value < min_count}
    equations = [(total, list(parts)) for total, parts in sums if parts]
    changed = bool(hidden)
    while changed:
        changed = False
        for total, parts in equations:
            while True:
                hidden_parts = [p for p in parts if p in hidden]
                unknown = len(hidden_parts) + (total in hidden)
                if unknown == 0:
                    break
                # One hidden cell in a sum is the sum minus the others; hidden cells of a
                # shown total that add up to little still say "a household or two here".
                alone = unknown == 1
                small = total not in hidden \
                    and sum(values.get(p, 0) for p in hidden_parts) < min_count
                if not (alone or small):
                    break
                shown = [p for p in parts if p not in hidden]
                if not shown:
                    break
                hidden.add(min(shown, key=lambda p: (values.get(p, 0) == 0,
                                                      values.get(p, 0), str(p))))
                changed = True
    return hidden


@dataclass(frozen=True)
class Shown:
    """A figure as published: its value, or None when hidden (fewer than min_count)."""

    value: int | None

    @property
    def hidden(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class PublicDay:
    day: date
    requests: int | None
    deliveries: int | None


@dataclass(frozen=True)
class PublicArea:
    """One area's published figures: counts of households (None where hidden), what was
    delivered (hidden with the households helped), pledges received for it (a donor's
    choice; None for kelurahan, which donors do not choose), its days and their sums."""

    area_id: int
    figures: dict[str, int | None]
    days: list[PublicDay]
    period: dict[str, int | None]

    @property
    def suppressed(self) -> list[str]:
        """The figures hidden (pledges, never counts of households, are never hidden)."""
        return [key for key, value in self.figures.items()
                if value is None and not key.startswith("pledge_")]


@dataclass
class PublicSnapshot:
    """Every area's published figures, the city's totals, and the threshold."""

    min_count: int
    since: date
    until: date
    areas: dict[int, PublicArea] = field(default_factory=dict)
    totals: Totals | None = None
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _tree(areas: AreaDirectory) -> tuple[dict[int, list[int]], list[int]]:
    """The children of every area from the city down to kecamatan, and the kelurahan."""
    children: dict[int, list[int]] = {ROOT: [r.id for r in areas.regencies()]}
    villages: list[int] = []
    for regency in children[ROOT]:
        children[regency] = [d.id for d in areas.children(regency)]
        for district in children[regency]:
            children[district] = [v.id for v in areas.children(district)]
            villages += children[district]
    return children, villages


def _roll_up(children: Mapping[int, list[int]], leaves: Mapping[int, int], node: int,
             into: dict[int, int]) -> int:
    if node not in children:
        into[node] = leaves.get(node, 0)
        return into[node]
    into[node] = sum(_roll_up(children, leaves, child, into) for child in children[node])
    return into[node]


async def public_snapshot(session: AsyncSession, areas: AreaDirectory, *, since: date,
                          until: date, timezone: str, min_count: int) -> PublicSnapshot:
    """The published figures of the whole city, every kota, kecamatan and kelurahan in
    scope, and their days from `since` to `until`."""
    children, villages = _tree(areas)
    parents = [(node, kids) for node, kids in children.items()]
    snapshot = PublicSnapshot(min_count, since, until)
    snapshot.totals = await totals(session)

    per_village = await village_sums(session)
    counts: dict[str, dict[int, int]] = {}
    for index, key in enumerate((*HOUSEHOLD_COUNTS, "packages_delivered",
                                 "money_delivered")):
        counts[key] = {}
        _roll_up(children, {v: sums[index] for v, sums in per_village.items()}, ROOT,
                 counts[key])
    hidden: dict[str, set[int]] = {}
    for key in HOUSEHOLD_COUNTS:
        hidden[key] = suppress(counts[key], parents, min_count)
    for key, leader in FOLLOWS.items():
        hidden[key] = hidden[leader]

    day_count = (until - since).days + 1
    per_day = await daily_counts_by_village(session, since=since, until=until,
                                            timezone=timezone)
    day_values: dict[str, dict[Cell, int]] = {}
    day_hidden: dict[str, set[Cell]] = {}
    columns = [*range(day_count), PERIOD]
    for index, key in enumerate(DAY_COUNTS):
        values: dict[Cell, int] = {}
        for day in range(day_count):
            rolled: dict[int, int] = {}
            _roll_up(children, {v: days[day][index] for v, days in per_village_days(
                per_day, day)}, ROOT, rolled)
            values.update(((node, day), value) for node, value in rolled.items())
        nodes = {cell[0] for cell in values}
        for node in nodes:
            values[(node, PERIOD)] = sum(values[(node, day)] for day in range(day_count))
        equations: list[tuple[Cell, list[Cell]]] = [
            ((node, column), [(kid, column) for kid in kids])
                     for node, kids in parents for column in columns]
        equations += [((node, PERIOD), [(node, day) for day in range(day_count)])
                      for node in nodes]
        day_values[key] = values
        day_hidden[key] = suppress(values, equations, min_count)

    pledges = await pledges_by_target(session)
    pledge_sums: dict[int, list[int]] = {}
    for target, (packages, money) in pledges.items():
        entry = areas.get(target)
        # Donors choose a kota or kecamatan: counted there and in the kota above it.
        while entry is not None and entry.level != AreaLevel.PROVINCE:
            if entry.level in (AreaLevel.REGENCY, AreaLevel.DISTRICT):
                pair = pledge_sums.setdefault(entry.id, [0, 0])
                pair[0] += packages
                pair[1] += money
            entry = areas.get(entry.parent_id) if entry.parent_id is not None else None

    village_set = set(villages)
    for node in [ROOT, *children, *villages]:
        if node in snapshot.areas:
            continue
        figures: dict[str, int | None] = {
            key: None if node in hidden[key] else counts[key].get(node, 0)
            for key in (*HOUSEHOLD_COUNTS, "packages_delivered", "money_delivered")}
        if node in village_set:
            figures["pledge_packages_received"] = figures["pledge_money_received"] = None
        elif node != ROOT:
            packages, money = pledge_sums.get(node, [0, 0])
            figures["pledge_packages_received"], figures["pledge_money_received"] = \
                packages, money
        days = [PublicDay(since + timedelta(days=day),
                          *(None if (node, day) in day_hidden[key]
                            else day_values[key].get((node, day), 0) for key in DAY_COUNTS))
                for day in range(day_count)]
        period = {key: None if (node, PERIOD) in day_hidden[key]
                  else day_values[key].get((node, PERIOD), 0) for key in DAY_COUNTS}
        snapshot.areas[node] = PublicArea(node, figures, days, period)
    return snapshot


def per_village_days(per_day: Mapping[int, Mapping[int, tuple[int, int]]], day: int
                     ) -> Iterable[tuple[int, Mapping[int, tuple[int, int]]]]:
    """The kelurahan with something on day `day`."""
    return ((village, days) for village, days in per_day.items() if day in days)
