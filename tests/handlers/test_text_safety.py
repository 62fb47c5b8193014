"""Text that is not what it seems: invisible controls, links, chat-app formatting and
numbers with a decimal point, from the household, donor or staff member who types them to
the staff and volunteers who read them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gotong.bot.services import Services
from gotong.handlers.plain import as_typed
from gotong.handlers.validators import (
    Invalid,
    clean_text,
    has_link,
    parse_person_name,
    parse_quantity,
    parse_short_text,
    parse_street_address,
)
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge
from tests.chat import Chat
from tests.handlers.test_donor_form import aggregator, start
from tests.handlers.test_household_form import start_request, stored_requests
from tests.handlers.test_staff_stock import join
from tests.models.aid_world import AidWorld

RLO, ZWSP, LRI, PDI = "\u202e", "\u200b", "\u2066", "\u2069"


def quantity(typed: str) -> int | Invalid:
    return parse_quantity(typed, 10**9, unit="paket")


def reason(parsed: int | Invalid) -> str:
    return parsed.reason if isinstance(parsed, Invalid) else str(parsed)


@pytest.mark.parametrize(("typed", "value"), [
    ("10", 10), ("1.500", 1500), ("1,500", 1500), ("Rp 50.000", 50000),
    ("2.000.000", 2_000_000), ("1 000", 1000), ("10 000 000", 10_000_000),
    ("Rp 50 000", 50000),
])
def test_quantities_with_thousands_separators(typed: str, value: int) -> None:
    assert quantity(typed) == value


@pytest.mark.parametrize("typed", ["1.5", "0,5", "1.50", "1.000,50", ",5", "2.5 paket"])
def test_a_decimal_is_not_read_as_a_whole_number(typed: str) -> None:
    assert reason(quantity(typed)) in ("invalid.quantity.whole", "invalid.quantity")
    assert quantity("1.5") == Invalid("invalid.quantity.whole")
    assert quantity("0,5") == Invalid("invalid.quantity.whole")


@pytest.mark.parametrize("typed", ["1 5", "2 3 4", "1 50", "1.50 0", "10  000", "1 0000"])
def test_spaces_group_thousands_and_never_join_two_numbers(typed: str) -> None:
    assert quantity(typed) == Invalid("invalid.quantity", {"unit": "paket", "example": "10"})


def test_controls_and_format_characters_are_dropped() -> None:
    assert clean_text(f"Siti{ZWSP} {RLO}Aminah\x00\x07") == "Siti Aminah"
    assert clean_text("a\tb\nc") == "a b c"
    assert clean_text("a\nb\x1b", newlines=True) == "a\nb"
    assert parse_person_name(f"{RLO}Siti{LRI} Aminah{PDI}") == "Siti Aminah"
    assert parse_short_text(f"Yayasan{ZWSP} Peduli{RLO}", 100) == "Yayasan Peduli"
    address = parse_street_address(f"Jl. Melati{RLO} 5 RT 3 RW 5")
    assert not isinstance(address, Invalid) and address.street == "Jl. Melati 5"


@pytest.mark.parametrize("typed", [
    "https://example.org", "HTTP://x.y", "www.bantuan-cepat", "t.me/bantuan", "wa.me/62812",
    "bit.ly/abc", "klik bantuan.com sekarang", "donasi.co.id", "tg://resolve?x",
    # Other endings, on any dotted host; any ending with a path.
    "hadiah.ru", "kunjungi promo.sh", "evil.pw", "Evil.Ru", "x.com", "a.b.c.xyz",
    "login.example.zzz/x",
    # Addresses of a machine, with or without a port or a path.
    "cek 1.2.3.4", "1.2.3.4:8080", "10.0.0.1/admin", "192.168.100.200:80",
    # Dots that look like dots: fullwidth, ideographic, halfwidth, middle dot.
    "t\uff0eme/x", "evil\u3002ru", "evil\uff61ru", "hadiah\uff0ecom",
    "\uff54\uff0e\uff4d\uff45/x", "evil\u00b7ru", "t\u200b.me/x",
    # Spaced out, bracketed or spelled out.
    "t . me/x", "t. me/x", "example [dot] com", "example dot com", "example(.)com",
    "hadiah titik com",
])
def test_links_are_recognised(typed: str) -> None:
    assert has_link(typed)


@pytest.mark.parametrize("typed", [
    "Jl. Melati No. 5", "Gg. Mawar 3", "Jl.Cokroaminoto 12", "Komp. Taman Kota Blok C.2",
    "Siti Aminah", "Ruko Sentra No.10", "Yayasan Peduli Tebet",
    "Jl. Mawar No. 5", "RT 01/RW 02", "Blok C.3", "harga 1.500", "Rp 1.250.000.000",
    "M. Ali", "KH. Ahmad Dahlan", "Jl.KH.Ahmad Dahlan 5", "Jl. SD Inpres 4",
    "sebelah pasar. Ke kiri", "Budi, S.H., M.H.", "Drs.H.Ahmad", "Jl. Raya Bogor Km. 5",
    "rumah no 5.pagar hijau", "sudah sampai.terima kasih", "Dekat masjid. Di sana",
    "Perum. Griya Asri Blok A.12", "Jl. Mawar I No. 3 RT.01/RW.02", "jam 8.30 pagi",
    "Kel. Tebet Barat, Kec. Tebet", "Ibu Hj. Siti", "titik kumpul di masjid",
    "Apt. Kalibata City Tower B.12", "Jl. Dr. Sutomo", "dr. Budi Sp.A",
])
def test_ordinary_addresses_and_names_are_not_links(typed: str) -> None:
    assert not has_link(typed)


def test_a_link_in_a_name_an_address_or_a_note_is_refused() -> None:
    assert parse_person_name("www.hadiah.com") == Invalid("invalid.link")
    assert parse_street_address("Jl. Melati 5 RT 3 RW 5 t.me/bantuan") == Invalid(
        "invalid.link")
    assert parse_short_text("lihat https://x.example", 100) == Invalid("invalid.link")


def test_typed_text_cannot_pass_as_formatting() -> None:
    shown = as_typed(f"*PENTING*: _hubungi_ ~admin~ `sekarang`{RLO}")
    assert not set("*_~`") & set(shown) and RLO not in shown
    assert shown == ("\u2217PENTING\u2217: \u02cdhubungi\u02cd \u223cadmin\u223c "
                     "\u02cbsekarang\u02cb")
    assert as_typed("> dari admin").startswith("\u203a")
    assert as_typed(None) == ""


async def test_a_household_types_a_bidi_name_and_a_link_in_the_address(
        services: Services) -> None:
    world = AidWorld(services)
    selatan = await world.aggregator("Jakarta Selatan")
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all(f"Siti {RLO}Aminah{ZWSP}", "0812 3456 7890", "3171234508900001",
                       "12930")
    await chat.say("Jl. Melati 5 RT 3 RW 5, info di wa.me/6281234")
    assert "Please leave out links" in chat.last.text
    await chat.say("Jl. *Melati* _5_ RT 3 RW 5")
    await chat.say_all("4", "1,4", "1")
    assert chat.last.context == "hh.summary", chat.last.text
    await chat.say("1")
    [request] = await stored_requests(services)
    assert request.head_name == "Siti Aminah"
    assert request.street == "Jl. *Melati* _5_"

    staff = await join(world, selatan, "staff")
    await staff.say("/queue")
    card = staff.last.text
    assert "Head of household: Siti Aminah" in card
    assert "Address: Jl. \u2217Melati\u2217 \u02cd5\u02cd RT 003/RW 005" in card
    assert not set("*_~`") & set(card.split("Address:")[1].split("\n")[0])


async def test_a_donor_and_staff_cannot_type_a_decimal_quantity(services: Services) -> None:
    await aggregator(services, "Posko Selatan", "Jakarta Selatan")
    chat = Chat(services.conversations)
    await start(chat)
    await chat.tap("food_package")
    await chat.say("1.5")
    assert "Type a whole number, for example 2" in chat.last.text
    await chat.say("0,5")
    assert "Type a whole number, for example 2" in chat.last.text
    await chat.say("1.500")
    assert "How many packages?" not in chat.last.text
    await chat.tap(chat.option_id("Jakarta Selatan"))
    await chat.tap("all")
    # The one aggregator there is named, not asked for.
    assert "Your gift goes to Posko Selatan" in chat.last.text
    await chat.tap("pickup")
    await chat.say(f"Jl. Kenanga {RLO}9 http://peta.example")
    assert "Please leave out links" in chat.last.text
    await chat.say(f"Jl. Kenanga {RLO}9")
    await chat.say("Senin 08.00")
    assert "1.500 packages" in chat.last.text
    await chat.tap("submit")
    async with services.sessions() as session:
        pledge = await session.scalar(select(Pledge))
        assert pledge is not None
        assert (pledge.quantity, pledge.pickup_address) == (1500, "Jl. Kenanga 9")
        assert await session.scalar(select(HelpRequest)) is None
