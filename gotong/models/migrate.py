"""Alembic migrations, run from our own code on the application's engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head",
                  timezone: str | None = None) -> None:
    """Upgrade the schema; `timezone` (i18n.timezone) is the zone of the days that the
    figures' counters are first counted in (0026)."""
    await _run(engine, command.upgrade, revision, timezone)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, command.downgrade, revision)


async def _run(engine: AsyncEngine, step: Callable[[AlembicConfig, str], None],
               revision: str, timezone: str | None = None) -> None:
    """Run an Alembic command in one transaction on the engine's connection."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        if timezone is not None:
            config.attributes["timezone"] = timezone
        step(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the database's revision; None for an empty database
    head: str  # the newest revision this version of Gotong knows

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


@cache
def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """Where the database's schema is against this version's migrations (one query)."""

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return SchemaState(await connection.run_sync(current), _head())
