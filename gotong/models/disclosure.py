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

import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from math import gcd
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.area import AreaDirectory, AreaLevel
from gotong.models.beside_loop import beside_loop
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


class SumSystem(Generic[K]):
    """The sums a page shows, with the sums each cell is in: what `suppress` needs of
    them besides the values. The sums of a city's tree of areas and days are the same
    at every computation, so they are prepared once (`_layout`) rather than each time.

    It also keeps the last cells hidden and the values they were found for: hiding
    depends on nothing else, so a computation whose values have not changed since
    (a quiet hour, or visitors between two events) takes them as they are."""

    def __init__(self, sums: Iterable[tuple[K, Sequence[K]]]) -> None:
        self.equations: list[tuple[K, list[K]]] = [
            (total, list(parts)) for total, parts in sums if parts]
        self.sums_of: dict[K, list[int]] = {}
        for index, (total, parts) in enumerate(self.equations):
            for cell in (total, *parts):
                self.sums_of.setdefault(cell, []).append(index)
        self._last: tuple[dict[K, int], int, frozenset[K]] | None = None
        # One computation at a time may use the last result (worker threads).
        self._lock = threading.Lock()

    def hidden(self, values: Mapping[K, int], min_count: int) -> set[K]:
        with self._lock:
            last = self._last
            if last is not None and last[1] == min_count and last[0] == values:
                return set(last[2])
            hidden = _suppress(values, self, min_count)
            self._last = (dict(values), min_count, frozenset(hidden))
            return hidden


def suppress(values: Mapping[K, int], sums: Iterable[tuple[K, Sequence[K]]],
             min_count: int) -> set[K]:
    """The cells to hide: those above 0 and below `min_count`, and those to hide with
    them so that no hidden cell can be worked out from what is shown: not from one sum
    (`total = parts`) by subtraction, nor from several sums together."""
    return _suppress(values, SumSystem(sums), min_count)


def _suppress(values: Mapping[K, int], system: SumSystem[K], min_count: int) -> set[K]:
    equations, sums_of = system.equations, system.sums_of
    hidden = _suppress_per_sum(values, system, min_count,
                               {key for key, value in values.items() if 0 < value < min_count})
    # Only the sums holding a hidden cell say anything about one: the others are left
    # out of the system to solve (in their order, which decides the pivots).
    while found := determined(
            [equations[index] for index in sorted(
                {index for cell in hidden for index in sums_of.get(cell, ())})], hidden):
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
        hidden = _suppress_per_sum(values, system, min_count, hidden | more)
    return hidden


def _order(values: Mapping[K, int]) -> Callable[[K], tuple[bool, int, str]]:
    """Which cell to hide first: the smallest above 0 (a 0 hidden hides little)."""
    return lambda key: (values.get(key, 0) == 0, values.get(key, 0), str(key))


def _suppress_per_sum(values: Mapping[K, int], system: SumSystem[K], min_count: int,
                      hidden: set[K]) -> set[K]:
    """More hidden until no sum holds a lone hidden cell, nor hidden cells of a shown
    total that hold fewer than `min_count` together.

    The sums are seen to in their order, again and again until none changes. What a sum
    needs depends only on which of its cells are hidden, so a sum is looked at again only
    when one of its cells was hidden since it was last seen to (`dirty`): the same cells
    are hidden as by looking at every sum each time, without reading them all."""
    equations, sums_of = system.equations, system.sums_of
    hidden = set(hidden)
    dirty = bytearray(len(equations))
    for cell in hidden:
        for index in sums_of.get(cell, ()):
            dirty[index] = 1
    while any(dirty):
        for index, (total, parts) in enumerate(equations):
            if not dirty[index]:
                continue
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
                cell = min(shown, key=_order(values))
                hidden.add(cell)
                for other in sums_of[cell]:
                    dirty[other] = 1
            # Seen to with every cell hidden so far, its own included.
            dirty[index] = 0
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


