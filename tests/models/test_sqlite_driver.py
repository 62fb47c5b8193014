"""SQLite statements run on the event loop's thread on the writer's connection (and wait
for a write lock another process holds in the database thread, the loop going on), take
one trip to the database thread each on a read-only connection, and behave as the
driver's own: rows, row counts, inserted ids, many rows at once, errors of the right
kind, streamed results and transactions."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from gotong.models.base import UTCDateTime
from gotong.models.db import create_engine, create_read_engine
from gotong.models.sqlite_driver import (
    CHECKPOINT_EVERY,
    WRITER_AUTOCHECKPOINT,
    OneTripConnection,
    Prepared,
)

metadata = MetaData()
item = Table("item", metadata,
             Column("id", Integer, primary_key=True),
             Column("name", String, unique=True, nullable=False))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.sqlite3'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The calls made in aiosqlite's thread, by name, from now on."""
    made: list[str] = []
    execute: Any = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield made


async def test_the_writer_runs_its_statements_without_a_trip(
        engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.connect() as connection:
        await connection.execute(select(item.c.id))  # the connection's set-up, first
        await connection.commit()
        trips.clear()
        await connection.execute(insert(item).values(name="a"))
        rows = (await connection.execute(select(item.c.name))).all()
        await connection.commit()
        assert trips == []
        assert rows == [("a",)]


async def test_a_read_only_connection_takes_one_trip_a_statement(
        engine: AsyncEngine, trips: list[str], tmp_path: Path) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(item).values(name="a"))
    reads = create_read_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.sqlite3'}")
    assert reads is not None
    try:
        async with reads.connect() as connection:
            await connection.execute(select(item.c.id))  # the connection's set-up, first
            await connection.commit()
            trips.clear()
            rows = (await connection.execute(select(item.c.name))).all()
            assert len(trips) == 1, trips
            assert rows == [("a",)]
            await connection.execute(select(item.c.id))
            assert len(trips) == 2, trips
    finally:
        await reads.dispose()


async def test_a_write_lock_held_elsewhere_is_waited_for_off_the_loop(
        engine: AsyncEngine, trips: list[str], tmp_path: Path) -> None:
    async with engine.connect() as connection:
        await connection.execute(select(item.c.id))
        await connection.commit()
    trips.clear()
    other = sqlite3.connect(tmp_path / "driver.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0
    waiting = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not waiting.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def write() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(item).values(name="a"))

    ticking = asyncio.create_task(tick())
    writing = asyncio.create_task(write())
    try:
        await asyncio.sleep(0.3)
        assert not writing.done()
        # The loop went on while the writer waited for the lock.
        assert ticks >= 3, ticks
        other.execute("ROLLBACK")
        await asyncio.wait_for(writing, 10)
    finally:
        waiting.set()
        await ticking
        other.close()
    # The BEGIN waited in the thread; the insert and the commit did not go there.
    assert trips == ["execute"], trips
    async with engine.connect() as connection:
        assert (await connection.execute(select(item.c.name))).scalars().all() == ["a"]
        # The connection's busy timeout is its own again.
        assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 30_000


