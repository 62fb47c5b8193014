"""The errors a database in trouble really raises, met by an update's unit of work: SQLite
locked by another process past the busy timeout, and a PostgreSQL session terminated in
the middle of a query. The inbound queue counts them as the database's: the update waits
and is tried again, and is never set aside, even with inbound.max_attempts at 1."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gotong.bot.channels.inbound import InboundQueue, InboundSettings
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.inbound import QueuedUpdate, finish_inbound, inbound_counts

CHANNEL = "telegram"
ONE_TRY = InboundSettings(lease=timedelta(seconds=5), max_attempts=1,
                          retry_base=timedelta(milliseconds=20),
                          retry_max=timedelta(milliseconds=50),
                          poll=timedelta(milliseconds=50), concurrent_chats=4)


async def handle_one(services: Services, fault: Callable[[QueuedUpdate], Awaitable[None]]
                     ) -> list[int]:
    """Store one update and run the queue until it is finished; its first attempt meets
    the fault inside its unit of work. The attempts each try saw."""
    queue = InboundQueue(services.engine, ONE_TRY)
    tries: list[int] = []

    async def handler(update: QueuedUpdate) -> bool:
        tries.append(update.attempts)
        if len(tries) == 1:
            await fault(update)
        else:
            await queue.finish_alone(update)
        return True

    queue.register(CHANNEL, handler)
    await queue.accept(CHANNEL, "1", "chat-1", {"text": "hello"})
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(stop))
    try:
        await queue.wait_finished(1)
    finally:
        stop.set()
        await worker
    return tries


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_locked_by_another_process(services: Services, database_url: str) -> None:
    path = make_url(database_url).database
    assert path is not None
    engine = services.engine
    # The engine keeps one connection: a short busy timeout on it, or the test waits 30 s.
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA busy_timeout = 100")
        await connection.commit()

    async def locked(update: QueuedUpdate) -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            async with engine.begin() as connection:
                await finish_inbound(connection, update.id, update.owner, utcnow())
        finally:
            other.execute("ROLLBACK")
            other.close()

    tries = await handle_one(services, locked)
    assert tries == [0, 1]
    async with services.sessions() as session:
        assert await inbound_counts(session) == (0, 0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgres_session_terminated_mid_query(services: Services,
                                                     database_url: str) -> None:
    admin = create_async_engine(database_url, poolclass=NullPool)

    async def terminate(pid: int) -> None:
        await asyncio.sleep(0.3)
        async with admin.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    async def cut(update: QueuedUpdate) -> None:
        async with services.engine.begin() as connection:
            await finish_inbound(connection, update.id, update.owner, utcnow())
            pid = int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0)
            terminating = asyncio.create_task(terminate(pid))
            try:
                await connection.execute(text("SELECT pg_sleep(10)"))
            finally:
                await terminating

    try:
        tries = await handle_one(services, cut)
    finally:
        await admin.dispose()
    assert tries == [0, 1]
    async with services.sessions() as session:
        assert await inbound_counts(session) == (0, 0)
