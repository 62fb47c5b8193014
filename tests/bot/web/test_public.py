"""The public transparency page and its JSON, through a real aiohttp server and client on
a real database: the figures, drill-down by area, languages, the cache, the security
headers, and no personal data at all."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event, inspect, select, text

from gotong.bot.config import PublicConfig
from gotong.bot.services import Services
from gotong.bot.web.app import create_web_app
from gotong.bot.web.public import (
    FIRST_FIGURES,
    FIRST_FIGURES_WAIT,
    PUBLIC_FIGURES,
    FigureCache,
)
from gotong.models.help_request import HelpRequest
from tests.models.aid_world import AidWorld
from tests.models.test_stats import allocated, delivered, regency

TIMUR = "Jakarta Timur"
SELATAN = "Jakarta Selatan"
# What the households told the bot: none of it may reach the public page.
HOUSEHOLDS = [
    {"name": "Siti Rahmawati", "phone": "+6281234567801", "street": "Jl. Kenanga Ungu 17",
     "nik": "3175014506880001"},
    {"name": "Budi Santoso", "phone": "+6281234567802", "street": "Gg. Melati Putih 3",
     "nik": "3175021203790002"},
    {"name": "Dewi Lestari", "phone": "+6281234567803", "street": "Jl. Anggrek Merah 9",
     "nik": "3174015807900003"},
]
DONOR_PHONE = "+6281299990000"


class Clock:
    """The cache's clock, moved by the test instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    client: TestClient[Any, Any]
    clock: Clock
    world: AidWorld
    aggregator: int
    households: list[int]

    async def page(self, query: str = "", status: int = 200) -> str:
        response = await self.client.get(f"/public{query}")
        assert response.status == status
        return await response.text()

    async def figures(self, query: str = "") -> dict[str, Any]:
        response = await self.client.get(f"/public/figures.json{query}")
        assert response.status == 200
        assert response.content_type == "application/json"
        figures: dict[str, Any] = await response.json()
        return figures

    async def json_text(self, query: str = "") -> str:
        response = await self.client.get(f"/public/figures.json{query}")
        assert response.status == 200
        return await response.text()


@pytest.fixture
async def site(services: Services) -> AsyncIterator[Site]:
    """Jakarta Timur: one household helped with 2 packages, one waiting, one submitted;
    5 packages received for Jakarta Timur. Jakarta Selatan: one household waiting.

    Every count is shown (`public.min_count` 1): these tests are about the figures;
    hiding small ones is tested in test_public_suppression."""
    services.config = replace(services.config, public=PublicConfig(min_count=1))
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    await world.pledge(aggregator, 6, received=5, target_area_id=regency(services, TIMUR))
    village = world.village(TIMUR)
    households = [await world.household(village, name=h["name"], phone=h["phone"],
                                        street=h["street"], nik=h["nik"],
                                        verified=index < 2)
                  for index, h in enumerate(HOUSEHOLDS)]
    await world.household(world.village(SELATAN))
    await delivered(world, aggregator, households[0], quantity=2)
    clock = Clock()
    app = create_web_app(services=services)
    # Replaced before start-up: the test moves the clock rather than sleeping.
    app[PUBLIC_FIGURES] = FigureCache(seconds=5, clock=clock)
    async with TestClient(TestServer(app)) as client:
        # The figures computed as the server started, before the tests move the clock.
        await app[FIRST_FIGURES]
        yield Site(client, clock, world, aggregator, households)


def figure(html: str, key: str, area: int | None = None) -> str:
    """The text shown for a figure: a headline card's, or a table row's."""
    scope = html if area is None else html[html.index(f'<tr data-area="{area}"'):]
    found = re.search(rf'data-figure="{key}">([^<]*)<', scope)
    assert found, key
    return found.group(1)


