"""Message catalogs: every user-facing text, in gettext PO files keyed by message id.

`locales/<lang>.po` holds one entry per key (`msgid "menu.request"`); texts use
`{placeholder}` fields. Adding a language is adding a file.

A count takes its noun in the right number with `{count:plural:household|households}`,
which reads "1 household" or "3 households"; languages without plural forms (Bahasa
Indonesia) just write `{count} keluarga`.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path

from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
FALLBACK_LANGUAGE = "en"


class MissingMessage(KeyError):
    pass


class _Formatter(string.Formatter):
    """str.format, plus the `plural:one|other` format of a count."""

    def format_field(self, value: object, format_spec: str) -> str:
        if _whole(value) and (not format_spec or format_spec.startswith("plural:")):
            # A count that went through a float or a database sum reads "4", never "4.0".
            value = int(value)  # type: ignore[call-overload]
        if format_spec.startswith("plural:"):
            one, _, other = format_spec.removeprefix("plural:").partition("|")
            return f"{value} {one if str(value) == '1' else other or one}"
        return str(super().format_field(value, format_spec))


def _whole(value: object) -> bool:
    """A float or decimal number with nothing after the point."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, Decimal) and value.is_finite() and value == int(value)


_FORMATTER = _Formatter()


class Catalog:
    def __init__(self, messages: Mapping[str, Mapping[str, str]], *, strict: bool = False) -> None:
        self._messages = {lang: dict(entries) for lang, entries in messages.items()}
        # Strict catalogs (tests) raise on a missing key instead of falling back.
        self._strict = strict

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR, *, strict: bool = False) -> Catalog:
        messages: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.po")):
            with path.open("rb") as fh:
                po = read_po(fh)
            messages[path.stem] = {
                str(m.id): str(m.string) for m in po if m.id and isinstance(m.id, str)
            }
        return cls(messages, strict=strict)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self._messages))

    def keys(self, language: str) -> Iterable[str]:
        return self._messages[language].keys()

    def raw(self, language: str, key: str) -> str:
        return self._messages[language][key]

    def has(self, key: str) -> bool:
        return all(key in entries for entries in self._messages.values())

    def text(self, language: str, key: str, **params: object) -> str:
        template = self._messages.get(language, {}).get(key)
        if not template:
            if self._strict:
                raise MissingMessage(f"{language}:{key}")
            log.error("missing message %s in %s", key, language)
            template = self._messages.get(FALLBACK_LANGUAGE, {}).get(key) or key
        try:
            return _FORMATTER.format(template, **params)
        except (KeyError, IndexError, ValueError):
            if self._strict:
                raise
            log.error("bad placeholders in message %s (%s)", key, language)
            return template


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def choose_language(asked: Iterable[str | None], accept_language: str,
                    languages: Iterable[str], default: str) -> str:
    """The first language asked for that the catalogs have (a page's choice, a
    remembered one), else the first of the browser's `Accept-Language`, else `default`."""
    known = set(languages)
    for language in asked:
        if language in known:
            return language
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in known:
            return code
    return default
