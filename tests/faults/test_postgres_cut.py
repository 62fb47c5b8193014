"""PostgreSQL cuts every connection of `gotong run` (pg_terminate_backend, as a failover
or an operator would), three times a second apart, in the middle of a burst: the process
recovers by itself, without a restart, and nothing is lost or handled twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.faults.burst import (
    ANY,
    Gotong,
    Scenario,
    TelegramWebhook,
    common_env,
    free_port,
    telegram_env,
)

log = logging.getLogger(__name__)

CUTS = 3
CUT_EVERY = 1.0

Reference = dict[int, list[str]]


async def cut_connections(database_url: str) -> int:
    """Terminate every other session on the test's database; how many there were."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = :name AND pid <> pg_backend_pid()"),
                {"name": make_url(database_url).database})
            return len(result.all())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_connections_cut_during_a_burst(tmp_path: Path, database_url: str,
                                              telegram_api: FakeTelegramAPI,
                                              reference_of: Callable[[str], Reference]
                                              ) -> None:
    reference = reference_of("telegram")
    gotong = Gotong(tmp_path, "gotong", {**common_env(database_url, free_port()),
                                         **telegram_env(telegram_api, webhook=True)})
    platform = TelegramWebhook(telegram_api, [gotong.url])
    # Slower typing makes the burst outlast the cuts.
    async with Scenario(database_url, platform, [gotong], platform.poster, think=0.4) as run:
        await run.start()
        taken = await run.wait_taken(0.25)
        cut, sent = [], []
        for _ in range(CUTS):
            cut.append(await cut_connections(database_url))
            sent.append(platform.messages_sent())
            await asyncio.sleep(CUT_EVERY)
        assert sum(cut) > 0
        during = run.burst.taken_count
        report = await run.finish(reference, allowed_duplicates=ANY)
        log.info("connections cut %s after %d of %d updates (%d taken by the last cut), "
                 "with %s of %d messages sent: %s", cut, taken, run.burst.total, during,
                 sent, platform.messages_sent(), report)
        assert taken < run.burst.total, "the burst ended before the first cut"
        assert gotong.runs == 1 and gotong.running
