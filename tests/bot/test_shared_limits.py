"""Three `gotong dispatch` processes on one PostgreSQL database keep to one set of
Telegram's limits together: no message over the overall or the per-chat limit, and
together they use at least nine tenths of the overall one."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gotong.bot.dispatcher import PRESENCE_EVERY
from gotong.bot.services import Services
from gotong.models.presence import SenderPresence
from tests.bot.dispatch_harness import (
    add_contacts,
    numbered_notice,
    queue,
    start_dispatch,
    statuses,
)
from tests.fakes.telegram_api import FakeTelegramAPI

# Measures time itself: run alone, after the other tests (make pytest).
pytestmark = pytest.mark.timing

GOTONG = Path(sys.executable).parent / "gotong"
PROCESSES = 3
LIMIT = 30.0  # Telegram's own: light enough to reach on a loaded machine
CHATS = 150
ROWS = 450  # three messages a chat: the per-chat limit binds too


async def all_present(services: Services, count: int) -> None:
    async with asyncio.timeout(60):
        while True:
            async with services.sessions() as session:
                present = await session.scalar(
                    select(func.count()).select_from(SenderPresence)
                    .where(SenderPresence.channel == "telegram"))
            if present == count:
                return
            await asyncio.sleep(0.1)


@pytest.fixture
def fake(telegram_api: FakeTelegramAPI) -> FakeTelegramAPI:
    telegram_api.enforce_rate_limits(overall_per_second=LIMIT, per_chat_per_second=1.0)
    return telegram_api


async def test_three_dispatchers_share_one_limit(tmp_path: Path, fake: FakeTelegramAPI,
                                                 services: Services, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several dispatchers share a PostgreSQL database")
    # Each process is configured with the whole limit: sharing it is their business.
    processes = [await start_dispatch(tmp_path, fake, database_url, f"dispatch{n}.log",
                                      TELEGRAM__MESSAGES_PER_SECOND=LIMIT,
                                      NOTIFICATIONS__POLL_SECONDS=0.2)
                 for n in range(PROCESSES)]
    try:
        # All three are up and have seen each other before the load comes: each has said
        # it is alive, and each has since looked how many share the limit (a process
        # slow to start on a busy machine would otherwise count two at first).
        await all_present(services, PROCESSES)
        await asyncio.sleep(2 * PRESENCE_EVERY.total_seconds())
        contacts = await add_contacts(services, [8_000_000 + n for n in range(CHATS)])
        await queue(services, [numbered_notice(contacts[n % CHATS], n) for n in range(ROWS)])
        async with asyncio.timeout(90):
            while len(fake.all_messages()) < ROWS:
                for process in processes:
                    assert process.returncode is None, \
                        (tmp_path / "dispatch0.log").read_text(errors="replace")
                await asyncio.sleep(0.05)
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in processes))
    assert fake.rate_limit_violations == 0, fake.violations_by_chat
    assert await statuses(services) == {"sent": ROWS}
    # Each did its part.
    logs = [(tmp_path / f"dispatch{n}.log").read_text(errors="replace")
            for n in range(PROCESSES)]
    assert all("dispatcher started" in log for log in logs)
    times = sorted(m.sent_at for m in fake.all_messages())
    # The rate while all of it is under way: the middle four fifths of the messages.
    start, end = times[len(times) // 10], times[len(times) * 9 // 10]
    rate = (len(times) * 8 // 10) / (end - start)
    assert rate >= 0.9 * LIMIT, f"{rate:.1f} messages a second with a limit of {LIMIT}"