async def test_rows_counts_and_ids_are_the_drivers(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        first = await connection.execute(insert(item).values(name="a"))
        assert first.inserted_primary_key == (1,)
        await connection.execute(insert(item), [{"name": f"n{i}"} for i in range(5)])
        changed = await connection.execute(
            text("UPDATE item SET name = name || '!' WHERE id > 3"))
        assert changed.rowcount == 3
        result = await connection.execute(select(item.c.id, item.c.name).order_by(item.c.id))
        assert result.fetchone() == (1, "a")
        assert result.fetchmany(2) == [(2, "n0"), (3, "n1")]
        assert [tuple(row) for row in result] == [(4, "n2!"), (5, "n3!"), (6, "n4!")]
        assert result.fetchone() is None
        assert await connection.scalar(select(item.c.name).where(item.c.id == 99)) is None


async def test_errors_keep_their_kind_and_roll_back(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(item).values(name="a"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(item).values(name="b"))
            await connection.execute(insert(item).values(name="a"))
    with pytest.raises(OperationalError):
        async with engine.connect() as connection:
            await connection.execute(text("SELECT * FROM no_such_table"))
    async with engine.connect() as connection:
        names = (await connection.execute(select(item.c.name))).scalars().all()
    assert names == ["a"]


async def test_streamed_results_read_in_batches(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(item), [{"name": f"n{i:04d}"} for i in range(2500)])
    async with engine.connect() as connection:
        result = await connection.stream(
            select(item.c.name).order_by(item.c.id).execution_options(yield_per=1000))
        names = [row.name async for row in result]
    assert names == [f"n{i:04d}" for i in range(2500)]


async def test_a_transaction_begins_with_its_first_statement(
        engine: AsyncEngine, trips: list[str], tmp_path: Path) -> None:
    async with engine.connect() as connection:
        await connection.execute(select(item.c.id))
        await connection.commit()
        trips.clear()
        # Begun and ended with nothing run: nothing sent at all.
        async with connection.begin():
            pass
        assert trips == []
        # The BEGIN IMMEDIATE goes with the first statement, on the loop's thread.
        async with connection.begin():
            await connection.execute(insert(item).values(name="a"))
        assert trips == []
    # And it did take the write lock at once: another connection cannot write meanwhile.
    async with engine.connect() as connection, connection.begin():
        await connection.execute(select(item.c.id))
        other = sqlite3.connect(tmp_path / "driver.sqlite3", timeout=0,
                                isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


stamped = Table("stamped", metadata,
                Column("id", Integer, primary_key=True),
                Column("at", UTCDateTime(), nullable=False),
                Column("data", JSON, nullable=False))


async def test_prepared_statements_run_together_as_sqlalchemy_would(
        engine: AsyncEngine, trips: list[str]) -> None:
    at = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    put = insert(stamped).values(at=bindparam("at"), data=bindparam("data")) \
        .returning(stamped.c.id)
    rename = update(item).where(item.c.name == bindparam("old")).values(name=bindparam("new"))
    async with engine.connect() as connection:
        await connection.execute(insert(item).values(name="a"))
        await connection.commit()
        adapter = (await connection.get_raw_connection()).dbapi_connection
        assert isinstance(adapter, OneTripConnection)
        await connection.begin()
        trips.clear()
        outcomes = await adapter.run_together([
            (Prepared(put, connection.dialect), {"at": at, "data": {"k": [1, "é"]}}),
            (Prepared(rename, connection.dialect), {"old": "a", "new": "b"}),
            (Prepared(rename, connection.dialect), {"old": "none", "new": "c"})])
        assert trips == []  # the writer's: on the loop's thread
        (rows, _, _), (_, renamed, _), (_, none, _) = outcomes
        assert len(rows) == 1 and (renamed, none) == (1, 0)
        await connection.commit()
        # Read back through SQLAlchemy: stored as its own types store them.
        assert (await connection.execute(select(stamped.c.at, stamped.c.data))).one() == \
            (at, {"k": [1, "é"]})
        assert (await connection.execute(select(item.c.name))).scalars().all() == ["b"]


async def test_statements_run_together_fail_as_sqlalchemy_fails(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(insert(item).values(name="a"))
        await connection.commit()
        adapter = (await connection.get_raw_connection()).dbapi_connection
        assert isinstance(adapter, OneTripConnection)
        await connection.begin()
        add = Prepared(insert(item).values(name=bindparam("name")), connection.dialect)
        with pytest.raises(IntegrityError):
            await adapter.run_together([(add, {"name": "b"}), (add, {"name": "a"})])
        await connection.rollback()
        # The transaction's first statement went too: nothing is left of it.
        assert (await connection.execute(select(item.c.name))).scalars().all() == ["a"]


async def test_the_wal_is_checkpointed_beside_the_writer(
        engine: AsyncEngine, tmp_path: Path) -> None:
    """The writer leaves checkpoints to a connection in a worker thread: the WAL stays
    small although the writer itself would checkpoint only past 10,000 pages (40 MB)."""
    async with engine.connect() as connection:
        adapter = (await connection.get_raw_connection()).dbapi_connection
        assert isinstance(adapter, OneTripConnection) and adapter.checkpointer is not None
        assert (await connection.exec_driver_sql("PRAGMA wal_autocheckpoint")
                ).scalar() == WRITER_AUTOCHECKPOINT
    for number in range(8 * CHECKPOINT_EVERY):
        async with engine.begin() as connection:
            # A few pages a commit: the row, its index entry, their neighbours.
            await connection.execute(insert(item).values(name=f"{number:06d}" + "x" * 3000))
        await asyncio.sleep(0)
    # Eight hundred commits of some 26 kB each make a WAL of 21 MB unless it starts
    # afresh; each checkpoint that catches the writer between two transactions lets it
    # (about 2.6 MB of WAL a checkpoint's interval; a checkpoint that finds the writer
    # busy leaves it to the next one).
    wal = tmp_path / "driver.sqlite3-wal"
    assert wal.stat().st_size < 8_000_000, wal.stat().st_size


@pytest.mark.timing
async def test_a_long_read_does_not_hold_the_writer_through_a_checkpoint(
        engine: AsyncEngine, tmp_path: Path) -> None:
    """An export reads one snapshot for seconds. A checkpoint beside the writer that
    waited for that reader would hold the writer's lock as long (its busy timeout, 5 s
    before): the chat's writes must not wait behind an export."""
    async with engine.begin() as connection:
        await connection.execute(insert(item).values(name="first"))
    reads = create_read_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.sqlite3'}")
    assert reads is not None
    try:
        async with reads.connect() as reader:
            # The export's snapshot, kept for as long as the writes below go on.
            assert (await reader.execute(select(item.c.name))).scalars().all() == ["first"]
            started = time.monotonic()
            for number in range(3 * CHECKPOINT_EVERY):
                async with engine.begin() as connection:
                    await connection.execute(insert(item).values(name=f"n{number}"))
                await asyncio.sleep(0)
            elapsed = time.monotonic() - started
            # Some 0.5 s on a quiet machine; three checkpoints waiting 5 s each: 15 s.
            assert elapsed < 6, elapsed
            await reader.rollback()
    finally:
        await reads.dispose()
