"""The logs of a whole burst of registrations (the fault-free reference runs, everything
of ours at DEBUG), in both formats: no name, phone, NIK or street of any household, and
JSON lines a log collector can read."""

from __future__ import annotations

import json

from tests.faults.burst import CHATS, REFERENCE_LOG_FORMATS, answers
from tests.faults.conftest import References

FIELDS = {"time", "level", "logger", "message"}


def personal_data() -> set[str]:
    """What the households typed that is theirs: names, phones, NIKs, streets."""
    found = set()
    for n in range(CHATS):
        script = answers(n)
        name, phone, nik, street = script[3], script[4], script[5], script[7]
        found |= {name, phone, phone.replace("-", ""), nik, nik[-8:], street}
    return found


def test_both_formats_are_covered() -> None:
    assert set(REFERENCE_LOG_FORMATS.values()) == {"text", "json"}


def test_no_personal_data_in_either_format(references: References) -> None:
    secrets = personal_data()
    for kind in REFERENCE_LOG_FORMATS:
        text = references.log_text(kind)
        assert "DEBUG" in text  # the run logged what it could
        leaked = sorted(secret for secret in secrets if secret in text)
        assert not leaked, (kind, leaked[:5])


def test_json_logs_are_one_object_a_line(references: References) -> None:
    [kind] = [k for k, form in REFERENCE_LOG_FORMATS.items() if form == "json"]
    lines = [line for line in references.log_text(kind).splitlines() if line.strip()]
    assert len(lines) > CHATS
    levels = set()
    for line in lines:
        entry = json.loads(line)
        assert set(entry) >= FIELDS, entry
        assert isinstance(entry["message"], str)
        levels.add(entry["level"])
    assert "DEBUG" in levels
