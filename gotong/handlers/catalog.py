"""Message catalogs: every user-facing text, in gettext PO files keyed by message id.

`locales/<lang>.po` holds one entry per key (`msgid "menu.request"`); texts use
`{placeholder}` fields. Adding a language is adding a file.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterable, Mapping
from pathlib import Path

from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
FALLBACK_LANGUAGE = "en"


class MissingMessage(KeyError):
    pass


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
            return template.format(**params)
        except (KeyError, IndexError, ValueError):
            if self._strict:
                raise
            log.error("bad placeholders in message %s (%s)", key, language)
            return template


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