class _Layout:
    """What the figures of every area are computed over and does not change between
    computations: the tree of areas (the directory is read-only), the order to add it up
    in, and the sums of each table to hide small counts in, each with what it hid last.
    Walking the directory and writing out the sums of the city's 30 days cost about as
    much as hiding the cells themselves."""

    def __init__(self, areas: AreaDirectory) -> None:
        self.children, self.villages = _tree(areas)
        self.village_set = frozenset(self.villages)
        self.parents = list(self.children.items())
        # Every node, each after the areas in it: adding up in this order sees every
        # area's children done (the order `_roll_up` fills a dict in).
        order: dict[int, int] = {}
        _roll_up(self.children, {}, ROOT, order)
        self.upward = list(order)
        self.sums_up = [(node, self.children[node]) for node in self.upward
                        if node in self.children]
        # Where each kota and kecamatan a donor may choose counts its pledges: itself and
        # the kota above it.
        self.pledge_areas: dict[int, list[int]] = {}
        for node in self.children:
            entry = areas.get(node) if node != ROOT else None
            if entry is not None:
                self.pledge_areas[node] = _pledge_areas(areas, node)
        self._areas = weakref.ref(areas)
        self._systems: dict[tuple[str, int], SumSystem[Any]] = {}
        self._lock = threading.Lock()

    def pledge_targets(self, target: int) -> list[int]:
        """The kota and kecamatan a pledge for `target` counts in."""
        known = self.pledge_areas.get(target)
        if known is not None:
            return known
        areas = self._areas()
        return _pledge_areas(areas, target) if areas is not None else []

    def households(self, key: str) -> SumSystem[int]:
        """The sums of one count of households: each area and the areas in it."""
        with self._lock:
            system = self._systems.get((key, 0))
            if system is None:
                system = self._systems[(key, 0)] = SumSystem(self.parents)
            return cast(SumSystem[int], system)

    def days(self, key: str, day_count: int) -> SumSystem[Cell]:
        """The sums of one count per day: each area and the areas in it on each day and
        over the period, and each area's days and their period."""
        with self._lock:
            system = self._systems.get((key, day_count))
            if system is None:
                columns = [*range(day_count), PERIOD]
                # The nodes in the order a set of them has always listed them in: the
                # order of the sums decides which cell is hidden among equals.
                nodes = {node for node in self.upward} if day_count else set()
                equations: list[tuple[Cell, list[Cell]]] = [
                    ((node, column), [(kid, column) for kid in kids])
                    for node, kids in self.parents for column in columns]
                equations += [((node, PERIOD), [(node, day) for day in range(day_count)])
                              for node in nodes]
                system = self._systems[(key, day_count)] = SumSystem(equations)
            return cast(SumSystem[Cell], system)


def _pledge_areas(areas: AreaDirectory, target: int) -> list[int]:
    # Donors choose a kota or kecamatan: counted there and in the kota above it.
    found = []
    entry = areas.get(target)
    while entry is not None and entry.level != AreaLevel.PROVINCE:
        if entry.level in (AreaLevel.REGENCY, AreaLevel.DISTRICT):
            found.append(entry.id)
        entry = areas.get(entry.parent_id) if entry.parent_id is not None else None
    return found


_LAYOUTS: weakref.WeakKeyDictionary[AreaDirectory, _Layout] = weakref.WeakKeyDictionary()
_LAYOUTS_LOCK = threading.Lock()


def _layout(areas: AreaDirectory) -> _Layout:
    with _LAYOUTS_LOCK:
        layout = _LAYOUTS.get(areas)
        if layout is None:
            layout = _LAYOUTS[areas] = _Layout(areas)
        return layout


def _add_up(layout: _Layout, leaves: Mapping[int, Sequence[int]], width: int
            ) -> dict[int, list[int]]:
    """Every node's figures, `width` of them, from those of the kelurahan."""
    zero = [0] * width
    sums: dict[int, list[int]] = {}
    for village in layout.villages:
        found = leaves.get(village)
        sums[village] = list(found) if found is not None else zero
    for node, kids in layout.sums_up:
        total = [0] * width
        for kid in kids:
            for index, value in enumerate(sums[kid]):
                total[index] += value
        sums[node] = total
    return sums


