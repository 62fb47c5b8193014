"""What every part of a process shares, opened from the configuration: the database,
the catalogs, the areas and the conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gotong.bot.config import Config
from gotong.handlers.catalog import Catalog
from gotong.handlers.conversations import Conversations
from gotong.handlers.turn import HandlerSettings
from gotong.models.area import AreaDirectory, load_areas
from gotong.models.db import (
    create_engine,
    create_read_engine,
    create_session_factory,
    refresh_statistics,
)
from gotong.models.figures import use_timezone
from gotong.models.migrate import schema_state, upgrade
from gotong.models.number_asks import AskLimits


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
        max_open_tasks=config.volunteer.max_open_tasks,
        failed_hold=timedelta(hours=config.volunteer.failed_hold_hours),
        max_proxy_households=config.proxy.max_households,
        number_asks=AskLimits(declined_for=timedelta(days=config.proxy.declined_days),
                              per_day=config.proxy.max_questions_per_day),
        dashboard_url=f"{config.web.base_url}/dashboard",
        dashboard_link_valid=timedelta(minutes=config.web.link_minutes),
        retention=timedelta(days=config.privacy.retention_days),
        keep_inbound=timedelta(days=config.inbound.keep_days),
        keep_messages=timedelta(days=config.notifications.keep_days),
        staff_pledge_digest=config.notifications.staff_new_pledge == "digest",
    )


@dataclass
class Services:
    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    catalog: Catalog
    areas: AreaDirectory
    conversations: Conversations
    # Units of work that only read (dashboard pages, the public page, exports, figures):
    # on SQLite on read-only connections of their own (models/db.create_read_engine),
    # which never queue for the writer the chat uses; elsewhere `sessions` itself.
    reads: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine | None = None

    async def close(self) -> None:
        if self.read_engine is not None:
            await self.read_engine.dispose()
        await self.engine.dispose()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


async def prepare_database(engine: AsyncEngine, provinces: tuple[str, ...],
                           timezone: str | None = None) -> None:
    """Bring the schema up to date and load the areas in scope (both idempotent)."""
    await upgrade(engine, timezone=timezone)
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
    engine = create_engine(config.database.url, echo=config.database.echo,
                           pool_size=config.database.pool_size)
    try:
        if migrate if migrate is not None else is_sqlite(config.database.url):
            await prepare_database(engine, config.areas.provinces, config.i18n.timezone)
        # The figures' days are counted in the configured zone; a zone changed since
        # they were counted has them counted again (once, here).
        # (A schema not yet upgraded has no counters: `gotong db upgrade` counts them.)
        if (await schema_state(engine)).up_to_date:
            async with engine.begin() as connection:
                await use_timezone(connection, config.i18n.timezone)
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
    read_engine = create_read_engine(config.database.url, echo=config.database.echo)
    reads = create_session_factory(read_engine) if read_engine is not None else sessions
    return Services(config, engine, sessions, catalog, areas, conversations, reads,
                    read_engine)
