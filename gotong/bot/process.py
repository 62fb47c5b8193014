"""The composition root: the chat channels, the dispatcher and the web app of a process,
wired from the configuration in one place.

Adding a chat app is adding its adapter under `channels/` and a line to `CHANNELS`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from gotong.bot.channels.delivery import Channel
from gotong.bot.channels.inbound import InboundSettings
from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.channels.webchat import SCREENS, WebChat
from gotong.bot.channels.whatsapp import WhatsAppChannel
from gotong.bot.config import Config, WebConfig
from gotong.bot.dispatcher import Dispatcher, DispatchSettings
from gotong.bot.metrics import count_dialog, metrics_app
from gotong.bot.ratelimit import Limits
from gotong.bot.services import Services, open_services
from gotong.bot.web import playground
from gotong.bot.web.app import create_web_app
from gotong.bot.web.server import WebServer
from gotong.models.base import utcnow
from gotong.models.demo import RealData, has_demo_data, seed_demo
from gotong.models.person import LinkedDelivery

log = logging.getLogger("gotong")


def dispatch_settings(config: Config) -> DispatchSettings:
    n = config.notifications
    return DispatchSettings(
        max_attempts=n.max_attempts,
        retry_base=timedelta(seconds=n.retry_base_seconds),
        retry_max=timedelta(seconds=n.retry_max_seconds),
        poll=timedelta(seconds=n.poll_seconds),
        lease=timedelta(seconds=n.lease_seconds),
        reminder_after=timedelta(hours=n.reminder_after_hours),
        keep=timedelta(days=n.keep_days),
        keep_inbound=timedelta(days=config.inbound.keep_days),
        digest_interval=timedelta(minutes=n.digest_minutes),
        support_answer_within=timedelta(minutes=config.support.answer_within_minutes),
        support_keep=timedelta(days=config.support.keep_days),
        linked_delivery=LinkedDelivery(n.linked_delivery),
        retention=timedelta(days=config.privacy.retention_days),
        declined_keep=timedelta(days=config.proxy.declined_days),
    )


def inbound_settings(config: Config) -> InboundSettings:
    i = config.inbound
    return InboundSettings(lease=timedelta(seconds=i.lease_seconds),
                           max_attempts=i.max_attempts,
                           retry_base=timedelta(seconds=i.retry_base_seconds),
                           retry_max=timedelta(seconds=i.retry_max_seconds),
                           poll=timedelta(seconds=i.poll_seconds))


def telegram_limits(config: Config) -> Limits:
    tg = config.telegram
    return Limits(per_second=tg.messages_per_second,
                  per_chat_per_second=tg.chat_messages_per_second,
                  per_group_per_minute=tg.group_messages_per_minute)


def whatsapp_limits(config: Config) -> Limits:
    wa = config.whatsapp
    # WhatsApp has no groups for us: the group limit never applies.
    return Limits(per_second=wa.messages_per_second,
                  per_chat_per_second=wa.chat_messages_per_second,
                  per_group_per_minute=wa.chat_messages_per_second * 60)


def webchat_limits(config: Config) -> Limits:
    # The playground's screens are in this process's memory: no platform limits them,
    # these only keep a runaway loop from flooding the page.
    return Limits(per_second=100, per_chat_per_second=10, per_group_per_minute=600)


@dataclass(frozen=True)
class ChannelKind:
    """A chat app this program speaks: when the configuration turns it on, how to build
    it, and the limits its platform sets."""

    name: str
    build: Callable[[Config, Services], Channel | None]
    limits: Callable[[Config], Limits]


def _telegram(config: Config, services: Services) -> Channel | None:
    if not config.telegram.token:
        return None
    return TelegramChannel(config.telegram, services.conversations, services.sessions,
                           inbound=inbound_settings(config))


def _whatsapp(config: Config, services: Services) -> Channel | None:
    if not config.whatsapp.enabled:
        return None
    return WhatsAppChannel(config.whatsapp, services.conversations, services.sessions,
                           inbound=inbound_settings(config))


def _webchat(config: Config, services: Services) -> Channel | None:
    if not config.playground_on:
        return None
    return WebChat(services.conversations, config.web)


CHANNELS = (
    ChannelKind(TelegramChannel.channel, _telegram, telegram_limits),
    ChannelKind(WhatsAppChannel.channel, _whatsapp, whatsapp_limits),
    ChannelKind(WebChat.channel, _webchat, webchat_limits),
)
_LIMITS = {kind.name: kind.limits for kind in CHANNELS}


def attach_dispatcher(services: Services, *channels: Channel | None,
                      clock: Callable[[], datetime] = utcnow) -> Dispatcher:
    """The dispatcher of a process, sending through its channels and settling their
    replies."""
    config = services.config
    present = [channel for channel in channels if channel is not None]
    dispatcher = Dispatcher(services.engine, services.catalog,
                            {channel.channel: channel for channel in present},
                            {channel.channel: _LIMITS[channel.channel](config)
                             for channel in present},
                            dispatch_settings(config), clock=clock,
                            # Direct replies are leased to the process: its dispatcher
                            # settles them.
                            owner=services.conversations.owner)
    for channel in present:
        channel.outbox = dispatcher
    services.conversations.on_outbox = dispatcher.wake
    services.conversations.on_dialog = count_dialog
    return dispatcher


def build_channels(config: Config, services: Services, *, chat_apps_only: bool = False
                   ) -> list[Channel]:
    """The channels the configuration turns on (without the playground's web chat when
    `chat_apps_only`: a dispatcher process has no screens to show it on)."""
    channels = []
    for kind in CHANNELS:
        if chat_apps_only and kind.name == WebChat.channel:
            continue
        channel = kind.build(config, services)
        if channel is not None:
            channels.append(channel)
    return channels


async def seed_playground(config: Config, services: Services) -> None:
    """The playground's fictional aid organisation, staff and volunteer (idempotent); never
    into a database that holds real data."""
    try:
        async with services.sessions() as session, session.begin():
            await seed_demo(session, services.areas, utcnow(), config.i18n.default_language)
    except RealData:
        log.warning("demo data not loaded: this database holds real data; the playground's "
                    "staff and volunteer screens belong to no aid organisation")


DEMO_WARNING = ("Warning: this database holds demo data (the fictional \"Posko Contoh "
                "(demo)\", its staff and volunteer). Real people must not be served beside "
                "it: remove it with `gotong demo clear`, or use a database of its own.")


async def warn_of_demo_data(config: Config, services: Services) -> bool:
    """Say so, in the log and on the terminal, when demo data sits in a database that a
    chat app serves real people from."""
    if not config.has_chat_channel:
        return False
    async with services.sessions() as session:
        present = await has_demo_data(session)
    if present:
        log.warning("this database holds demo data: remove it with `gotong demo clear`")
        print(DEMO_WARNING, flush=True)
    return present


async def build_webchat(config: Config, services: Services) -> WebChat | None:
    """The playground's channel when the configuration serves it, with its demo data."""
    if not config.playground_on:
        return None
    await seed_playground(config, services)
    return WebChat(services.conversations, config.web)


