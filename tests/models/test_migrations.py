"""The Alembic migrations build exactly the schema the models describe, on SQLite and
PostgreSQL, starting from an empty database."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gotong.bot.services import prepare_database
from gotong.models import all_models  # noqa: F401  (registers every table)
from gotong.models.base import Base
from gotong.models.db import create_engine, refresh_statistics
from gotong.models.migrate import alembic_config, downgrade, upgrade
from tests.conftest import BACKENDS, PG_ENV, run_admin

TABLES = {"area", "contact", "contact_role", "conversation", "help_request", "request_event",
          "inbound_update", "outbox_message", "sender_presence", "broadcast", "aggregator",
          "aggregator_area",
          "staff_member", "invite", "audit_entry", "pledge", "digest", "stock_item", "delivery",
          "volunteer", "volunteer_area",
          "delivery_source", "dashboard_link", "dashboard_session",
          "support_conversation", "support_message", "proxy", "phone_confirmation",
          "number_asked", "figure_clock", "village_figures", "village_day_figures"}


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database of this test alone."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}")
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    server = make_url(base).set(drivername="postgresql+asyncpg")
    server_url = server.render_as_string(hide_password=False)
    name = f"gotong_migrations_{uuid.uuid4().hex[:12]}"
    await run_admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        engine = create_engine(server.set(database=name).render_as_string(hide_password=False))
        try:
            yield engine
        finally:
            await engine.dispose()
    finally:
        await run_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def differences(engine: AsyncEngine) -> list[Any]:
    """What autogenerate would put in a new migration: nothing when the schema is right."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


async def current_revision(engine: AsyncEngine) -> str | None:
    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(current)


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


def test_one_head_and_a_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1
    revisions = list(script.walk_revisions())
    assert all(r.down_revision is None or isinstance(r.down_revision, str) for r in revisions)


def test_models_know_every_table() -> None:
    assert set(Base.metadata.tables) == TABLES


async def test_empty_database_has_no_revision(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is None
    assert await table_names(engine) == set()


async def test_upgrade_builds_the_schema_of_the_models(engine: AsyncEngine) -> None:
    await upgrade(engine)
    assert await table_names(engine) == TABLES | {"alembic_version"}
    assert await current_revision(engine) == head()
    assert await differences(engine) == []


async def test_upgrade_twice_is_harmless(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO area (id, level, parent_id, name, code) "
            "VALUES (1000031, 'province', NULL, 'DKI Jakarta', '31')"))
    await upgrade(engine)
    assert await current_revision(engine) == head()
    assert await differences(engine) == []
    async with engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM area"))).scalars().all()
    assert names == ["DKI Jakarta"]


async def test_downgrade_to_base_and_upgrade_again(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await downgrade(engine, "base")
    assert await current_revision(engine) is None
    assert await table_names(engine) <= {"alembic_version"}
    await upgrade(engine)
    assert await current_revision(engine) == head()
    assert await table_names(engine) == TABLES | {"alembic_version"}
    assert await differences(engine) == []


async def test_upgrade_to_each_revision_in_turn(engine: AsyncEngine) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        await upgrade(engine, revision)
        assert await current_revision(engine) == revision
    assert await differences(engine) == []


async def test_the_comparison_sees_a_schema_that_drifted(engine: AsyncEngine) -> None:
    # Guards the tests above against comparing nothing with nothing.
    await upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DROP INDEX ix_area_code"))
    drift = await differences(engine)
    assert [(d[0], d[1].name) for d in drift if isinstance(d, tuple)] == [
        ("add_index", "ix_area_code")]


async def test_the_queue_indexes_keep_their_descending_rank(engine: AsyncEngine) -> None:
    """Rebuilding a table on SQLite once dropped the DESC of an index: the order the
    queue and the allocation proposal are read in must be the index's own."""
    await upgrade(engine)
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = await connection.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE name LIKE 'ix_help_request_%queue'"))
        else:
            rows = await connection.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE indexname LIKE 'ix_help_request_%queue'"))
        definitions = dict(rows.all())
    assert sorted(definitions) == ["ix_help_request_queue", "ix_help_request_village_queue"]
    for definition in definitions.values():
        assert "queue_rank DESC" in definition, definition


async def test_sqlite_gathers_the_statistics_its_planner_needs(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'stats.sqlite3'}")
    try:
        await prepare_database(engine, ("DKI Jakarta",))
        async with engine.connect() as connection:
            analysed = {row[0] for row in await connection.exec_driver_sql(
                "SELECT tbl FROM sqlite_stat1")}
            await connection.exec_driver_sql(
                "INSERT INTO contact (channel, chat_id, language, created_at) "
                "VALUES ('telegram', '1', 'id', '2026-11-01 10:00:00')")
            await connection.commit()
        # Tables that were empty are counted once they have rows (the dispatcher does it
        # daily).
        await refresh_statistics(engine)
        async with engine.connect() as connection:
            again = {row[0] for row in await connection.exec_driver_sql(
                "SELECT tbl FROM sqlite_stat1")}
    finally:
        await engine.dispose()
    assert "area" in analysed and "contact" not in analysed
    assert {"area", "contact"} <= again
