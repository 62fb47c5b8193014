"""Logging set-up. Our own log lines never hold personal data; third-party libraries
that log request contents (HTTP clients, the Telegram library at debug level, SQL echo)
are kept at WARNING."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "asyncpg",
                 "sqlalchemy.engine", "aiohttp.access", "alembic")


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Ids a log call may attach (`extra=`): they name rows, never people.
ID_FIELDS = ("update_id", "outbox_id", "request_id", "delivery_id")


class JsonFormatter(logging.Formatter):
    """One JSON object a line (for a log collector): time, level, logger, message, the ids
    a call attached, and the exception's kind and traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ID_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", form: str = "text") -> None:
    """Log to standard error at `level`, as text lines or JSON objects (`form`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
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
        kind = type(error).__name__ if error is not None else record.name
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


# aiohttp's loggers that may quote what a client sent: a request it could not parse, a
# WebSocket's offered protocols, a cookie it refused.
REDACTED_LOGGERS = ("aiohttp.server", "aiohttp.websocket", "aiohttp.internal")


def redact_request_errors() -> None:
    """Install the redaction on aiohttp's loggers that quote clients (once)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTION not in logger.filters:
            logger.addFilter(_REDACTION)