async def public_snapshot(session: AsyncSession, areas: AreaDirectory, *, since: date,
                          until: date, timezone: str, min_count: int) -> PublicSnapshot:
    """The published figures of the whole city, every kota, kecamatan and kelurahan in
    scope, and their days from `since` to `until`."""
    snapshot = PublicSnapshot(min_count, since, until)
    snapshot.totals = await totals(session)
    per_village = await village_sums(session)
    per_day = await daily_counts_by_village(session, since=since, until=until,
                                            timezone=timezone)
    pledges = await pledges_by_target(session)
    # The rest is Python over every area and day (tens of ms for a city): one piece of
    # work beside the event loop, which goes on serving meanwhile.
    layout = _layout(areas)
    snapshot.areas = await beside_loop(_publish, layout, snapshot, per_village, per_day,
                                       pledges)
    return snapshot


def _publish(layout: _Layout, snapshot: PublicSnapshot,
             per_village: Mapping[int, Sequence[int]],
             per_day: Mapping[int, Mapping[int, tuple[int, int]]],
             pledges: Mapping[int, tuple[int, int]]) -> dict[int, PublicArea]:
    """Every area's published figures from the kelurahan's."""
    since, min_count = snapshot.since, snapshot.min_count
    figure_keys = (*HOUSEHOLD_COUNTS, "packages_delivered", "money_delivered")
    rolled = _add_up(layout, per_village, len(figure_keys))
    counts: dict[str, dict[int, int]] = {
        key: {node: sums[index] for node, sums in rolled.items()}
        for index, key in enumerate(figure_keys)}
    hidden: dict[str, set[int]] = {
        key: layout.households(key).hidden(counts[key], min_count)
        for key in HOUSEHOLD_COUNTS}
    for key, leader in FOLLOWS.items():
        hidden[key] = hidden[leader]

    day_count = (snapshot.until - since).days + 1
    day_values: dict[str, dict[Cell, int]] = {}
    day_hidden: dict[str, set[Cell]] = {}
    for index, key in enumerate(DAY_COUNTS):
        leaves: dict[int, list[int]] = {}
        for village, counted in per_day.items():
            line = leaves[village] = [0] * day_count
            for day, pair in counted.items():
                if 0 <= day < day_count:
                    line[day] = pair[index]
        per_node = _add_up(layout, leaves, day_count)
        values: dict[Cell, int] = {}
        for node, sums in per_node.items():
            values.update(((node, day), value) for day, value in enumerate(sums))
            values[(node, PERIOD)] = sum(sums)
        day_values[key] = values
        day_hidden[key] = layout.days(key, day_count).hidden(values, min_count)

    pledge_sums: dict[int, list[int]] = {}
    for target, (packages, money) in pledges.items():
        for node in layout.pledge_targets(target):
            summed = pledge_sums.setdefault(node, [0, 0])
            summed[0] += packages
            summed[1] += money

    dates = [since + timedelta(days=day) for day in range(day_count)]
    requests, deliveries = day_values["requests"], day_values["deliveries"]
    requests_hidden, deliveries_hidden = day_hidden["requests"], day_hidden["deliveries"]
    published: dict[int, PublicArea] = {}
    for node in [ROOT, *layout.children, *layout.villages]:
        if node in published:
            continue
        figures: dict[str, int | None] = {
            key: None if node in hidden[key] else counts[key].get(node, 0)
            for key in figure_keys}
        if node in layout.village_set:
            figures["pledge_packages_received"] = figures["pledge_money_received"] = None
        elif node != ROOT:
            packages, money = pledge_sums.get(node, [0, 0])
            figures["pledge_packages_received"], figures["pledge_money_received"] = \
                packages, money
        days = []
        for day, when in enumerate(dates):
            cell = (node, day)
            days.append(PublicDay(
                when, None if cell in requests_hidden else requests.get(cell, 0),
                None if cell in deliveries_hidden else deliveries.get(cell, 0)))
        cell = (node, PERIOD)
        period = {"requests": None if cell in requests_hidden else requests.get(cell, 0),
                  "deliveries": None if cell in deliveries_hidden
                  else deliveries.get(cell, 0)}
        published[node] = PublicArea(node, figures, days, period)
    return published
