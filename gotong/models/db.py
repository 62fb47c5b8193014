"""Engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from gotong.models import sqlite_driver

SQLITE_CONNECTIONS = 1
# Read-only connections to SQLite beside the writer: pages, exports and figures. In WAL
# mode a reader neither waits for the writer nor makes it wait; two let a page be read
# while an export streams, and each holds a thread and a page cache of its own.
SQLITE_READ_CONNECTIONS = 2


def create_engine(url: str, *, echo: bool = False, pool_size: int = 20) -> AsyncEngine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    # Parameters (names, phones, addresses) never appear in error messages or logs.
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
        # Every unit of work ends in COMMIT or ROLLBACK; the pool's own rollback on
        # return would only cost another trip to the database thread.
        kwargs["pool_reset_on_return"] = None
        # SQLite has one writer at a time: units of work queue for one connection instead
        # of sleeping in SQLite's busy handler.
        kwargs["pool_size"] = SQLITE_CONNECTIONS
        kwargs["max_overflow"] = 0
        kwargs["pool_timeout"] = 60
        if parsed.get_driver_name() == "aiosqlite":
            # The same driver, one trip to its thread per statement (sqlite_driver.py).
            parsed = parsed.set(drivername=f"sqlite+{sqlite_driver.DRIVER}")
        if parsed.get_driver_name() == sqlite_driver.DRIVER:
            # The writer runs its statements on the loop's thread (sqlite_driver.py).
            kwargs["connect_args"]["inline"] = True
    else:
        # No ping before each use: it would cost a round trip per transaction. A
        # connection the server cut fails its next statement instead; SQLAlchemy then
        # drops every connection of that age, and the work is retried (the inbound queue,
        # the dispatcher) or answered with an error the platform retries (a webhook).
        kwargs["pool_pre_ping"] = False
        # Kept open: a connection opened per burst costs the server milliseconds of CPU,
        # and the prepared statements it had are gone with it.
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size // 2
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
    return engine


def create_read_engine(url: str, *, echo: bool = False) -> AsyncEngine | None:
    """On an SQLite file, an engine of read-only connections for what only reads (pages,
    exports, figures), so that none of it queues for the one writer that the chat and the
    dispatcher use; None elsewhere: PostgreSQL's pool serves readers and writers alike,
    and an in-memory database is not shared between connections.

    The file is opened read-only (`mode=ro`): a write through these connections fails
    instead of taking the write lock. Each transaction is a snapshot of the database
    taken at its first statement (WAL), however long it lasts.
    """
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None
    location = quote(str(Path(database).resolve()))
    read_url = parsed.set(drivername=f"sqlite+{sqlite_driver.DRIVER}",
                          database=f"file:{location}",
                          query={"mode": "ro", "uri": "true"})
    engine = create_async_engine(
        read_url, echo=echo, hide_parameters=True, connect_args={"timeout": 30},
        pool_reset_on_return=None, pool_size=SQLITE_READ_CONNECTIONS, max_overflow=0,
        pool_timeout=60)
    event.listen(engine.sync_engine, "connect", _sqlite_read_pragmas)
    event.listen(engine.sync_engine, "begin", _sqlite_begin_deferred)
    return engine


def _sqlite_begin_immediate(connection: Any) -> None:
    # Take the write lock when the unit of work starts. With the driver's deferred
    # BEGIN, two concurrent read-then-write transactions fail with "database is locked"
    # instead of waiting for each other; savepoints also need the BEGIN to be ours.
    # The driver sends it with the transaction's first statement (sqlite_driver.py).
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, sqlite_driver.OneTripConnection):
        dbapi_connection.begin_immediate()
    else:
        await_only(connection.connection.driver_connection.execute("BEGIN IMMEDIATE"))


def _sqlite_begin_deferred(connection: Any) -> None:
    # A read transaction: every statement of a page reads the same snapshot.
    connection.connection.dbapi_connection.begin_deferred()


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not emit BEGIN itself: _sqlite_begin_deferred does. The journal
    # mode is the file's, set by the writer; foreign keys are only checked on writes.
    dbapi_connection.isolation_level = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not emit BEGIN itself: _sqlite_begin_immediate does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across process crashes in WAL mode; only power loss can
    # roll back the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Rows SQLite samples per index when it gathers statistics: enough to rank indexes,
# and milliseconds even on millions of rows.
ANALYSIS_LIMIT = 1000


async def refresh_statistics(engine: AsyncEngine) -> None:
    """Have the database gather the table statistics its query planner chooses indexes by.

    Without them it guesses: on a large database SQLite can read a whole index of
    deliveries where two lookups would do, and PostgreSQL, on a database whose statistics
    say the queues are empty, claims updates by nested loops over every waiting one
    (seconds per claim during a burst). PostgreSQL's autovacuum keeps them, when it is on.
    """
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            await connection.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
            await connection.exec_driver_sql("ANALYZE")
        else:
            await connection.exec_driver_sql("ANALYZE")
        await connection.commit()


# The tables whose size swings within minutes (a burst of updates, a broadcast): their
# statistics are refreshed often on PostgreSQL, whatever autovacuum does.
QUEUE_TABLES = ("inbound_update", "outbox_message", "sender_presence")


async def refresh_queue_statistics(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as connection:
        await connection.exec_driver_sql(f"ANALYZE {', '.join(QUEUE_TABLES)}")
        await connection.commit()


async def hold_advisory_lock(engine: AsyncEngine, key: int
                             ) -> Callable[[], Awaitable[None]] | None:
    """Take a PostgreSQL session lock on `key` for as long as this process lives or until
    the returned function releases it; None when another process holds it. SQLite is
    owned by one process: nothing to take (and its one connection is not kept)."""
    if engine.dialect.name != "postgresql":
        async def nothing() -> None:
            return None

        return nothing
    connection = await engine.connect()
    try:
        taken = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                        {"key": key})
        await connection.commit()
    except BaseException:
        await connection.close()
        raise
    if not taken:
        await connection.close()
        return None
    return connection.close
