"""Small counts on the public page and in its JSON: hidden below `public.min_count` per
area and per day, and hidden with a second cell wherever the parent's total would give
them away by subtraction; the page and the JSON hide the same."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Sequence
from fractions import Fraction
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gotong.bot.services import Services
from gotong.bot.web.app import create_web_app
from gotong.bot.web.public import PUBLIC_FIGURES, FigureCache
from gotong.models.disclosure import SumSystem, determined, suppress
from tests.bot.web.test_public import TIMUR, figure
from tests.models.aid_world import AidWorld
from tests.models.test_stats import delivered, regency


@pytest.fixture
async def client(services: Services) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_web_app(services=services)
    # The households come after start-up, whose figures would otherwise serve 5 s.
    app[PUBLIC_FIGURES] = FigureCache(seconds=0)
    async with TestClient(TestServer(app)) as client:
        yield client


async def get_json(client: TestClient[Any, Any], query: str) -> dict[str, Any]:
    response = await client.get(f"/public/figures.json{query}")
    assert response.status == 200
    figures: dict[str, Any] = await response.json()
    return figures


async def get_page(client: TestClient[Any, Any], query: str) -> str:
    response = await client.get(f"/public{query}&lang=en")
    assert response.status == 200
    return await response.text()


async def test_one_household_is_not_shown_and_cannot_be_worked_out(
        services: Services, client: TestClient[Any, Any]) -> None:
    """Kelurahan A: one household helped. Kelurahan B, in the same kecamatan: five. The
    kecamatan's 6 is shown; A's 1 is hidden, and so is B's 5, or 6 - 5 would give A."""
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    await world.pledge(aggregator, 6, received=6)
    district = world.district_of(world.village(TIMUR))
    lone, five = [v.id for v in services.areas.children(district)[:2]]
    for village, count in ((lone, 1), (five, 5)):
        for _ in range(count):
            await delivered(world, aggregator, await world.household(village))

    alone = await get_json(client, f"?area={lone}")
    assert alone["min_count"] == 5
    assert alone["headline"]["households_helped"] is None
    assert alone["headline"]["packages_delivered"] is None
    assert {"households_helped", "packages_delivered"} <= set(alone["headline_suppressed"])
    # The day of its request and of its delivery: hidden too.
    today = alone["days"][-1]
    assert (today["requests"], today["deliveries"]) == (None, None)
    assert today["suppressed"] == ["requests", "deliveries"]
    assert alone["period"]["requests"] is None
    page = await get_page(client, f"?area={lone}")
    assert figure(page, "households_helped") == "fewer than 5"
    assert "<td>1</td>" not in page
    assert "Counts of households below 5" in page

    parent = await get_json(client, f"?area={district}")
    assert parent["headline"]["households_helped"] == 6
    rows = {row["id"]: row for row in parent["areas"]}
    assert rows[lone]["households_helped"] is None and rows[five]["households_helped"] is None
    assert "households_helped" in rows[five]["suppressed"]
    # Every other kelurahan shows its 0.
    assert all(row["households_helped"] == 0 for key, row in rows.items()
               if key not in (lone, five))
    page = await get_page(client, f"?area={district}")
    assert figure(page, "households_helped", lone) == "fewer than 5"
    assert figure(page, "households_helped", five) == "fewer than 5"
    assert figure(page, "households_helped") == "6"
    # Today's 6 requests and 6 deliveries in the kecamatan show; in the kota and the city,
    # the same total over one kecamatan cannot give a kelurahan away.
    assert parent["days"][-1]["requests"] == 6

    city = await get_json(client, "?")
    timur = {row["id"]: row for row in city["areas"]}[regency(services, TIMUR)]
    assert timur["households_helped"] == 6
    assert city["headline"]["households_helped"] == 6


def test_no_hidden_cell_stands_alone_in_a_sum() -> None:
    # A kecamatan of 6 in kelurahan of 1, 5 and 0: the 1 and the 5 are hidden.
    values = {"d": 6, "a": 1, "b": 5, "c": 0}
    assert suppress(values, [("d", ["a", "b", "c"])], 5) == {"a", "b"}
    # A total below the threshold is hidden with all its parts above 0.
    assert suppress({"d": 3, "a": 1, "b": 2}, [("d", ["a", "b"])], 5) == {"d", "a", "b"}
    # Nothing small: nothing hidden.
    assert suppress({"d": 20, "a": 10, "b": 10}, [("d", ["a", "b"])], 5) == set()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=5), min_size=1,
                max_size=4), st.integers(2, 6))
def test_hidden_cells_cannot_be_worked_out_from_a_two_level_table(
        groups: list[list[int]], threshold: int) -> None:
    values: dict[str, int] = {}
    sums: list[tuple[str, list[str]]] = []
    for g, parts in enumerate(groups):
        names = [f"{g}.{p}" for p in range(len(parts))]
        values.update(zip(names, parts, strict=True))
        values[f"{g}"] = sum(parts)
        sums.append((f"{g}", names))
    values["root"] = sum(sum(parts) for parts in groups)
    sums.append(("root", [f"{g}" for g in range(len(groups))]))
    hidden = suppress(values, sums, threshold)
    assert {k for k, v in values.items() if 0 < v < threshold} <= hidden
    for total, parts in sums:
        unknown = [k for k in (total, *parts) if k in hidden]
        assert len(unknown) != 1, (total, parts, hidden)
        if unknown and total not in hidden:
            assert sum(values[p] for p in parts if p in hidden) >= threshold


# --- several sums together ---------------------------------------------------------

Cell = tuple[str, int]
PERIOD = -1


