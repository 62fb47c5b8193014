"""Every catalog message that joins a count, a unit, a name or a reference, rendered in
both languages with realistic values: no word said twice ("paket Paket sembako"), no
count as a float ("4.0"), no reference where the thing asked about belongs ("Berapa
GP-4HX9T yang tiba?"), one name per category and field labels that read after "Ubah"."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from gotong.bot.services import Services
from gotong.handlers.catalog import Catalog, placeholders
from gotong.handlers.stock import amount_text, quantity_text
from gotong.models.help_request import NEEDS
from gotong.models.pledge import CATEGORIES
from tests.chat import Chat
from tests.handlers.test_amount_texts import Speaker, repeated_words
from tests.handlers.test_staff_stock import TIMUR, join
from tests.models.aid_world import AidWorld

CATEGORY = "food_package"
REFERENCE = "GT-7KQ3M"
PLEDGE_CODE = "GP-4HX9T"
# Placeholders that hold a plain count, and one that would be wrong as a float.
COUNTS = {"count", "households", "n", "size", "capacity", "busy", "left", "limit", "max",
          "min", "attempts", "length", "page", "pages", "days", "requests", "deliveries",
          "minutes", "allocated", "delivered", "received", "pledged"}
# An allocation: one household's share, the shares together, the stock they come from.
SHARES = {"each": 1, "total": 4, "stock": 10}
FLOAT = re.compile(r"(?<![\d.])\d+\.0(?!\d)")
# Questions about how many of something: what is counted follows the question word.
HOW_MANY = re.compile(r"\b(?:Berapa|How many) (?:GT|GP)-", re.IGNORECASE)
# Keys whose words repeat on purpose: a word list, a text given twice ("fewer than {count}"
# explained), pairs of labels.
REPEATS_ALLOWED = {"web.chart.months", "web.public.suppressed_note", "words.skip"}


def realistic(speaker: Speaker, key: str, template: str) -> dict[str, object]:
    """Values as the handlers pass them, by placeholder name."""
    names = placeholders(template)
    values: dict[str, object] = {}
    for name in names:
        if name in COUNTS:
            values[name] = 4
        elif name == "quantity":
            # Beside a unit or the category's name it is a number; alone, the amount.
            values[name] = 4 if {"unit", "category"} & names or key.startswith("amount.") \
                else amount_text(speaker, CATEGORY, 4)
        elif name in ("what",):
            values[name] = amount_text(speaker, CATEGORY, 4)
        elif name in SHARES:
            values[name] = quantity_text(speaker, CATEGORY, SHARES[name])
        elif name == "unit":
            values[name] = speaker.t(f"unit.{CATEGORY}")
        elif name == "category":
            values[name] = speaker.t(f"category.{CATEGORY}")
        elif name == "reference":
            values[name] = REFERENCE
        elif name == "code":
            values[name] = PLEDGE_CODE
        elif name in ("name", "volunteer", "donor", "aggregator"):
            values[name] = "Siti Aminah"
        elif name == "field":
            values[name] = speaker.t("field.target")
        else:
            values[name] = f"<{name}_value>"  # a word no neighbour repeats
    return values


def test_every_message_reads_well_with_realistic_values(catalog: Catalog) -> None:
    problems: list[tuple[str, str, str, object]] = []
    checked = 0
    for language in catalog.languages:
        speaker = Speaker(catalog, language)
        for key in catalog.keys(language):
            template = catalog.raw(language, key)
            if not placeholders(template):
                continue
            text = catalog.text(language, key, **realistic(speaker, key, template))
            checked += 1
            if key not in REPEATS_ALLOWED and repeated_words(text):
                problems.append((language, key, "repeats", repeated_words(text)))
            if FLOAT.search(text):
                problems.append((language, key, "float", text))
            if HOW_MANY.search(text):
                problems.append((language, key, "reference where the item belongs", text))
    assert problems == []
    assert checked > 150


def test_the_checks_find_what_read_badly(catalog: Catalog) -> None:
    # Each check fails on the wording the issue found, so that it can fail at all.
    assert repeated_words("Dijanjikan: 4 paket Paket sembako")
    assert FLOAT.search("Dialokasikan untuk 4.0 keluarga")
    assert not FLOAT.search("rata-rata 4.05 dari 5, 1.000 paket")
    assert HOW_MANY.search(f"Berapa {PLEDGE_CODE} yang tiba?")


def test_a_count_that_went_through_a_float_reads_as_a_whole_number(catalog: Catalog) -> None:
    for language in catalog.languages:
        text = catalog.text(language, "allocate.done", each="4 paket", count=4.0)
        assert "4.0" not in text and " 4 " in text
        text = catalog.text(language, "ratings.summary", count=Decimal("3"), average="4.5")
        assert "3" in text and "4.5" in text and "3.0" not in text


def test_one_name_per_category(catalog: Catalog) -> None:
    # What a household needs and what a donor gives are the same goods, named alike.
    same = {"food": "food_package", "hygiene": "hygiene", "medicine": "medicine",
            "baby": "baby"}
    assert set(same) <= set(NEEDS) and set(same.values()) <= set(CATEGORIES)
    for language in catalog.languages:
        for need, category in same.items():
            needed = catalog.text(language, f"need.{need}").casefold()
            given = catalog.text(language, f"category.{category}").casefold()
            assert needed.rstrip("s") == given.rstrip("s"), (language, needed, given)
            assert "/" not in needed


def test_every_summary_field_reads_after_change(catalog: Catalog) -> None:
    # "Ubah Sebagai", "Change For": a label that is a preposition does not name a field.
    for language in catalog.languages:
        for key in (k for k in catalog.keys(language) if k.startswith("field.")):
            label = catalog.text(language, key)
            assert label.casefold() not in {"sebagai", "untuk", "for", "giving", "as"}, key
            assert len(label.split()) >= 1


async def test_staff_are_asked_how_many_packages_of_a_pledge_arrived(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    await world.pledge(timur, 10)
    staff = await join(world, timur, "staff-timur")
    await staff.say("/bahasa id")
    await staff.say("/donasi_masuk")
    await staff.tap(staff.option_id("Terima"))
    text = staff.last.text
    assert re.match(r"Berapa paket yang tiba untuk donasi GP-\w{5}\? "
                    r"Dijanjikan: 10 paket sembako\.", text), text
    assert not repeated_words(text)


@pytest.mark.parametrize("language", ["id", "en"])
async def test_a_donor_summary_reads_well(services: Services, language: str) -> None:
    world = AidWorld(services)
    await world.aggregator(TIMUR)
    chat = Chat(services.conversations, language=language)
    await chat.say(f"/language {language}")
    await chat.say("/donate")
    await chat.tap("individual")
    await chat.say("Budi Santoso")
    await chat.say("0812 3456 7890")
    await chat.tap("food_package")
    await chat.say("4")
    await chat.tap("any")
    await chat.tap("drop")
    summary = chat.last
    labels = [o.label for o in summary.options]
    assert not any(label in ("Ubah Sebagai", "Ubah Untuk", "Change Giving", "Change For")
                   for label in labels), labels
    assert not repeated_words(summary.text), summary.text
    assert not FLOAT.search(summary.text)
