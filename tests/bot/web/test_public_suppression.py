"""Small counts on the public page and in its JSON: hidden below `public.min_count` per
area and per day, and hidden with a second cell wherever the parent's total would give
them away by subtraction; the page and the JSON hide the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from gotong.bot.services import Services
from gotong.bot.web.app import create_web_app
from gotong.models.disclosure import suppress
from tests.bot.web.test_public import TIMUR, figure
from tests.models.aid_world import AidWorld
from tests.models.test_stats import delivered, regency


@pytest.fixture
async def client(services: Services) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_web_app(services=services))) as client:
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