def playground_screens() -> list[playground.Screen]:
    return [playground.Screen(name, spec.title, spec.tip, spec.photo)
            for name, spec in SCREENS.items()]


def build_web_app(services: Services, channels: Sequence[Channel]) -> web.Application:
    """The process's web app: the pages, and each channel's webhook or sockets."""
    serves_playground = any(channel.channel == WebChat.channel for channel in channels)
    return create_web_app([channel.add_routes for channel in channels], services=services,
                          playground_screens=playground_screens() if serves_playground
                          else None,
                          apis={channel.channel: channel.api_problem for channel in channels
                                if channel.channel != WebChat.channel})


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def playground_notice(config: Config) -> str:
    """What `gotong run` prints when it serves the playground."""
    notice = (f"Playground: {config.web.base_url}{playground.PATH}\n"
              "It lets anyone who opens it act as anyone, with fictional data: it is for "
              "trying Gotong locally.")
    if config.web.host not in LOOPBACK_HOSTS:
        notice += (f"\nWarning: it listens on {config.web.host}, so other machines can "
                   "reach it too; set web.host = \"127.0.0.1\" or web.playground = \"off\".")
    return notice


def metrics_server(services: Services) -> WebServer | None:
    """/metrics on its own address (`metrics.port`), or None when it is 0."""
    wanted = services.config.metrics
    if not wanted.port:
        return None
    return WebServer(metrics_app(services.sessions),
                     WebConfig(host=wanted.host, port=wanted.port))


