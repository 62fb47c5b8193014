"""`gotong run` killed with SIGKILL in the middle of a burst of registrations and started
again within seconds, while the platform keeps trying: by Telegram webhook, by Telegram
polling and by WhatsApp webhook, on SQLite and on PostgreSQL. Every household finishes,
every update the platform's side took is handled once, and every chat hears what it would
have heard without the kill, at most repeating what was in flight when it died."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.faults.burst import (
    Gotong,
    Platform,
    Scenario,
    TelegramPolling,
    TelegramWebhook,
    WebhookPoster,
    WhatsAppWebhook,
    common_env,
    free_port,
    telegram_env,
    whatsapp_env,
)

log = logging.getLogger(__name__)

# Seconds the program stays dead before it is started again.
DOWN_FOR = 1.0
# The fakes answer sends late (after recording them), so a kill finds sends in flight.
RESPONSE_DELAY = 0.05

Reference = dict[int, list[str]]


@pytest.fixture
def telegram(telegram_api: FakeTelegramAPI) -> FakeTelegramAPI:
    telegram_api.response_delay = RESPONSE_DELAY
    return telegram_api


@pytest.fixture
def whatsapp(whatsapp_api: FakeWhatsAppAPI) -> FakeWhatsAppAPI:
    whatsapp_api.response_delay = RESPONSE_DELAY
    return whatsapp_api


async def kill_mid_burst(gotong: Gotong, platform: Platform, poster: WebhookPoster | None,
                         database_url: str, reference: Reference) -> None:
    async with Scenario(database_url, platform, [gotong], poster) as run:
        await run.start()
        taken = await run.wait_taken(0.5)
        await gotong.kill()
        # The dead process changes nothing any more: what it left unsettled is what it
        # may have sent already, and what may arrive twice.
        in_flight = await run.observer.unsettled_messages(platform.channel)
        stranded = await run.observer.leased_by(gotong)
        await asyncio.sleep(DOWN_FOR)
        await gotong.start()
        report = await run.finish(reference, allowed_duplicates=in_flight)
        log.info("killed after %d of %d updates, holding %d, %d messages in flight: %s",
                 taken, run.burst.total, stranded, sum(in_flight.values()), report)
        assert taken < run.burst.total, "the burst ended before the kill"


async def test_telegram_webhook(tmp_path: Path, database_url: str, telegram: FakeTelegramAPI,
                                reference_of: Callable[[str], Reference]) -> None:
    reference = reference_of("telegram")
    gotong = Gotong(tmp_path, "gotong", {**common_env(database_url, free_port()),
                                         **telegram_env(telegram, webhook=True)})
    platform = TelegramWebhook(telegram, [gotong.url])
    await kill_mid_burst(gotong, platform, platform.poster, database_url, reference)


async def test_telegram_polling(tmp_path: Path, database_url: str, telegram: FakeTelegramAPI,
                                reference_of: Callable[[str], Reference]) -> None:
    reference = reference_of("telegram")
    gotong = Gotong(tmp_path, "gotong", {**common_env(database_url, free_port()),
                                         **telegram_env(telegram, webhook=False)})
    await kill_mid_burst(gotong, TelegramPolling(telegram), None, database_url, reference)


async def test_whatsapp_webhook(tmp_path: Path, database_url: str, whatsapp: FakeWhatsAppAPI,
                                reference_of: Callable[[str], Reference]) -> None:
    reference = reference_of("whatsapp")
    gotong = Gotong(tmp_path, "gotong", {**common_env(database_url, free_port()),
                                         **whatsapp_env(whatsapp)})
    platform = WhatsAppWebhook(whatsapp, [gotong.url])
    await kill_mid_burst(gotong, platform, platform.poster, database_url, reference)
