"""Two `gotong run` processes on one PostgreSQL database behind a load balancer that
sends Telegram's webhook calls to each in turn; one is killed with SIGKILL in the middle
of a burst and not started again. The other takes over the dead one's chats once their
leases run out: every update answered 200 is handled once, each chat in order, repeating
at most what was in flight at the kill."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.faults.burst import (
    Gotong,
    Scenario,
    TelegramWebhook,
    common_env,
    free_port,
    telegram_env,
)

log = logging.getLogger(__name__)

Reference = dict[int, list[str]]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        # Sends are answered late, so the kill finds some in flight.
        fake.response_delay = 0.05
        yield fake


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
        await victim.kill()
        in_flight = await run.observer.unsettled_messages(platform.channel)
        report = await run.finish(reference, allowed_duplicates=in_flight)
        log.info("one of two killed after %d of %d updates, %d messages in flight: %s",
                 taken, run.burst.total, sum(in_flight.values()), report)
        assert taken < run.burst.total, "the burst ended before the kill"
        assert survivor.running