async def start_metrics(server: WebServer | None) -> WebServer | None:
    """Serve the metrics if their address is free: the bot runs on without them (and says
    so) rather than not at all."""
    if server is None:
        return None
    try:
        await server.start()
    except OSError as exc:
        log.error("metrics are not served: their address is taken (%s); give this process "
                  "a metrics.port of its own", exc.strerror)
        await server.stop()
        return None
    return server


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def settle_heap() -> None:
    """Keep what start-up loaded (modules, the areas of the city, catalogs: alive as long
    as the process) out of the garbage collector's full passes. A page that computes a
    city's figures makes enough short-lived objects to start a few of those passes, and
    each walked every object of the process: about half of the public page's time."""
    gc.collect()
    gc.freeze()


async def run_bot(config: Config) -> None:
    """`gotong run`: take updates, answer them, send notifications, serve the pages."""
    services = await open_services(config)
    settle_heap()
    try:
        if config.playground_on:
            await seed_playground(config, services)
        await warn_of_demo_data(config, services)
    except BaseException:
        await services.close()
        raise
    channels = build_channels(config, services)
    dispatcher = attach_dispatcher(services, *channels)
    server = WebServer(build_web_app(services, channels), config.web)
    metrics = metrics_server(services)
    stop = _stop_on_signals()
    # Stopped after the channels, so that replies still being sent are settled.
    dispatcher_stop = asyncio.Event()
    dispatching: asyncio.Task[None] | None = None
    try:
        await server.start()
        metrics = await start_metrics(metrics)
        for channel in channels:
            await channel.start()
        dispatching = asyncio.create_task(dispatcher.run(dispatcher_stop))
        log.info("gotong is running (%s) on http://%s:%d", ", ".join(
            f"telegram {config.telegram.mode}" if channel.channel == TelegramChannel.channel
            else "playground" if channel.channel == WebChat.channel else channel.channel
            for channel in channels), config.web.host, config.web.port)
        if config.playground_on:
            print(playground_notice(config), flush=True)
        await stop.wait()
    finally:
        for channel in channels:
            await channel.stop()
        dispatcher_stop.set()
        if dispatching is not None:
            await dispatching
        await server.stop()
        if metrics is not None:
            await metrics.stop()
        await services.close()


async def run_dispatcher(config: Config, *, until_idle: bool = False) -> None:
    """`gotong dispatch`: send notifications only, beside `gotong run` processes."""
    services = await open_services(config)
    settle_heap()
    channels = build_channels(config, services, chat_apps_only=True)
    dispatcher = attach_dispatcher(services, *channels)
    stop = _stop_on_signals()
    metrics = None if until_idle else metrics_server(services)
    try:
        metrics = await start_metrics(metrics)
        for channel in channels:
            await channel.open_for_sending()
        if until_idle:
            await dispatcher.run_until_idle()
        else:
            await dispatcher.run(stop)
    finally:
        for channel in channels:
            await channel.stop()
        if metrics is not None:
            await metrics.stop()
        await services.close()