async def test_the_page_shows_the_headline_figures_per_kota_and_the_chart(site: Site) -> None:
    html = await site.page()

    assert '<html lang="id">' in html
    assert "Bantuan dalam angka" in html and "Keluarga terbantu" in html
    assert figure(html, "households_helped") == "1"
    assert figure(html, "households_waiting") == "3"
    assert figure(html, "packages_delivered") == "2"
    assert figure(html, "pledge_packages_received") == "5"
    assert figure(html, "kelurahan_reached") == "1"
    assert figure(html, "aggregators") == "1"
    timur = regency(site.world.services, TIMUR)
    assert figure(html, "households_helped", timur) == "1"
    assert figure(html, "households_waiting", timur) == "2"
    assert figure(html, "households_waiting", regency(site.world.services, SELATAN)) == "1"
    assert f'href="/public?area={timur}">Kota Jakarta Timur</a>' in html
    # The chart of the last 30 days, described for screen readers.
    assert 'role="img"' in html and "<desc" in html and 'class="visually-hidden"' in html
    assert "30 hari terakhir" in html
    assert 'data-refresh-seconds="30"' in html and 'data-figures-url="/public/figures.json"' in html
    assert '<script src="/static/public.js">' in html
    assert "style=" not in html
    script = await site.client.get("/static/public.js")
    assert script.status == 200


async def test_the_json_has_the_same_figures(site: Site) -> None:
    figures = await site.figures()

    assert figures["area"] is None
    assert figures["headline"] == {
        "households_helped": 1, "households_waiting": 3, "households_in_delivery": 0,
        "packages_delivered": 2, "kelurahan_reached": 1, "pledge_packages_received": 5,
        "pledge_money_received": 0, "aggregators": 1, "volunteers": 0}
    rows = {row["name"]: row for row in figures["areas"]}
    assert set(rows) == {r.name for r in site.world.services.areas.regencies()}
    assert rows["Kota Jakarta Timur"] == {
        "id": regency(site.world.services, TIMUR), "name": "Kota Jakarta Timur",
        "level": "regency", "households_helped": 1, "households_waiting": 2,
        "households_in_delivery": 0, "packages_delivered": 2, "money_delivered": 0,
        "pledge_packages_received": 5, "pledge_money_received": 0, "suppressed": []}
    days = figures["days"]
    assert len(days) == 30 and [d["day"] for d in days] == sorted(d["day"] for d in days)
    # Everything happened today (in Jakarta).
    assert (days[-1]["requests"], days[-1]["deliveries"]) == (4, 1)
    assert sum(d["requests"] for d in days[:-1]) == 0


async def test_drill_down_to_kecamatan_and_kelurahan_with_a_breadcrumb(site: Site) -> None:
    areas = site.world.services.areas
    village = site.world.village(TIMUR)
    district = site.world.district_of(village)
    timur = regency(site.world.services, TIMUR)
    district_name = areas.get(district).name  # type: ignore[union-attr]
    village_name = areas.get(village).name  # type: ignore[union-attr]

    html = await site.page(f"?area={timur}")
    assert 'href="/public">Semua wilayah</a>' in html
    assert '<span aria-current="page">Kota Jakarta Timur</span>' in html
    assert "Kecamatan di Kota Jakarta Timur" in html
    assert f'href="/public?area={district}">{district_name}</a>' in html
    assert figure(html, "households_helped") == "1"
    assert figure(html, "households_waiting") == "2"
    assert figure(html, "pledge_packages_received") == "5"
    assert figure(html, "households_helped", district) == "1"
    # The language switch keeps the area.
    assert f'<input type="hidden" name="area" value="{timur}">' in html

    html = await site.page(f"?area={district}")
    assert f'href="/public?area={timur}">Kota Jakarta Timur</a>' in html
    assert f'<span aria-current="page">{district_name}</span>' in html
    assert f"Kelurahan di {district_name}" in html
    assert figure(html, "households_waiting", village) == "2"
    # Donors choose a kota or kecamatan: the kelurahan table has no pledge column, and
    # the kecamatan has no pledge of its own (the one for the kota is not split).
    assert figure(html, "pledge_packages_received") == "0"
    assert 'data-figure="pledge_packages_received">' not in html[html.index("<table"):]

    html = await site.page(f"?area={village}")
    assert f'href="/public?area={district}">{district_name}</a>' in html
    assert f'<span aria-current="page">{village_name}</span>' in html
    assert "<table class=\"areas\"" not in html
    assert figure(html, "households_helped") == "1"
    figures = await site.figures(f"?area={village}")
    assert figures["area"] == {"id": village, "name": village_name, "level": "village"}
    assert figures["headline"] == {"households_helped": 1, "households_waiting": 2,
                                   "households_in_delivery": 0, "packages_delivered": 2}
    assert figures["areas"] == []
    assert figures["days"][-1]["requests"] == 3

    south = await site.figures(f"?area={regency(site.world.services, SELATAN)}")
    assert south["headline"]["households_waiting"] == 1
    assert south["days"][-1] == {**south["days"][-1], "requests": 1, "deliveries": 0}


