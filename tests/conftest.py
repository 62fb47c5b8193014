"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when
GOTONG_TEST_DATABASE_URL is set), the configuration and the services built from it, and
the fake Telegram and WhatsApp APIs."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gotong.bot.config import Config, DatabaseConfig, PrivacyConfig, TelegramConfig
from gotong.bot.logs import quiet_third_party
from gotong.bot.services import Services, open_services, prepare_database
from gotong.handlers.catalog import Catalog
from gotong.models.base import Base
from gotong.models.db import create_engine
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.whatsapp_api import FakeWhatsAppAPI

# PTB 22 gives RetryAfter.retry_after as a timedelta only when asked to (and warns otherwise).
os.environ.setdefault("PTB_TIMEDELTA", "true")

PG_ENV = "GOTONG_TEST_DATABASE_URL"
NIK_KEY = "test-nik-key-" + "k" * 32
BACKENDS = ["sqlite", "postgresql"]
# Tables that tests never change; every other table is emptied between tests.
# The figures' clock is the configured zone's, not data of a test.
KEPT_TABLES = {"area", "alembic_version", "figure_clock"}
# The marker that makes `fake` stand for another fake API than Telegram's.
FAKE_API_MARKER = "fake_api"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{FAKE_API_MARKER}(fixture): the fixture that `fake` stands for in the "
        "marked tests, e.g. \"whatsapp_api\"; telegram_api where none is marked")


def _run_aside(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on its own loop, in a thread: session fixtures can be
    first requested from inside a test's running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work()).result()


def _prepare(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            await prepare_database(engine, ("DKI Jakarta",))
        finally:
            await engine.dispose()

    _run_aside(run)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the areas loaded, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "gotong.sqlite3"
    _prepare(f"sqlite+aiosqlite:///{path}")
    return path


async def run_admin(server: str, statement: str) -> None:
    """Run a statement outside any transaction (CREATE/DROP DATABASE) on a server."""
    engine = create_engine(server)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this test run alone, dropped at the end."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    server = make_url(base).set(drivername="postgresql+asyncpg")
    name = f"gotong_test_{uuid.uuid4().hex[:12]}"

    def admin(statement: str) -> Coroutine[Any, Any, None]:
        return run_admin(server.render_as_string(hide_password=False), statement)

    _run_aside(lambda: admin(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        _prepare(url)
        yield url
    finally:
        _run_aside(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            names = [t.name for t in Base.metadata.sorted_tables if t.name not in KEPT_TABLES]
            await conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "gotong.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
    else:
        url: str = request.getfixturevalue("postgres_database")
        await _empty_tables(url)
        yield url


@pytest.fixture
def config(database_url: str) -> Config:
    return Config(
        database=DatabaseConfig(url=database_url),
        privacy=PrivacyConfig(nik_hash_key=NIK_KEY),
        telegram=TelegramConfig(token="123456:TEST-TOKEN"),
    )


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load(strict=True)


@pytest.fixture
async def services(config: Config, catalog: Catalog) -> AsyncIterator[Services]:
    quiet_third_party()
    services = await open_services(config, migrate=False, catalog=catalog)
    try:
        yield services
    finally:
        await services.close()


def with_telegram(config: Config, **changes: object) -> Config:
    return replace(config, telegram=replace(config.telegram, **changes))


@pytest.fixture
async def telegram_api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as api:
        yield api


@pytest.fixture
async def whatsapp_api() -> AsyncIterator[FakeWhatsAppAPI]:
    async with FakeWhatsAppAPI() as api:
        yield api


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeTelegramAPI | FakeWhatsAppAPI:
    """The fake API that the test and the harness it uses talk to: Telegram's, or the one a
    module or test names with ``@pytest.mark.fake_api("whatsapp_api")``. Most tests are
    about one platform; one name lets theirs read alike whichever it is."""
    marker = request.node.get_closest_marker(FAKE_API_MARKER)
    api: FakeTelegramAPI | FakeWhatsAppAPI = request.getfixturevalue(
        marker.args[0] if marker is not None else "telegram_api")
    return api
