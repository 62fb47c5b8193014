"""The Telegram channel receiving updates from the fake Bot API with its dispatcher running,
for the scenario tests of this package."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gotong.bot.config import Config
from gotong.bot.services import Services
from tests.bot.channels.telegram_harness import Running, TelegramBotUnderTest, running_telegram
from tests.fakes.telegram_api import FakeTelegramAPI


@pytest.fixture
async def running(config: Config, services: Services, telegram_api: FakeTelegramAPI
                  ) -> AsyncIterator[Running]:
    # A slow poll: the dispatcher wakes when this process writes outbox rows, which is how
    # the notices of these scenarios go out.
    async with running_telegram(config, services, telegram_api, poll_seconds=5) as running:
        yield running


@pytest.fixture
def bot(running: Running) -> TelegramBotUnderTest:
    return running.bot