def rank(rows: Sequence[dict[Cell, int]], columns: Sequence[Cell]) -> int:
    """The rank of the rows (dense, in fractions)."""
    matrix = [[Fraction(row.get(c, 0)) for c in columns] for row in rows]
    found = 0
    for c in range(len(columns)):
        pivot = next((i for i in range(found, len(matrix)) if matrix[i][c]), None)
        if pivot is None:
            continue
        matrix[found], matrix[pivot] = matrix[pivot], matrix[found]
        for i in range(len(matrix)):
            if i != found and matrix[i][c]:
                factor = matrix[i][c] / matrix[found][c]
                matrix[i] = [a - factor * b for a, b in zip(matrix[i], matrix[found],
                                                            strict=True)]
        found += 1
    return found


def worked_out(sums: Sequence[tuple[Cell, list[Cell]]], hidden: set[Cell]) -> set[Cell]:
    """The hidden cells that the shown cells and the sums pin down, as whoever reads the
    page could: x is known when adding "x = ?" as an equation adds nothing new to those
    the page gives (the rank does not grow)."""
    columns = sorted(hidden)
    rows = []
    for total, parts in sums:
        row = {p: 1 for p in parts if p in hidden}
        if total in hidden:
            row[total] = row.get(total, 0) - 1
        if any(row.values()):
            rows.append(row)
    base = rank(rows, columns)
    return {c for c in columns if rank([*rows, {c: 1}], columns) == base}


def area_days(days: list[list[list[int]]]) -> tuple[dict[Cell, int],
                                                   list[tuple[Cell, list[Cell]]]]:
    """A city of kecamatan of kelurahan, a count for each kelurahan on each day: every
    area's count on each day and over the period, and the sums the page shows (an area
    and the areas in it, on each day and over the period; an area's days)."""
    values: dict[Cell, int] = {}
    sums: list[tuple[Cell, list[Cell]]] = []
    columns = [*range(len(days)), PERIOD]
    kids = {f"{g}": [f"{g}.{k}" for k in range(len(group))]
            for g, group in enumerate(days[0])}
    for day, groups in enumerate(days):
        for g, group in enumerate(groups):
            values.update(((f"{g}.{k}", day), value) for k, value in enumerate(group))
    areas = [kid for names in kids.values() for kid in names]
    for area in areas:
        values[(area, PERIOD)] = sum(values[(area, day)] for day in range(len(days)))
    for column in columns:
        for parent, names in kids.items():
            values[(parent, column)] = sum(values[(n, column)] for n in names)
            sums.append(((parent, column), [(n, column) for n in names]))
        values[("city", column)] = sum(values[(p, column)] for p in kids)
        sums.append((("city", column), [(p, column) for p in kids]))
    for area in [*areas, *kids, "city"]:
        sums.append(((area, PERIOD), [(area, day) for day in range(len(days))]))
    return values, sums


@st.composite
def city_days(draw: st.DrawFn) -> list[list[list[int]]]:
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    count = st.sampled_from([0, 0, 1, 2, 3, 4, 5, 6, 8, 12])
    return [[[draw(count) for _ in range(kids)] for kids in shape]
            for _ in range(draw(st.integers(1, 3)))]


@settings(max_examples=150, deadline=None)
@given(city_days(), st.integers(2, 6))
# Each sum on its own has two hidden cells or none, and yet the days and the areas
# together give the hidden cells away.
@example([[[0], [6]], [[4], [1]]], 5)
def test_no_hidden_cell_can_be_worked_out_from_all_the_sums_together(
        days: list[list[list[int]]], threshold: int) -> None:
    values, sums = area_days(days)
    hidden = suppress(values, sums, threshold)
    assert {k for k, v in values.items() if 0 < v < threshold} <= hidden
    assert worked_out(sums, hidden) == set(), (values, hidden)
    # The page's own check says the same as this one, of any set of hidden cells.
    per_sum = {k for k, v in values.items() if 0 < v < threshold}
    assert determined(sums, per_sum) == worked_out(sums, per_sum)


def test_a_whole_citys_days_are_checked_in_time_for_the_page() -> None:
    """About Jakarta's size (45 kecamatan of 6 kelurahan, 30 days and their sum: some
    10,000 cells, a few thousand hidden), and a town's few hundred cells; the time is
    printed (about 200 ms and 12 ms on a quiet 2-core machine; the page computes it at
    most once per 5 s, beside its event loop)."""
    rng = random.Random(7)
    for kota, kecamatan, kelurahan, day_count, limit in ((1, 3, 5, 30, 0.5),
                                                        (5, 9, 6, 30, 5.0)):
        days = [[[rng.choice([0, 0, 0, 1, 2, 3, 6]) for _ in range(kelurahan)]
                 for _ in range(kota * kecamatan)] for _ in range(day_count)]
        values, sums = area_days(days)
        started = time.perf_counter()
        hidden = suppress(values, sums, 5)
        took = time.perf_counter() - started
        print(f"{len(values)} cells, {len(hidden)} hidden: {took * 1000:.0f} ms")
        assert took < limit
        assert not determined(sums, hidden)


def test_sums_kept_between_computations_hide_as_afresh() -> None:
    """The sums prepared once for every computation hide what `suppress` hides for
    the same values: when they change, when they go back to earlier ones, when the
    threshold changes and when nothing changed since the last computation."""
    rng = random.Random(11)
    kept: SumSystem[Any] | None = None
    earlier = None
    for step in range(12):
        days = [[[rng.choice([0, 0, 1, 2, 3, 6, 9]) for _ in range(4)] for _ in range(3)]
                for _ in range(5)]
        values, sums = area_days(days)
        if step % 4 == 3 and earlier is not None:
            values = earlier
        threshold = 5 if step % 3 else 3
        if kept is None:
            kept = SumSystem(sums)
        for _ in range(2):
            assert kept.hidden(values, threshold) == suppress(values, sums, threshold)
        earlier = values
