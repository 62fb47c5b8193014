"""The database a benchmark runs Gotong on: made for the run, and gone after it.

Without a URL it is an SQLite file in a temporary directory.  With a PostgreSQL URL it is a
new database on that server, ``gotong_bench_<random>``, created from the server's maintenance
database and dropped at the end, after a failure too; the random name keeps runs at the same
time (and the test suite's ``gotong_test_<random>`` databases) apart, as tests/conftest.py
does for its own.  Either way the database starts empty: the benchmark migrates it and loads
the areas itself (``open_services(config, migrate=True)``), the same on both.

The statements that create and drop databases (``run_admin``) serve allocation.py's kept
databases too.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from gotong.models.db import create_engine

# CREATE and DROP DATABASE are sent from here: a database cannot drop itself while it is
# connected to, and every PostgreSQL server has this one.
MAINTENANCE_DATABASE = "postgres"
NAME_PREFIX = "gotong_bench_"


@dataclass(frozen=True)
class ScratchDatabase:
    kind: str  # "sqlite" or "postgresql"
    url: str  # for the engine, password included
    where: str  # for people: no password

    @property
    def header(self) -> str:
        return f"database: {self.kind} ({self.where})"


def postgres_server(url: str) -> URL:
    """The server of a PostgreSQL URL, reached with asyncpg (as Gotong reaches it), so that a
    plain ``postgresql://`` URL serves too."""
    return make_url(url).set(drivername="postgresql+asyncpg")


async def run_admin(server: URL, statement: str, **params: Any) -> list[Any]:
    """One statement outside any transaction (CREATE and DROP DATABASE refuse to run in
    one); the rows it returned, if any."""
    engine = create_engine(server.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def scratch_database(url: str | None) -> AsyncIterator[ScratchDatabase]:
    """An empty database for one run: an SQLite file when `url` is None, else a new database
    on the PostgreSQL server of `url`."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="gotong-bench-") as tmp:
            path = Path(tmp) / "g.sqlite3"
            yield ScratchDatabase("sqlite", f"sqlite+aiosqlite:///{path}",
                                  f"temporary file {path}")
        return
    server = postgres_server(url)
    admin = server.set(database=MAINTENANCE_DATABASE)
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    await run_admin(admin, f'CREATE DATABASE "{name}"')
    try:
        database = server.set(database=name)
        yield ScratchDatabase("postgresql", database.render_as_string(hide_password=False),
                              f"new database {database.render_as_string()}, dropped at the end")
    finally:
        # FORCE ends the connections a failed run may have left open, which would otherwise
        # keep the database from being dropped.
        await run_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(value: str) -> str:
    """--database's type: a PostgreSQL URL."""
    try:
        backend = make_url(value).get_backend_name()
    except ArgumentError:
        raise argparse.ArgumentTypeError(f"not a database URL: {value!r}") from None
    if backend != "postgresql":
        raise argparse.ArgumentTypeError(
            "give a PostgreSQL server's URL (postgresql://...), or leave --database out for "
            "a temporary SQLite file")
    return value


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", metavar="URL", type=database_url, default=None,
                        help="a PostgreSQL server, as a database URL: Gotong runs on a new "
                             "database made there for the run and dropped after it "
                             "(default: an SQLite file in a temporary directory)")
