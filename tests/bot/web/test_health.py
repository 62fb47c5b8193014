"""/healthz and /readyz of the web app `gotong run` serves, with a Telegram channel on the
fake Bot API: ready, then the API gone, then the database gone."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gotong.bot.channels.delivery import Channel
from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.channels.whatsapp import WhatsAppChannel
from gotong.bot.config import Config
from gotong.bot.process import build_web_app
from gotong.bot.services import Services, open_services
from gotong.handlers.catalog import Catalog
from tests.bot.channels.whatsapp_harness import whatsapp_config
from tests.conftest import with_telegram
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.whatsapp_api import FakeWhatsAppAPI

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def channel(services: Services, fake: FakeTelegramAPI) -> AsyncIterator[TelegramChannel]:
    config = with_telegram(services.config, token=fake.token, api_base_url=fake.base_url,
                           api_file_url=fake.base_file_url)
    made = TelegramChannel(config.telegram, services.conversations, services.sessions)
    await made.open_for_sending()
    try:
        yield made
    finally:
        await made.application.shutdown()


@asynccontextmanager
async def served(services: Services, channels: list[Channel]
                 ) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The process's web app with these channels; a client and its address."""
    server = TestServer(build_web_app(services, channels))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as client:
            yield client, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def readiness(client: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, str]]:
    async with client.get(f"{base}/readyz") as response:
        body = await response.json()
        assert body["status"] == ("ready" if response.status == 200 else "not ready")
        return response.status, body["parts"]


async def test_ready_then_not_when_the_api_is_gone(
        services: Services, channel: TelegramChannel, fake: FakeTelegramAPI) -> None:
    async with served(services, [channel]) as (client, base):
        assert await readiness(client, base) == (200, {"database": "ok", "telegram": "ok"})
        # A minute without an answer (here a tenth of a second), and the API down.
        channel.bot.watch.fresh_seconds = 0.1
        await fake.close()
        await asyncio.sleep(0.2)
        status, parts = await readiness(client, base)
        assert status == 503 and parts["database"] == "ok"
        assert parts["telegram"].startswith("no answer")
        async with client.get(f"{base}/healthz") as alive:
            assert alive.status == 200  # alive all the same


async def test_not_ready_without_the_database(config: Config, catalog: Catalog,
                                              tmp_path: Path) -> None:
    database = Path(config.database.url.removeprefix("sqlite+aiosqlite:///"))
    services = await open_services(config, migrate=False, catalog=catalog)
    try:
        async with served(services, []) as (client, base):
            assert await readiness(client, base) == (200, {"database": "ok"})
            # The file is gone (moved away); SQLite would make an empty one in its place.
            await services.engine.dispose()
            os.rename(database, tmp_path / "elsewhere.sqlite3")
            status, parts = await readiness(client, base)
            assert status == 503 and parts["database"].startswith("schema empty, needs")
    finally:
        await services.close()


@pytest.mark.fake_api("whatsapp_api")
async def test_whatsapp_readiness_follows_the_graph_api(
        services: Services, fake: FakeWhatsAppAPI) -> None:
    config = whatsapp_config(services.config, fake)
    channel = WhatsAppChannel(config.whatsapp, services.conversations, services.sessions)
    try:
        async with served(services, [channel]) as (client, base):
            # Nothing sent yet: the probe asks for the number's details.
            assert await readiness(client, base) == (200, {"database": "ok",
                                                           "whatsapp": "ok"})
            channel.watch.fresh_seconds = 0.1
            await fake.close()
            await asyncio.sleep(0.2)
            status, parts = await readiness(client, base)
            assert status == 503 and parts["whatsapp"].startswith("no answer")
    finally:
        await channel.stop()
