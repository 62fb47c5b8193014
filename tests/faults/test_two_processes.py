"""Two `gotong run` processes on one PostgreSQL database behind a load balancer that
sends Telegram's webhook calls to each in turn; one is killed with SIGKILL in the middle
of a burst, while it holds chats, and not started again. The other takes over the dead
one's chats once their leases run out: every update answered 200 is handled once, each
chat in order, repeating at most what was in flight at the kill."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.faults.burst import (
    Gotong,
    Observer,
    Scenario,
    TelegramWebhook,
    common_env,
    free_port,
    telegram_env,
)

log = logging.getLogger(__name__)

Reference = dict[int, list[str]]


@pytest.fixture
def telegram(telegram_api: FakeTelegramAPI) -> FakeTelegramAPI:
    # Sends are answered late, so the kill finds some in flight.
    telegram_api.response_delay = 0.05
    return telegram_api


@contextlib.asynccontextmanager
async def writes_held(database_url: str) -> AsyncIterator[None]:
    """Every unit of work waits at its conversation's write while this lasts: updates are
    claimed (leased) but none is finished, so a kill then leaves leases behind for sure
    (otherwise it mostly falls while replies are sent, the updates already finished)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("LOCK TABLE conversation IN EXCLUSIVE MODE"))
            yield
    finally:
        await engine.dispose()


async def wait_holding(observer: Observer, process: Gotong) -> None:
    """Until the process holds updates it cannot finish (generously: a shared machine)."""
    for _ in range(600):
        if await observer.leased_by(process):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{process.name} claimed nothing while writes were held")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_one_of_two_processes_killed(tmp_path: Path, database_url: str,
                                           telegram: FakeTelegramAPI,
                                           reference_of: Callable[[str], Reference]) -> None:
    reference = reference_of("telegram")
    processes = [
        Gotong(tmp_path, name, {**common_env(database_url, free_port()),
                                **telegram_env(telegram, webhook=True)})
        for name in ("first", "second")]
    platform = TelegramWebhook(telegram, [process.url for process in processes])
    async with Scenario(database_url, platform, processes, platform.poster) as run:
        await run.start()
        taken = await run.wait_taken(0.4)
        victim, survivor = processes
        async with writes_held(database_url):
            await wait_holding(run.observer, victim)
            await victim.kill()
            # Counted before the writes go on: a step of the dead process already sent
            # as one statement (the whole unit of work, outside a transaction) may still
            # complete once they do, and its update is then handled, once.
            stranded = await run.observer.leased_by(victim)
        # The dead process changes nothing more: what it holds waits for its leases to
        # run out, and what it left unsettled may arrive twice.
        in_flight = await run.observer.unsettled_messages(platform.channel)
        report = await run.finish(reference, allowed_duplicates=in_flight)
        log.info("one of two killed after %d of %d updates, holding %d, %d messages in "
                 "flight: %s", taken, run.burst.total, stranded, sum(in_flight.values()),
                 report)
        assert stranded > 0
        assert taken < run.burst.total, "the burst ended before the kill"
        assert survivor.running