async def test_an_unknown_area_is_not_found(site: Site) -> None:
    [province] = [e for e in (site.world.services.areas.get(r.parent_id or 0)
                              for r in site.world.services.areas.regencies()[:1]) if e]
    for query in ("?area=999", "?area=abc", "?area=-1", f"?area={province.id}",
                  "?area=" + "9" * 40):
        html = await site.page(query, status=404)
        assert "Wilayah tidak ditemukan" in html and 'href="/public"' in html
        response = await site.client.get(f"/public/figures.json{query}")
        assert response.status == 404


async def test_the_language_switch_changes_the_text_and_is_remembered(site: Site) -> None:
    timur = regency(site.world.services, TIMUR)
    response = await site.client.get(f"/public?lang=en&area={timur}")
    assert response.status == 200
    assert response.cookies["lang"].value == "en"
    html = await response.text()
    assert '<html lang="en">' in html
    assert "Aid in numbers" in html and "Households helped" in html
    assert "Kecamatan in Kota Jakarta Timur" in html
    assert "Keluarga terbantu" not in html

    html = await site.page()  # the cookie is sent back
    assert "Households helped" in html and "The last 30 days" in html

    html = await site.page("?lang=id")
    assert "Keluarga terbantu" in html and "Households helped" not in html


async def test_no_personal_data_on_the_page_or_in_the_json(site: Site) -> None:
    async with site.world.services.sessions() as session:
        references = list((await session.scalars(select(HelpRequest.reference))).all())
    shown = [await site.page(), await site.page("?lang=en"), await site.json_text()]
    village = site.world.village(TIMUR)
    for query in (f"?area={site.world.district_of(village)}", f"?area={village}"):
        shown += [await site.page(query), await site.json_text(query)]
    private = [value for household in HOUSEHOLDS for value in household.values()]
    private += [h["phone"].removeprefix("+") for h in HOUSEHOLDS]
    private += [h["phone"].replace("+62", "0") for h in HOUSEHOLDS]
    private += [*references, DONOR_PHONE, "Jl. Mawar", "Warga ", "Posko"]
    for shown_text in shown:
        assert [value for value in private if value in shown_text] == []


async def test_home_goes_to_the_public_page_without_the_playground(site: Site) -> None:
    response = await site.client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/public"


async def test_the_figures_change_after_a_delivery_once_the_cache_expires(site: Site) -> None:
    waiting = site.households[1]
    assert (await site.figures())["headline"]["households_helped"] == 1

    await delivered(site.world, site.aggregator, waiting, quantity=3)
    # Within the cache interval every visitor gets the figures computed before.
    assert (await site.figures())["headline"]["households_helped"] == 1
    assert figure(await site.page(), "packages_delivered") == "2"

    site.clock.now += 5.1
    headline = (await site.figures())["headline"]
    assert (headline["households_helped"], headline["households_waiting"],
            headline["packages_delivered"]) == (2, 2, 5)
    assert figure(await site.page(), "packages_delivered") == "5"
    timur = regency(site.world.services, TIMUR)
    assert (await site.figures(f"?area={timur}"))["headline"]["households_helped"] == 2

    # Aid allocated to a household shows as on its way.
    await site.world.pledge(site.aggregator, 1, received=1)
    await allocated(site.world, site.aggregator,
                    await site.world.household(site.world.village(TIMUR)))
    site.clock.now += 5.1
    headline = (await site.figures())["headline"]
    assert (headline["households_waiting"], headline["households_in_delivery"]) == (2, 1)


