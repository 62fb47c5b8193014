"""Logging set-up. Our own log lines never hold personal data; third-party libraries
that log request contents (HTTP clients, the Telegram library at debug level, SQL echo)
are kept at WARNING."""

from __future__ import annotations

import logging

QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "asyncpg",
                 "sqlalchemy.engine", "aiohttp.access", "alembic")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_third_party()


def quiet_third_party() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
