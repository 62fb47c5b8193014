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

Sums one at a time are not the whole story: several shown sums together (an area's days
and its kelurahan's, the rows and the columns of a table) can pin a hidden cell down
although none of them holds it alone. So every sum the page shows is taken as a linear
equation over the hidden cells, and the equations are solved together with exact
arithmetic (integers): a hidden cell that they determine is hidden with another cell of one of its
sums, and the whole is checked again, until no hidden cell is determined.

The figures of every area and day are computed together, once, so that an area shows the
same (hidden or not) on its own page, in its parent's table and in the JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from math import gcd
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
    them so that no hidden cell can be worked out from what is shown: not from one sum
    (`total = parts`) by subtraction, nor from several sums together."""
    equations = [(total, list(parts)) for total, parts in sums if parts]
    hidden = _suppress_per_sum(values, equations, min_count,
                               {key for key, value in values.items() if 0 < value < min_count})
    sums_of: dict[K, list[int]] = {}
    for index, (total, parts) in enumerate(equations):
        for cell in (total, *parts):
            sums_of.setdefault(cell, []).append(index)
    while found := determined(equations, hidden):
        # For each cell the others give away, hide one more cell of one of its sums: the
        # smallest above 0, as in each sum; then each sum is seen to, and all checked
        # again.
        more = set()
        for cell in found:
            shown = [other for index in sums_of.get(cell, ())
                     for other in (equations[index][0], *equations[index][1])
                     if other not in hidden]
            if shown:
                more.add(min(shown, key=_order(values)))
        if not more:
            break
        hidden = _suppress_per_sum(values, equations, min_count, hidden | more)
    return hidden


def _order(values: Mapping[K, int]) -> Callable[[K], tuple[bool, int, str]]:
    """Which cell to hide first: the smallest above 0 (a 0 hidden hides little)."""
    return lambda key: (values.get(key, 0) == 0, values.get(key, 0), str(key))


def _suppress_per_sum(values: Mapping[K, int], equations: Sequence[tuple[K, list[K]]],
                      min_count: int, hidden: set[K]) -> set[K]:
    """More hidden until no sum holds a lone hidden cell, nor hidden cells of a shown
    total that hold fewer than `min_count` together."""
    hidden = set(hidden)
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
                hidden.add(min(shown, key=_order(values)))
                changed = True
    return hidden


def determined(sums: Iterable[tuple[K, Sequence[K]]], hidden: set[K]) -> set[K]:
    """The hidden cells whose value follows from the shown ones and the sums.

    Each sum is an equation `parts - total = 0`; the shown cells are known, so what is
    left is a linear system in the hidden cells. A hidden cell x is determined when the
    unit vector of x is a combination of the equations: brought to reduced row echelon
    form, that is when a row holds x alone. The rows are kept in exact integers
    (fraction-free: a row is scaled rather than divided, and its common divisor taken
    out), and sparse, which the sums of a tree of areas and their days keep small.
    """
    pivots: dict[K, dict[K, int]] = {}
    # The pivot rows in which each cell appears, to clear a new pivot's column from them.
    holding: dict[K, set[K]] = {}
    for total, parts in sums:
        row: dict[K, int] = {p: 1 for p in parts if p in hidden}
        if total in hidden:
            row[total] = row.get(total, 0) - 1
            if not row[total]:
                del row[total]
        # Every pivot row is reduced (it holds no other pivot): one pass clears them all.
        for key in [k for k in row if k in pivots]:
            row = _eliminate(row, pivots[key], key)
        if not row:
            continue
        # The cell in the fewest rows so far: the least to clear, the least fill-in.
        pivot = min(row, key=lambda k: len(holding.get(k, ())))
        for name in list(holding.get(pivot, ())):
            before = pivots[name]
            after = _eliminate(before, row, pivot)
            for key in after.keys() - before.keys():
                holding.setdefault(key, set()).add(name)
            for key in before.keys() - after.keys():
                holding[key].discard(name)
            pivots[name] = after
        pivots[pivot] = row
        for key in row:
            holding.setdefault(key, set()).add(pivot)
    return {pivot for pivot, row in pivots.items() if len(row) == 1}


def _eliminate(row: dict[K, int], pivot_row: Mapping[K, int], pivot: K) -> dict[K, int]:
    """`row` without `pivot`: pivot_row[pivot] * row - row[pivot] * pivot_row, divided by
    the common divisor of what is left (exact, in integers)."""
    a, b = pivot_row[pivot], row[pivot]
    result = {key: a * value for key, value in row.items()}
    for key, value in pivot_row.items():
        new = result.get(key, 0) - b * value
        if new:
            result[key] = new
        else:
            result.pop(key, None)
    divisor = gcd(*result.values()) if result else 1
    if divisor > 1:
        result = {key: value // divisor for key, value in result.items()}
    return result


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
        # Solving the sums takes a few hundred ms for a whole city's 30 days: beside the
        # event loop, which goes on serving meanwhile.
        hidden[key] = await asyncio.to_thread(suppress, counts[key], parents, min_count)
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
        day_hidden[key] = await asyncio.to_thread(suppress, values, equations, min_count)

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