@contextlib.contextmanager
def reads(services: Services) -> Iterator[list[str]]:
    """The statements run on the read connections meanwhile (SQLite's own, or the one
    pool), where the public page reads."""
    engine = (services.read_engine or services.engine).sync_engine
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    listener: Callable[..., None] = count
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


async def test_a_burst_of_visitors_costs_one_set_of_queries(site: Site) -> None:
    with reads(site.world.services) as statements:
        # Past the figures computed at start-up.
        site.clock.now += 10
        await site.figures()
        one_visit = len(statements)
        assert one_visit > 0
        statements.clear()
        site.clock.now += 20
        await asyncio.gather(*(site.figures() for _ in range(20)),
                             *(site.page() for _ in range(5)))
        assert len(statements) == one_visit
        statements.clear()
        await asyncio.gather(*(site.figures() for _ in range(5)))
        assert statements == []


async def test_security_headers(site: Site) -> None:
    for path in ("/public", "/public/figures.json", "/public?area=1"):
        response = await site.client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    figures = await site.client.get("/public/figures.json")
    assert figures.headers["Cache-Control"] == "public, max-age=5"


async def test_the_figures_are_computed_at_start_up_before_the_first_visitor(
        services: Services) -> None:
    """A process's first computation works out the hidden cells from nothing (the dear
    one): started with the server, the first visitor after a restart finds it done."""
    app = create_web_app(services=services)
    clock = Clock()
    app[PUBLIC_FIGURES] = FigureCache(seconds=5, clock=clock)
    with reads(services) as statements:
        async with TestClient(TestServer(app)) as client:
            await app[FIRST_FIGURES]
            at_start = len(statements)
            assert at_start > 0
            response = await client.get("/public/figures.json")
            assert response.status == 200
            assert len(statements) == at_start


async def test_the_server_starts_when_the_figures_cannot_be_computed(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    """A table the figures read away at start: the server starts all the same, says so
    in the log, and the first visitor once it is back computes the figures."""
    async with services.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE pledge RENAME TO pledge_away"))
    app = create_web_app(services=services)
    try:
        async with TestClient(TestServer(app)) as client:
            await app[FIRST_FIGURES]
            assert "public figures not computed at start" in caplog.text
            async with services.engine.begin() as connection:
                await connection.execute(text("ALTER TABLE pledge_away RENAME TO pledge"))
            response = await client.get("/public/figures.json")
            assert response.status == 200
            assert "headline" in await response.json()
    finally:
        async with services.engine.begin() as connection:
            tables = await connection.run_sync(
                lambda sync: inspect(sync).get_table_names())
            if "pledge_away" in tables:
                await connection.execute(text("ALTER TABLE pledge_away RENAME TO pledge"))


async def test_a_database_stalled_at_start_delays_the_server_only_a_moment(
        services: Services) -> None:
    """The figures' tables locked by another transaction as the server starts (on
    PostgreSQL, where a lock makes a read wait): the server serves after waiting
    `FIRST_FIGURES_WAIT` for them, and the figures are computed once the lock goes."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's readers do not wait for a writer")
    async with services.engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(text("LOCK TABLE pledge IN ACCESS EXCLUSIVE MODE"))
        app = create_web_app(services=services)
        started = time.monotonic()
        async with TestClient(TestServer(app)) as client:
            assert time.monotonic() - started < FIRST_FIGURES_WAIT + 5
            response = await client.get("/healthz")
            assert response.status == 200
            assert not app[FIRST_FIGURES].done()
            await transaction.rollback()
            async with asyncio.timeout(10):
                await app[FIRST_FIGURES]
            response = await client.get("/public/figures.json")
            assert response.status == 200
