"""The notification dispatcher of a real Telegram channel, sending to the fake Bot API,
and helpers to fill the outbox directly."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.config import Config
from gotong.bot.dispatcher import Dispatcher
from gotong.bot.process import attach_dispatcher
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.outbox import Notice, OutboxMessage, Purpose, enqueue
from tests.fakes.telegram_api import FakeTelegramAPI

# Notices carry a reference that tells them apart; this finds it in a sent text.
REFERENCE = re.compile(r"GT-(\d{6})")


def dispatch_config(config: Config, fake: FakeTelegramAPI, *, messages_per_second: float = 30.0,
                    chat_messages_per_second: float = 1.0, **notifications: Any) -> Config:
    return replace(
        config,
        telegram=replace(config.telegram, token=fake.token, api_base_url=fake.base_url,
                         api_file_url=fake.base_file_url,
                         messages_per_second=messages_per_second,
                         chat_messages_per_second=chat_messages_per_second),
        notifications=replace(config.notifications, **notifications),
    )


class DispatchUnderTest:
    """A Telegram channel that sends only, with its dispatcher running in the background."""

    def __init__(self, services: Services, config: Config,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.services = services
        self.channel = TelegramChannel(config.telegram, services.conversations,
                                       services.sessions)
        self.dispatcher: Dispatcher = attach_dispatcher(
            replace(services, config=config), self.channel, clock=clock)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, receive: bool = False) -> None:
        if receive:
            await self.channel.start()
        else:
            await self.channel.open_for_sending()
        self._task = asyncio.create_task(self.dispatcher.run(self._stop))

    async def stop(self) -> None:
        await self.channel.stop()
        self._stop.set()
        if self._task is not None:
            await self._task


async def add_contacts(services: Services, chat_ids: Sequence[int], *, language: str = "id"
                       ) -> list[int]:
    async with services.sessions() as session, session.begin():
        result = await session.execute(
            insert(Contact).returning(Contact.id),
            [{"channel": "telegram", "chat_id": str(c), "language": language,
              "created_at": utcnow()} for c in chat_ids],
        )
        return list(result.scalars().all())


def numbered_notice(contact_id: int, number: int, purpose: Purpose = Purpose.STATUS
                    ) -> Notice:
    """A status notice whose text carries GT-<number>, to follow it to the chat."""
    return Notice(contact_id=contact_id, key="notice.request_cancelled",
                  params={"reference": f"GT-{number:06d}"}, purpose=purpose,
                  essential=purpose <= Purpose.STATUS)


async def queue(services: Services, notices: Sequence[Notice]) -> None:
    async with services.sessions() as session, session.begin():
        now = utcnow()
        for notice in notices:
            enqueue(session, notice, now)


async def statuses(services: Services) -> dict[str, int]:
    async with services.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
        return {status: count for status, count in rows.all()}


async def wait_settled(services: Services, within: float = 60.0) -> dict[str, int]:
    """Wait until no row is pending or being sent; the counts by status."""
    async with asyncio.timeout(within):
        while True:
            counts = await statuses(services)
            if not counts.get("pending") and not counts.get("sending"):
                return counts
            await asyncio.sleep(0.05)


async def wait_settled_for(services: Services, contact_id: int, within: float = 20.0
                           ) -> list[str]:
    """Wait until none of the contact's rows is pending or being sent (rows of chats on
    apps no dispatcher of the test sends to may wait on); their statuses in order."""
    async with asyncio.timeout(within):
        while True:
            async with services.sessions() as session:
                found = list((await session.scalars(
                    select(OutboxMessage.status).where(OutboxMessage.contact_id == contact_id)
                    .order_by(OutboxMessage.id))).all())
            if not any(s in ("pending", "sending") for s in found):
                return found
            await asyncio.sleep(0.05)


GOTONG = Path(sys.executable).parent / "gotong"


async def start_dispatch(tmp_path: Path, fake: FakeTelegramAPI, database_url: str,
                         log_name: str, *args: str, **settings: str | float
                         ) -> asyncio.subprocess.Process:
    """`gotong dispatch` in a subprocess against the fake; `settings` are configuration
    keys as environment variables without their prefix (NOTIFICATIONS__LEASE_SECONDS=2)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOTONG_")}
    environ.update({
        "GOTONG_DATABASE__URL": database_url,
        "GOTONG_PRIVACY__NIK_HASH_KEY": "dispatch-test-key-" + "k" * 32,
        "GOTONG_TELEGRAM__TOKEN": fake.token,
        "GOTONG_TELEGRAM__API_BASE_URL": fake.base_url,
        "GOTONG_TELEGRAM__API_FILE_URL": fake.base_file_url,
        # Several dispatchers side by side: none takes the metrics' fixed port.
        "GOTONG_METRICS__PORT": "0",
        **{f"GOTONG_{key}": str(value) for key, value in settings.items()},
    })
    # A file rather than a pipe: nobody reads the output while the process runs (and a
    # paused process must not be what fills a pipe).
    with (tmp_path / log_name).open("wb") as log:
        return await asyncio.create_subprocess_exec(
            str(GOTONG), "dispatch", *args, cwd=tmp_path, env=environ, stdout=log,
            stderr=asyncio.subprocess.STDOUT)
