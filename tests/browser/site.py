"""The whole program in this process as `gotong run` serves it without a chat app: the
playground's web chat, the dispatcher, the dashboard and the public page, on a free
loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import select

from gotong.bot.channels.webchat import WebChat
from gotong.bot.config import Config, TelegramConfig, WebConfig
from gotong.bot.dispatcher import Dispatcher
from gotong.bot.process import attach_dispatcher, build_web_app, build_webchat
from gotong.bot.services import Services, open_services
from gotong.handlers.catalog import Catalog
from gotong.models.contact import Contact
from gotong.models.dashboard import create_link
from gotong.models.demo import CHANNEL, STAFF_CHAT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def playground_config(config: Config) -> Config:
    """The configuration of `make run` on a fresh clone: no chat app, so the playground."""
    port = free_port()
    return replace(config, telegram=TelegramConfig(),
                   web=WebConfig(host="127.0.0.1", port=port, public_refresh_seconds=1))


@dataclass
class Site:
    url: str
    services: Services
    webchat: WebChat
    dispatcher: Dispatcher


@asynccontextmanager
async def running_site(config: Config, catalog: Catalog) -> AsyncIterator[Site]:
    services = await open_services(config, migrate=False, catalog=catalog)
    webchat = await build_webchat(config, services)
    assert webchat is not None, "the configuration does not serve the playground"
    dispatcher = attach_dispatcher(services, webchat)
    runner = web.AppRunner(build_web_app(services, [webchat] if webchat else []),
                           access_log=None)
    stop = asyncio.Event()
    dispatching: asyncio.Task[None] | None = None
    try:
        await runner.setup()
        await web.TCPSite(runner, config.web.host, config.web.port).start()
        dispatching = asyncio.create_task(dispatcher.run(stop))
        yield Site(config.web.base_url, services, webchat, dispatcher)
    finally:
        stop.set()
        if dispatching is not None:
            await dispatching
        await runner.cleanup()
        await services.close()


async def demo_staff_link(site: Site, made_at: datetime) -> str:
    """The address of a sign-in link of the demo's staff member, made at that time and
    working for the usual 10 minutes (as `/dashboard` in chat makes one)."""
    async with site.services.sessions() as session, session.begin():
        staff_id = await session.scalar(select(Contact.id).where(
            Contact.channel == CHANNEL, Contact.chat_id == STAFF_CHAT))
        assert staff_id is not None
        token = await create_link(session, staff_id, made_at, timedelta(minutes=10))
    return f"{site.url}/dashboard/signin/{token}"
