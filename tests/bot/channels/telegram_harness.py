"""People talking to the real Telegram channel (python-telegram-bot) over HTTP through the
fake Bot API, and the channel running with its dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.base import utcnow
from tests.bot.dispatch_harness import DispatchUnderTest, dispatch_config
from tests.fakes.telegram_api import FakeTelegramAPI, SentMessage
from tests.fakes.telegram_updates import TgUser, UpdateFactory


class TelegramBotUnderTest:
    """The channel in polling mode, with a way to wait until it handled what was sent."""

    def __init__(self, fake: FakeTelegramAPI, channel: TelegramChannel) -> None:
        self.fake = fake
        self.channel = channel
        self.factory = UpdateFactory()
        self.pushed = 0

    async def push(self, update: dict[str, Any]) -> None:
        self.fake.push_update(update)
        self.pushed += 1
        await self.channel.wait_handled(self.pushed)

    def person(self, user_id: int, *, language: str | None = "id",
               first_name: str = "Siti") -> Person:
        return Person(self, TgUser(id=user_id, first_name=first_name, language_code=language))


class Person:
    def __init__(self, bot: TelegramBotUnderTest, user: TgUser) -> None:
        self.bot = bot
        self.user = user

    @property
    def messages(self) -> list[SentMessage]:
        return self.bot.fake.messages(self.user.id)

    @property
    def last(self) -> SentMessage:
        return self.messages[-1]

    def last_with_buttons(self) -> SentMessage:
        return next(m for m in reversed(self.messages) if m.buttons())

    async def send(self, update: dict[str, Any]) -> list[SentMessage]:
        before = len(self.messages)
        await self.bot.push(update)
        return self.messages[before:]

    async def say(self, text: str) -> list[SentMessage]:
        return await self.send(self.bot.factory.text(self.user, text))

    async def tap(self, label_part: str) -> list[SentMessage]:
        """Tap the button whose label contains `label_part` on the latest keyboard."""
        message = self.last_with_buttons()
        matches = [data for text, data in message.buttons() if label_part in text]
        assert len(matches) == 1, (label_part, message.buttons())
        return await self.tap_data(matches[0], message)

    async def tap_data(self, data: str, message: SentMessage | None = None) -> list[SentMessage]:
        message = message or self.last_with_buttons()
        return await self.send(self.bot.factory.callback(
            self.user, data, message.message_id, message.text, message.reply_markup))

    async def share_contact(self, phone: str, own: bool = True) -> list[SentMessage]:
        return await self.send(self.bot.factory.contact(self.user, phone, own=own))


@dataclass
class Running:
    bot: TelegramBotUnderTest
    dispatch: DispatchUnderTest


@asynccontextmanager
async def running_telegram(config: Config, services: Services, fake: FakeTelegramAPI, *,
                           clock: Callable[[], datetime] = utcnow, **notifications: Any
                           ) -> AsyncIterator[Running]:
    """The channel receiving updates from `fake`, with its dispatcher sending the outbox, as
    in `gotong run`; `notifications` change the dispatcher's settings."""
    dispatch = DispatchUnderTest(services, dispatch_config(config, fake, **notifications),
                                 clock=clock)
    await dispatch.start(receive=True)
    try:
        yield Running(TelegramBotUnderTest(fake, dispatch.channel), dispatch)
    finally:
        await dispatch.stop()
