"""Questions that are questions: a count is read with the unit people write after it,
a hint says what was expected, "none of these" ends a question or says what to do next,
and no two buttons on one screen share a label."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gotong.bot.services import Services
from gotong.handlers.catalog import Catalog
from gotong.handlers.validators import Invalid, parse_quantity
from gotong.models.pledge import Pledge
from tests.chat import Chat
from tests.handlers.test_donor_form import aggregator
from tests.handlers.test_household_form import start_request
from tests.handlers.test_staff_stock import TIMUR, join
from tests.models.aid_world import AidWorld


@pytest.mark.parametrize(("typed", "value"), [
    ("10 paket", 10), ("10 pcs", 10), ("10 dus", 10), ("5 orang", 5), ("10 Paket.", 10),
    ("Rp 50.000", 50_000), ("Rp50.000", 50_000), ("IDR 50000", 50_000), ("50rb", 50_000),
    ("50 ribu", 50_000), ("50k", 50_000), ("1 juta", 1_000_000), ("1 juta rupiah", 1_000_000),
    ("1,5 jt", 1_500_000), ("2.5 juta", 2_500_000), ("1.500 rb", 1_500_000),
])
def test_a_count_is_read_with_its_unit(typed: str, value: int) -> None:
    assert parse_quantity(typed, 10**10, unit="paket") == value


@pytest.mark.parametrize(("typed", "reason"), [
    # Whole numbers only, as before: "1.500" is a thousand and a half, "1.5" is refused.
    ("1.5", "invalid.quantity.whole"), ("0,5", "invalid.quantity.whole"),
    ("1.5 paket", "invalid.quantity.whole"), ("1,2345 juta", "invalid.quantity.whole"),
    ("0", "invalid.quantity.none"), ("0 paket", "invalid.quantity.none"),
    ("sepuluh", "invalid.quantity"), ("10 paket 5", "invalid.quantity"),
    ("-5", "invalid.quantity"), ("paket", "invalid.quantity"),
])
def test_what_is_not_a_count_is_refused(typed: str, reason: str) -> None:
    parsed = parse_quantity(typed, 10**10, unit="paket")
    assert isinstance(parsed, Invalid) and parsed.reason == reason


def test_no_hint_about_a_count_says_above_zero(catalog: Catalog) -> None:
    # A text that had a number in it is told what was expected, never "more than 0".
    for language in catalog.languages:
        for key in ("invalid.quantity", "invalid.quantity.none", "invalid.quantity.whole"):
            text = catalog.text(language, key, unit="paket", example="10").casefold()
            assert "lebih dari 0" not in text and "above 0" not in text, (language, key)


async def donor_at_quantity(services: Services, chat: Chat, category: str) -> None:
    await aggregator(services, "Posko Selatan", "Jakarta Selatan")
    await chat.say("/donasi")
    await chat.tap("individual")
    await chat.say("Budi Santoso")
    await chat.say("0812 3456 7890")
    await chat.tap(category)


async def test_a_donor_types_packages_and_hears_what_was_expected(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await donor_at_quantity(services, chat, "food_package")
    assert "Berapa paket?" in chat.last.text
    await chat.say("sepuluh")
    assert chat.last.text.startswith("Ketik jumlah paket, misalnya 10.")
    await chat.say("1.5")
    assert chat.last.text.startswith("Ketik bilangan bulat, misalnya 2.")
    await chat.say("0")
    assert chat.last.text.startswith("Jumlah paket paling sedikit 1.")
    assert "lebih dari 0" not in chat.last.text
    await chat.say("10 paket")
    assert chat.last.context == "dn.target"


async def test_a_donor_gives_money_as_people_write_it(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await donor_at_quantity(services, chat, "money")
    await chat.say("lima puluh ribu")
    assert chat.last.text.startswith("Ketik jumlah rupiah, misalnya 50.000.")
    await chat.say("50rb")
    await chat.tap("any")
    await chat.tap("drop")
    assert "50.000 rupiah" in chat.last.text
    await chat.tap("edit:quantity")
    await chat.say("1 juta")
    assert "1.000.000 rupiah" in chat.last.text
    await chat.tap("submit")
    async with services.sessions() as session:
        pledge = await session.scalar(select(Pledge))
    assert pledge is not None and pledge.quantity == 1_000_000


async def test_staff_count_boxes_as_they_write_them(services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    await world.pledge(timur, 10)
    staff = await join(world, timur, "staff-timur")
    await staff.say("/incoming")
    await staff.tap(staff.option_id("Received"))
    await staff.say("delapan")
    assert staff.last.text == "Type the number of packages, e.g. 10."
    await staff.say("8 dus")
    assert "received: 8 packages added to stock" in staff.replies[-1].text


async def test_none_of_these_ends_the_question_and_cannot_be_combined(
        services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await start_request(chat)
    await chat.say_all("Siti Aminah", "0812 3456 7890", "-", "12930",
                       "Jl. Melati No. 5 RT 03 RW 05", "4 orang")
    assert chat.last.context == "hh.vulnerable"
    await chat.say("1, Tidak ada")
    assert "\"Tidak ada\" tidak bisa digabung dengan pilihan lain." in chat.last.text
    await chat.tap("elderly")
    assert chat.last.context == "hh.vulnerable"
    # Tapped after another choice, "none" is still the whole answer, at once.
    await chat.tap("none")
    assert chat.last.context == "hh.needs"
    await chat.tap("back")
    await chat.say("Tidak ada")
    assert chat.last.context == "hh.needs"


async def test_none_of_these_areas_says_what_to_do_next(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "-", "karet semangi")
    assert chat.last.context == "hh.area_pick"
    await chat.tap("none")
    assert chat.last.context == "hh.kota"
    assert chat.last.text.startswith(
        "Baik. Ketik nama kelurahan Anda dengan cara lain (lengkap, tanpa singkatan), "
        "atau kode posnya yang 5 angka.")
    await chat.say("12930")
    assert chat.last.context == "hh.address"


async def test_the_address_stays_when_the_area_is_chosen_again_unchanged(
        services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Siti Aminah", "0812 3456 7890", "-", "12930",
                       "Jl. Melati No. 5 RT 03 RW 05", "4", "1", "1")
    assert chat.last.context == "hh.summary"
    await chat.tap("edit:kota")
    await chat.say("12930")
    assert chat.last.context == "hh.summary"
    assert "Jl. Melati No. 5, RT 003/RW 005" in chat.last.text


def labels(chat: Chat) -> list[str]:
    return [o.label for o in (*chat.last.options, *chat.last.controls)]


async def test_one_back_button_on_a_screen_of_pages(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "-", "Jakarta Timur")
    assert chat.last.context == "hh.kecamatan" and chat.last.pages == 2
    assert labels(chat).count("« Kembali") == 1
    await chat.tap(">1")
    assert chat.last.page == 1
    shown = labels(chat)
    assert len(shown) == len(set(shown)), shown
    assert "« Kembali" in shown and not any("Sebelumnya" in label for label in shown)
    # Past the first page, back turns the page back; on the first, it goes a question back.
    await chat.say("kembali")
    assert chat.last.context == "hh.kecamatan" and chat.last.page == 0
    await chat.say("kembali")
    assert chat.last.context == "hh.kota"


def test_the_playground_send_button_is_not_the_summary_submit(catalog: Catalog) -> None:
    for language in catalog.languages:
        send = catalog.text(language, "web.playground.send")
        assert send != catalog.text(language, "summary.submit"), language
    assert catalog.text("id", "web.playground.send") == "Kirim pesan"
