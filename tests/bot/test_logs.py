"""The JSON log format: one object a line, with the ids a call attached and the kind of a
failure."""

from __future__ import annotations

import json
import logging

from gotong.bot.logs import JsonFormatter


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("gotong.test", logging.WARNING, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_a_line_is_an_object_with_its_ids() -> None:
    line = JsonFormatter().format(record("inbound update %d set aside", 7, update_id=7))
    entry = json.loads(line)
    assert entry["message"] == "inbound update 7 set aside"
    assert entry["level"] == "WARNING" and entry["logger"] == "gotong.test"
    assert entry["update_id"] == 7 and "outbox_id" not in entry
    assert entry["time"].endswith("+00:00")
    assert "\n" not in line


def test_a_failure_names_its_kind() -> None:
    try:
        raise TimeoutError("slow")
    except TimeoutError:
        import sys
        made = record("send failed")
        made.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(made))
    assert entry["exception"] == "TimeoutError"
    assert "Traceback" in entry["traceback"]
