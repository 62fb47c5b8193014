"""Messages that put a count of goods next to what the goods are read naturally in every
language, for every category, one and several: "1 paket sembako", never "1 paket Paket
sembako"."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from gotong.handlers.catalog import Catalog, placeholders
from gotong.handlers.notices import render_notice
from gotong.handlers.stock import amount_text
from gotong.models.pledge import CATEGORIES

QUANTITIES = (1, 3)
# Lines the handlers write about one pledge or delivery, and the parameter that gets the
# amount (amount_text).
LINES = {
    "incoming.pledge": "quantity",
    "status.pledge": "what",
    "task.area_line": "what",
    "task.details": "what",
    "review.delivery": "what",
}
# Notices about one pledge or delivery: their counts are plain numbers (as the notification
# rules give them), their category a key the notice resolves.
NOTICES = (
    "notice.request_allocated",
    "notice.delivery_assigned",
    "notice.task_assigned",
    "notice.pledge_received",
)
NOTICE_COUNTS = ("quantity", "pledged", "received")
# A word, with its reduplication ("masing-masing", "rata-rata") as one.
WORD = re.compile(r"\w+(?:-\w+)*")
# Where a clause ends: a word may start the next one as it ended this ("Thank you; you").
CLAUSE_END = re.compile(r"[;:,!?()\n]|\.(?!\d)")
# The longest run of words checked for repeating itself ("staple food package").
MAX_RUN = 3


@dataclass(frozen=True)
class Speaker:
    """The part of a Turn that amount_text uses: texts in one language."""

    catalog: Catalog
    language: str

    def t(self, key: str, **params: object) -> str:
        return self.catalog.text(self.language, key, **params)


def fillers(template: str) -> dict[str, object]:
    """Every placeholder as a word of its own, which never repeats a neighbour (a plain
    "<rw>" would after "RW")."""
    return {name: f"<{name}_value>" for name in placeholders(template)}


def repeated_words(text: str) -> list[str]:
    """Words, or runs of up to three, that follow themselves, ignoring case and a plural
    "s": "paket Paket", "parcel parcels", "paket sembako Paket sembako"."""
    found = []
    for clause in CLAUSE_END.split(text.casefold()):
        # The plural "s" of a noun, not of a short word ("as a person" is not "a a").
        words = [word.removesuffix("s") if len(word) > 3 else word
                 for word in WORD.findall(clause)]
        found += [" ".join(words[start:start + 2 * size])
                  for size in range(1, MAX_RUN + 1)
                  for start in range(len(words) - 2 * size + 1)
                  if words[start:start + size] == words[start + size:start + 2 * size]]
    return found


def test_repeated_words_are_found() -> None:
    assert repeated_words("1 paket Paket sembako") == ["paket paket"]
    assert repeated_words("3 parcel parcels of food") == ["parcel parcel"]
    assert repeated_words("1 paket sembako Paket sembako") == ["paket sembako paket sembako"]
    assert repeated_words("1 paket sembako, 3 food parcels, paket") == []


@pytest.mark.parametrize("key", sorted(LINES))
def test_a_line_names_the_goods_once(catalog: Catalog, key: str) -> None:
    problems = []
    for language in catalog.languages:
        speaker = Speaker(catalog, language)
        for category in CATEGORIES:
            for quantity in QUANTITIES:
                amount = amount_text(speaker, category, quantity)
                # The category's name too: a message that names it again beside the
                # amount repeats it.
                text = speaker.t(key, **{
                    **fillers(catalog.raw(language, key)), LINES[key]: amount,
                    "category": speaker.t(f"category.{category}")})
                assert str(quantity) in text, f"{language}:{key}: {text}"
                if repeated_words(text):
                    problems.append((language, category, quantity, text))
    assert problems == []


@pytest.mark.parametrize("key", NOTICES)
def test_a_notice_names_the_goods_once(catalog: Catalog, key: str) -> None:
    problems = []
    for language in catalog.languages:
        for category in CATEGORIES:
            for quantity in QUANTITIES:
                params = {**fillers(catalog.raw(language, key)),
                          **dict.fromkeys(NOTICE_COUNTS, quantity),
                          "category": {"key": f"category.{category}"}}
                text = render_notice(catalog, language, key, params).text
                assert str(quantity) in text, f"{language}:{key}: {text}"
                if repeated_words(text):
                    problems.append((language, category, quantity, text))
    assert problems == []
