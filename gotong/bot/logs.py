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
    redact_request_errors()


class RequestErrorRedaction(logging.Filter):
    """aiohttp logs a request it cannot parse (a header line too long, a mangled request
    line) with the offending bytes, which may hold a session cookie or a sign-in link:
    only the kind of error is kept, at WARNING at most."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        kind = type(error).__name__ if error is not None else "unknown error"
        record.msg = "refused a request that could not be read (%s)"
        record.args = (kind,)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        if record.levelno > logging.WARNING:
            # A stranger's bad request is not our error.
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_REDACTION = RequestErrorRedaction()


def redact_request_errors() -> None:
    """Install the redaction on aiohttp's server logger (once)."""
    server = logging.getLogger("aiohttp.server")
    if _REDACTION not in server.filters:
        server.addFilter(_REDACTION)
