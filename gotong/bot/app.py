"""The composition root: builds every service from the configuration, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gotong.bot.config import Config
from gotong.bot.delivery import Sender
from gotong.bot.dispatcher import Dispatcher, DispatchSettings
from gotong.bot.migrate import upgrade
from gotong.bot.ratelimit import Limits
from gotong.bot.telegram import TelegramChannel
from gotong.bot.whatsapp import WhatsAppChannel
from gotong.handlers.catalog import Catalog
from gotong.handlers.conversations import Conversations
from gotong.handlers.turn import HandlerSettings
from gotong.models.area import AreaDirectory, load_areas
from gotong.models.base import utcnow
from gotong.models.db import create_engine, create_session_factory, refresh_statistics
from gotong.models.person import LinkedDelivery

if TYPE_CHECKING:
    # Only a type here: the playground's module imports the pages, which import this one.
    from gotong.bot.playground import WebChat


class NotReady(RuntimeError):
    """The database is not ready for the configuration (not migrated, areas missing)."""


def handler_settings(config: Config) -> HandlerSettings:
    d = config.dialogs
    return HandlerSettings(
        nik_key=config.nik_key,
        default_language=config.i18n.default_language,
        timezone=config.i18n.timezone,
        resume_after=timedelta(minutes=d.resume_after_minutes),
        max_invalid_attempts=d.max_invalid_attempts,
        max_text_length=d.max_text_length,
        page_size=d.page_size,
        duplicate_window=timedelta(days=config.requests.duplicate_window_days),
        reply_lease=timedelta(seconds=config.notifications.lease_seconds),
        cooldown=timedelta(days=config.aid.cooldown_days),
        allocation_size=config.aid.allocation_size,
        max_delivery_failures=config.aid.max_delivery_failures,
        dashboard_url=f"{config.web.base_url}/dashboard",
        dashboard_link_valid=timedelta(minutes=config.web.link_minutes),
    )


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
        digest_interval=timedelta(minutes=n.digest_minutes),
        linked_delivery=LinkedDelivery(n.linked_delivery),
    )


def telegram_limits(config: Config) -> Limits:
    tg = config.telegram
    return Limits(per_second=tg.messages_per_second,
                  per_chat_per_second=tg.chat_messages_per_second,
                  per_group_per_minute=tg.group_messages_per_minute)


@dataclass
class Services:
    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    catalog: Catalog
    areas: AreaDirectory
    conversations: Conversations

    async def close(self) -> None:
        await self.engine.dispose()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


async def prepare_database(engine: AsyncEngine, provinces: tuple[str, ...]) -> None:
    """Bring the schema up to date and load the areas in scope (both idempotent)."""
    await upgrade(engine)
    sessions = create_session_factory(engine)
    async with sessions() as session, session.begin():
        await load_areas(session, provinces)
    await refresh_statistics(engine)


async def open_services(config: Config, *, migrate: bool | None = None,
                        catalog: Catalog | None = None) -> Services:
    """Connect and load what every channel shares.

    An SQLite database is upgraded on start (one process owns it); PostgreSQL is
    upgraded by `gotong db upgrade` as a deploy step, before several processes start.
    """
    engine = create_engine(config.database.url, echo=config.database.echo)
    try:
        if migrate if migrate is not None else is_sqlite(config.database.url):
            await prepare_database(engine, config.areas.provinces)
        sessions = create_session_factory(engine)
        async with sessions() as session:
            areas = await AreaDirectory.load(session, config.areas.provinces)
        if not areas.regencies():
            raise NotReady(
                f"the database has no areas of {', '.join(config.areas.provinces)}: "
                "run `gotong db upgrade` first"
            )
    except BaseException:
        await engine.dispose()
        raise
    catalog = catalog or Catalog.load()
    conversations = Conversations(engine, catalog, areas, handler_settings(config))
    return Services(config, engine, sessions, catalog, areas, conversations)


def whatsapp_limits(config: Config) -> Limits:
    wa = config.whatsapp
    # WhatsApp has no groups for us: the group limit never applies.
    return Limits(per_second=wa.messages_per_second,
                  per_chat_per_second=wa.chat_messages_per_second,
                  per_group_per_minute=wa.chat_messages_per_second * 60)


# The playground's screens are in this process's memory: no platform limits them, these
# only keep a runaway loop from flooding the page.
WEBCHAT_LIMITS = Limits(per_second=100, per_chat_per_second=10, per_group_per_minute=600)


def attach_dispatcher(services: Services, telegram: TelegramChannel | None,
                      whatsapp: WhatsAppChannel | None = None,
                      clock: Callable[[], datetime] = utcnow, *,
                      webchat: WebChat | None = None) -> Dispatcher:
    """The dispatcher of a process, sending through its channels and settling their
    replies."""
    config = services.config
    senders: dict[str, Sender] = {}
    limits: dict[str, Limits] = {}
    if telegram is not None:
        senders[telegram.channel], limits[telegram.channel] = telegram, telegram_limits(config)
    if whatsapp is not None:
        senders[whatsapp.channel], limits[whatsapp.channel] = whatsapp, whatsapp_limits(config)
    if webchat is not None:
        senders[webchat.channel], limits[webchat.channel] = webchat, WEBCHAT_LIMITS
    dispatcher = Dispatcher(services.engine, services.catalog, senders, limits,
                            dispatch_settings(config), clock=clock)
    for channel in (telegram, whatsapp, webchat):
        if channel is not None:
            channel.outbox = dispatcher
    services.conversations.on_outbox = dispatcher.wake
    return dispatcher
