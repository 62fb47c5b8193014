"""Tests for the chat input parsers in gotong.handlers.validators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotong.handlers.validators import (
    Invalid,
    StreetAddress,
    nik_birth_date,
    parse_household_size,
    parse_id,
    parse_int_in_range,
    parse_nik,
    parse_person_name,
    parse_phone,
    parse_short_text,
    parse_street_address,
    small_number,
)

# No example database on disk (the tree is shared) and no deadline: the first
# phonenumbers call loads metadata and may be slow.
property_settings = settings(database=None, deadline=None, max_examples=200)

TODAY = date(2024, 6, 1)


def make_nik(
    *,
    province: str = "31",
    regency: str = "71",
    district: str = "01",
    day: str = "15",
    month: str = "08",
    year: str = "90",
    serial: str = "0001",
) -> str:
    """A NIK built from its parts: PP KK CC DD MM YY SSSS."""
    return province + regency + district + day + month + year + serial


VALID_NIK = make_nik()  # 3171011508900001: man born 15 Aug 1990 in Jakarta


# --------------------------------------------------------------------------- Invalid


def test_invalid_defaults_to_no_params() -> None:
    assert Invalid("invalid.phone.format").params == {}
    assert Invalid("x") == Invalid("x", {})


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Siti Aminah", "Siti Aminah"),
        ("SITI AMINAH", "Siti Aminah"),
        ("siti", "Siti"),
        ("siti aminah", "Siti Aminah"),
        ("  Budi    Santoso  ", "Budi Santoso"),
        ("budi\tsantoso\n", "Budi Santoso"),
        ("Al", "Al"),
        ("McDonald", "McDonald"),  # mixed case kept as typed
        ("Siti aminah", "Siti aminah"),  # mixed case kept as typed
        ("I Gusti Ngurah Rai", "I Gusti Ngurah Rai"),
        ("Muh. Yusuf", "Muh. Yusuf"),
        ("o'brien", "O'Brien"),
        ("d\u2019arcy", "D'Arcy"),  # typographic apostrophe from a phone keyboard
        ("Abdul-Rahman", "Abdul-Rahman"),
        ("Aminah, S.Pd", "Aminah, S.Pd"),
        ("José Ramírez", "José Ramírez"),
        ("JOSÉ", "José"),
        ("Jose\u0301", "José"),  # decomposed accent is composed (NFC)
        ("李小龙", "李小龙"),
        ("محمد", "محمد"),
        ("A" * 100, "A" + "a" * 99),  # all upper, one word: title-cased
    ],
)
def test_parse_person_name_accepts(text: str, expected: str) -> None:
    assert parse_person_name(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Invalid("invalid.name.too_short")),
        ("   ", Invalid("invalid.name.too_short")),
        ("A", Invalid("invalid.name.too_short")),
        (" b ", Invalid("invalid.name.too_short")),
        ("a" * 101, Invalid("invalid.name.too_long", {"max": 100})),
        ("Siti " + "a" * 100, Invalid("invalid.name.too_long", {"max": 100})),
        ("Siti 2", Invalid("invalid.name.characters")),
        ("Budi123", Invalid("invalid.name.characters")),
        ("12", Invalid("invalid.name.characters")),
        ("Siti@home", Invalid("invalid.name.characters")),
        ("Siti_Aminah", Invalid("invalid.name.characters")),
        ("Siti 🙂", Invalid("invalid.name.characters")),
        ("Siti (ibu)", Invalid("invalid.name.characters")),
        ("Siti²", Invalid("invalid.name.characters")),
        ("٣٤", Invalid("invalid.name.characters")),  # Arabic-Indic digits
        (".-", Invalid("invalid.name.characters")),  # no letters at all
        ("' , .", Invalid("invalid.name.characters")),
    ],
)
def test_parse_person_name_refuses(text: str, expected: Invalid) -> None:
    assert parse_person_name(text) == expected


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0812-3456-7890", "+6281234567890"),
        ("0812 3456 7890", "+6281234567890"),
        ("081234567890", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"),
        ("+62 812-3456-7890", "+6281234567890"),
        ("+6281234567890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("62 812 3456 7890", "+6281234567890"),
        ("+62 (0)812 3456 7890", "+6281234567890"),
        ("0812.3456.7890", "+6281234567890"),
        ("  0812 3456 7890  ", "+6281234567890"),
        ("0812\u00a03456\u00a07890", "+6281234567890"),  # no-break spaces
        ("\u202a+62 812-3456-7890\u202c", "+6281234567890"),  # bidi marks from a copy
        ("0811-1234-567", "+628111234567"),
        ("0856 1234 5678", "+6285612345678"),
        ("0878 1234 5678", "+6287812345678"),
    ],
)
def test_parse_phone_accepts(text: str, expected: str) -> None:
    assert parse_phone(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "invalid.phone.format"),
        ("   ", "invalid.phone.format"),
        ("abc", "invalid.phone.format"),
        ("nomor saya 0812", "invalid.phone.format"),
        ("0812", "invalid.phone.format"),
        ("62", "invalid.phone.format"),
        ("+", "invalid.phone.format"),
        ("0812-ABCD-EFGH", "invalid.phone.format"),
        ("1-800-FLOWERS", "invalid.phone.format"),
        ("0812 3456 7890 ext 12", "invalid.phone.format"),
        ("0812345678901234567890", "invalid.phone.format"),
        ("1" * 500, "invalid.phone.format"),
        ("+65 9123 4567", "invalid.phone.not_indonesian"),  # Singapore mobile
        ("+6591234567", "invalid.phone.not_indonesian"),
        ("+60 12-345 6789", "invalid.phone.not_indonesian"),  # Malaysia
        ("+1 650 253 0000", "invalid.phone.not_indonesian"),
        ("021-5551234", "invalid.phone.not_mobile"),  # Jakarta landline
        ("(021) 555 1234", "invalid.phone.not_mobile"),
        ("+62 21 5551234", "invalid.phone.not_mobile"),
        ("0800 1234567", "invalid.phone.not_mobile"),  # toll free
    ],
)
def test_parse_phone_refuses(text: str, reason: str) -> None:
    assert parse_phone(text) == Invalid(reason)


# --------------------------------------------------------------------------- NIK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID_NIK, VALID_NIK),
        ("3171 0115 0890 0001", VALID_NIK),
        ("3171.0115.0890.0001", VALID_NIK),
        ("3171-0115-0890-0001", VALID_NIK),
        (" 317101 150890 0001 ", VALID_NIK),
        ("31\t71 01\n150890 0001", VALID_NIK),
        (make_nik(province="11"), make_nik(province="11")),
        (make_nik(province="21"), make_nik(province="21")),
        (make_nik(province="65"), make_nik(province="65")),
        (make_nik(province="82"), make_nik(province="82")),
        (make_nik(province="96"), make_nik(province="96")),
        (make_nik(day="55"), make_nik(day="55")),  # woman born on the 15th
        (make_nik(day="41"), make_nik(day="41")),
        (make_nik(day="71", month="01"), make_nik(day="71", month="01")),
        (make_nik(day="31", month="12"), make_nik(day="31", month="12")),
        (make_nik(day="29", month="02", year="00"), make_nik(day="29", month="02", year="00")),
        (make_nik(day="69", month="02", year="96"), make_nik(day="69", month="02", year="96")),
        (make_nik(day="29", month="02", year="20"), make_nik(day="29", month="02", year="20")),
        (make_nik(day="01", month="06", year="24"), make_nik(day="01", month="06", year="24")),
        (make_nik(day="02", month="06", year="25"), make_nik(day="02", month="06", year="25")),
        (make_nik(serial="9999"), make_nik(serial="9999")),
    ],
)
def test_parse_nik_accepts(text: str, expected: str) -> None:
    assert parse_nik(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Invalid("invalid.nik.length", {"length": 0})),
        ("   ", Invalid("invalid.nik.length", {"length": 0})),
        (VALID_NIK[:15], Invalid("invalid.nik.length", {"length": 15})),
        (VALID_NIK + "1", Invalid("invalid.nik.length", {"length": 17})),
        ("3171 0115 0890 001", Invalid("invalid.nik.length", {"length": 15})),
        ("1234", Invalid("invalid.nik.length", {"length": 4})),
        (VALID_NIK[:15] + "A", Invalid("invalid.nik.digits")),
        ("317101150890000l", Invalid("invalid.nik.digits")),
        ("NIK " + VALID_NIK, Invalid("invalid.nik.digits")),
        ("abcdefghijklmnop", Invalid("invalid.nik.digits")),
        ("3171/0115/0890/0001", Invalid("invalid.nik.digits")),
        ("３１７１０１１５０８９０００01", Invalid("invalid.nik.digits")),  # full-width
        (make_nik(province="00"), Invalid("invalid.nik.province")),
        (make_nik(province="99"), Invalid("invalid.nik.province")),
        (make_nik(province="10"), Invalid("invalid.nik.province")),
        (make_nik(province="20"), Invalid("invalid.nik.province")),
        (make_nik(province="37"), Invalid("invalid.nik.province")),
        (make_nik(province="83"), Invalid("invalid.nik.province")),
        (make_nik(province="97"), Invalid("invalid.nik.province")),
        (make_nik(regency="00"), Invalid("invalid.nik.region")),
        (make_nik(district="00"), Invalid("invalid.nik.region")),
        (make_nik(day="00"), Invalid("invalid.nik.date")),
        (make_nik(day="32"), Invalid("invalid.nik.date")),
        (make_nik(day="40"), Invalid("invalid.nik.date")),
        (make_nik(day="72"), Invalid("invalid.nik.date")),
        (make_nik(day="99"), Invalid("invalid.nik.date")),
        (make_nik(month="00"), Invalid("invalid.nik.date")),
        (make_nik(month="13"), Invalid("invalid.nik.date")),
        (make_nik(day="31", month="04"), Invalid("invalid.nik.date")),
        (make_nik(day="71", month="04"), Invalid("invalid.nik.date")),
        (make_nik(day="30", month="02", year="00"), Invalid("invalid.nik.date")),
        (make_nik(day="29", month="02", year="01"), Invalid("invalid.nik.date")),
        (make_nik(day="69", month="02", year="23"), Invalid("invalid.nik.date")),
        (make_nik(day="29", month="02", year="97"), Invalid("invalid.nik.date")),
        (make_nik(day="02", month="06", year="24"), Invalid("invalid.nik.date")),  # tomorrow
        (make_nik(day="01", month="12", year="24"), Invalid("invalid.nik.date")),
        (make_nik(serial="0000"), Invalid("invalid.nik.serial")),
    ],
)
def test_parse_nik_refuses(text: str, expected: Invalid) -> None:
    assert parse_nik(text, TODAY) == expected


def test_parse_nik_century_follows_today() -> None:
    nik = make_nik(day="15", month="08", year="30")
    assert nik_birth_date(nik, date(2024, 6, 1)) == (date(1930, 8, 15), False)
    assert nik_birth_date(nik, date(2031, 1, 1)) == (date(2030, 8, 15), False)
    # From 2030 on, "30" means 2030, which is in the future until the birthday.
    assert parse_nik(nik, date(2030, 8, 14)) == Invalid("invalid.nik.date")
    assert parse_nik(nik, date(2030, 8, 15)) == nik


@pytest.mark.parametrize(
    ("nik", "expected"),
    [
        (VALID_NIK, (date(1990, 8, 15), False)),
        (make_nik(day="55"), (date(1990, 8, 15), True)),
        (make_nik(day="41", month="01", year="05"), (date(2005, 1, 1), True)),
        (make_nik(day="71", month="12", year="99"), (date(1999, 12, 31), True)),
        (make_nik(day="69", month="02", year="00"), (date(2000, 2, 29), True)),
        (make_nik(day="29", month="02", year="96"), (date(1996, 2, 29), False)),
        ("3171 0115 0890 0001", (date(1990, 8, 15), False)),
    ],
)
def test_nik_birth_date(nik: str, expected: tuple[date, bool]) -> None:
    assert nik_birth_date(nik, TODAY) == expected


@pytest.mark.parametrize("nik", ["", VALID_NIK[:15], make_nik(day="32"), make_nik(serial="0000")])
def test_nik_birth_date_refuses_invalid_nik(nik: str) -> None:
    with pytest.raises(ValueError, match="not a valid NIK"):
        nik_birth_date(nik, TODAY)


# --------------------------------------------------------------------------- street addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jl. Melati No. 5 RT 03 RW 05", StreetAddress("Jl. Melati No. 5", "003", "005")),
        ("jl melati 5 rt.3 rw.5", StreetAddress("jl melati 5", "003", "005")),
        ("Gg. Mawar RT003/RW005", StreetAddress("Gg. Mawar", "003", "005")),
        ("Jl Kenanga 12 RT 3 / RW 7", StreetAddress("Jl Kenanga 12", "003", "007")),
        ("jalan anggrek no 1, rt 01 rw 02", StreetAddress("jalan anggrek no 1", "001", "002")),
        ("Jl. Kebon Jeruk 3 03/05", StreetAddress("Jl. Kebon Jeruk 3", "003", "005")),
        ("Jl. Kebon Jeruk 3 03 / 05.", StreetAddress("Jl. Kebon Jeruk 3", "003", "005")),
        ("Jl. Melati 5 RT/RW 003/005", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Melati 5, RT/RW: 3/5", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Melati 5 RT 03/05", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Melati 5 rt:3 rw:5", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Melati 5 RT. 003 RW. 005", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Melati 5 RT03RW05", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Melati 5 Rt 3, Rw 5", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Melati 5 RW 05 RT 03", StreetAddress("Jl. Melati 5", "003", "005")),
        ("Jl. Kartini 5 RT 1 RW 999", StreetAddress("Jl. Kartini 5", "001", "999")),
        ("Jl. H. Rt. Said 5 RT 1 RW 2", StreetAddress("Jl. H. Rt. Said 5", "001", "002")),
        ("Jl. Melati 1/2 RT 3 RW 4", StreetAddress("Jl. Melati 1/2", "003", "004")),
        ("RT 3 RW 5 Jl. Mawar 2", StreetAddress("Jl. Mawar 2", "003", "005")),
        (
            "Jl. Melati 5 (RT 3 RW 5), Kel. Sukamaju",
            StreetAddress("Jl. Melati 5, Kel. Sukamaju", "003", "005"),
        ),
        (
            "  Jl.   Melati\nNo. 5   RT 3   RW 5 ",
            StreetAddress("Jl. Melati No. 5", "003", "005"),
        ),
        # What display() produces parses back to the same address.
        ("Jl. Melati No. 5, RT 003/RW 005", StreetAddress("Jl. Melati No. 5", "003", "005")),
    ],
)
def test_parse_street_address_accepts(text: str, expected: StreetAddress) -> None:
    assert parse_street_address(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 RT 3", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 RW 5", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 RT RW", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 RT 0 RW 5", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 RT 000 RW 5", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 RT 3 RW 0", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 RT 1000 RW 5", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati No. 5 00/05", Invalid("invalid.address.rt_rw")),
        ("Jl. Kartini Rwanda 5", Invalid("invalid.address.rt_rw")),
        ("Jl. Melati 5 RT 1 RW 2 RT 3 RW 4", Invalid("invalid.address.rt_rw")),  # ambiguous
        ("RT/RW 1/2 Jl. Melati RT/RW 3/4", Invalid("invalid.address.rt_rw")),
        ("RT 3 RW 5", Invalid("invalid.address.too_short")),
        ("Jl. RT 3 RW 5", Invalid("invalid.address.too_short")),
        ("Gg 1 03/05", Invalid("invalid.address.too_short")),
        ("Jl. " + "a" * 197 + " RT 3 RW 5", Invalid("invalid.address.too_long", {"max": 200})),
    ],
)
def test_parse_street_address_refuses(text: str, expected: Invalid) -> None:
    assert parse_street_address(text) == expected


def test_parse_street_address_length_bounds() -> None:
    assert parse_street_address("Gg. A RT 1 RW 1") == StreetAddress("Gg. A", "001", "001")
    long_street = "Jl. " + "a" * 196
    assert parse_street_address(long_street + " RT 1 RW 1") == StreetAddress(
        long_street, "001", "001"
    )


def test_street_address_display() -> None:
    address = StreetAddress(street="Jl. Melati No. 5", rt="003", rw="005")
    assert address.display() == "Jl. Melati No. 5, RT 003/RW 005"


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", 5),
        (" 5 ", 5),
        ("05", 5),
        ("+5", 5),
        ("1", 1),
        ("10", 10),
        ("-3", Invalid("invalid.number.range", {"min": 1, "max": 10})),
        ("0", Invalid("invalid.number.range", {"min": 1, "max": 10})),
        ("11", Invalid("invalid.number.range", {"min": 1, "max": 10})),
        ("9" * 5000, Invalid("invalid.number.range", {"min": 1, "max": 10})),
        ("", Invalid("invalid.number")),
        ("lima", Invalid("invalid.number")),
        ("5.0", Invalid("invalid.number")),
        ("5 5", Invalid("invalid.number")),
        ("٥", Invalid("invalid.number")),  # Arabic-Indic five
        ("²", Invalid("invalid.number")),
    ],
)
def test_parse_int_in_range(text: str, expected: int | Invalid) -> None:
    assert parse_int_in_range(text, 1, 10) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", 5),
        (" 5 ", 5),
        ("5 orang", 5),
        ("5orang", 5),
        ("5 people", 5),
        ("5 Jiwa", 5),
        ("5 org.", 5),
        ("1", 1),
        ("30", 30),
        ("0", Invalid("invalid.household_size.range", {"min": 1, "max": 30})),
        ("31", Invalid("invalid.household_size.range", {"min": 1, "max": 30})),
        ("100 orang", Invalid("invalid.household_size.range", {"min": 1, "max": 30})),
        ("-2", Invalid("invalid.household_size.range", {"min": 1, "max": 30})),
        ("", Invalid("invalid.household_size.number")),
        ("lima", Invalid("invalid.household_size.number")),
        ("orang 5", Invalid("invalid.household_size.number")),
        ("5 anak 2 dewasa", Invalid("invalid.household_size.number")),
        ("5 orang dewasa", Invalid("invalid.household_size.number")),
        ("5.5", Invalid("invalid.household_size.number")),
        ("3-4", Invalid("invalid.household_size.number")),
    ],
)
def test_parse_household_size(text: str, expected: int | Invalid) -> None:
    assert parse_household_size(text) == expected


# --------------------------------------------------------------------------- short text


@pytest.mark.parametrize(
    ("text", "max_length", "expected"),
    [
        ("beras", 10, "beras"),
        ("  butuh   beras\n dan  air ", 50, "butuh beras dan air"),
        ("a" * 10, 10, "a" * 10),
        ("", 10, Invalid("invalid.text.empty")),
        (" \n\t ", 10, Invalid("invalid.text.empty")),
        ("a" * 11, 10, Invalid("invalid.text.too_long", {"max": 10})),
    ],
)
def test_parse_short_text(text: str, max_length: int, expected: str | Invalid) -> None:
    assert parse_short_text(text, max_length) == expected


# --------------------------------------------------------------------------- properties

TEXT_PARSERS: list[tuple[str, Callable[[str], object]]] = [
    ("name", parse_person_name),
    ("phone", parse_phone),
    ("nik", lambda text: parse_nik(text, TODAY)),
    ("address", parse_street_address),
    ("household", parse_household_size),
    ("int", lambda text: parse_int_in_range(text, 1, 30)),
    ("short_text", lambda text: parse_short_text(text, 50)),
]


@pytest.mark.parametrize(("name", "parser"), TEXT_PARSERS, ids=[name for name, _ in TEXT_PARSERS])
@property_settings
@given(text=st.text())
def test_parsers_never_raise(name: str, parser: Callable[[str], object], text: str) -> None:
    parser(text)


@property_settings
@given(text=st.text(), today=st.dates())
def test_parse_nik_never_raises_whatever_today(text: str, today: date) -> None:
    parse_nik(text, today)


_ADDRESS_TOKENS = [
    *"0123456789 .,-/:;()|",
    "RT",
    "RW",
    "rt",
    "rw",
    "Rt/Rw",
    "Jl.",
    "No.",
    "Gg Mawar",
]


@property_settings
@given(text=st.lists(st.sampled_from(_ADDRESS_TOKENS), max_size=20).map("".join))
def test_parse_street_address_on_address_like_text(text: str) -> None:
    result = parse_street_address(text)
    if isinstance(result, StreetAddress):
        assert len(result.rt) == 3
        assert len(result.rw) == 3
        assert 1 <= int(result.rt) <= 999
        assert 1 <= int(result.rw) <= 999
        assert 5 <= len(result.street) <= 200
        assert parse_street_address(result.display()) == result


_INDONESIAN_MOBILE_PREFIXES = ["811", "812", "813", "821", "822", "852", "853", "856", "857"]
_INDONESIAN_MOBILE_PREFIXES += ["858", "817", "818", "819", "859", "877", "878", "838", "881"]
_INDONESIAN_MOBILE_PREFIXES += ["895", "896", "897", "898", "899", "21", "22", "31", "65", "1"]


@st.composite
def phone_like(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(["0", "+62", "62", "+62 ", "+62 (0)", "+65 ", "+1 ", ""]))
    prefix = draw(st.sampled_from(_INDONESIAN_MOBILE_PREFIXES))
    rest = draw(st.text(alphabet="0123456789", min_size=4, max_size=10))
    separator = draw(st.sampled_from(["", " ", "-", "."]))
    chunks = [rest[index : index + 4] for index in range(0, len(rest), 4)]
    return country + prefix + separator + separator.join(chunks)


@property_settings
@given(text=st.one_of(phone_like(), st.text()))
def test_parse_phone_is_idempotent(text: str) -> None:
    result = parse_phone(text)
    if isinstance(result, str):
        assert result.startswith("+62")
        assert result[1:].isdigit()
        assert parse_phone(result) == result


@st.composite
def nik_like(draw: st.DrawFn) -> str:
    two = st.text(alphabet="0123456789", min_size=2, max_size=2)
    province = draw(st.one_of(st.sampled_from(["11", "31", "36", "51", "73", "94"]), two))
    region = draw(
        st.one_of(
            st.sampled_from(["0101", "7101", "0001", "0100"]),
            st.text(alphabet="0123456789", min_size=4, max_size=4),
        )
    )
    day = draw(st.integers(0, 75))
    month = draw(st.integers(0, 13))
    year = draw(st.integers(0, 99))
    serial = draw(st.sampled_from(["0001", "0000", "1234", "9999"]))
    nik = f"{province}{region}{day:02d}{month:02d}{year:02d}{serial}"
    if draw(st.booleans()):
        nik = f"{nik[0:4]} {nik[4:8]}.{nik[8:12]}-{nik[12:16]}"
    return nik


@property_settings
@given(text=st.one_of(nik_like(), st.text()), today=st.dates(date(1990, 1, 1), date(2150, 1, 1)))
def test_parse_nik_is_idempotent(text: str, today: date) -> None:
    result = parse_nik(text, today)
    if isinstance(result, str):
        assert len(result) == 16
        assert result.isdigit()
        assert parse_nik(result, today) == result
        born, is_female = nik_birth_date(result, today)
        assert born <= today
        assert is_female == (int(result[6:8]) > 40)
        assert f"{born.day + (40 if is_female else 0):02d}{born:%m}" == result[6:10]
        assert born.year % 100 == int(result[10:12])


@property_settings
@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet=st.characters(categories=["L", "M", "Zs"], include_characters=".'-,")),
        st.text(alphabet="abcdeABCDE éÉ.'-,\u2019ßǆﬀŉ"),
    )
)
def test_parse_person_name_is_idempotent(text: str) -> None:
    result = parse_person_name(text)
    if isinstance(result, str):
        assert 2 <= len(result) <= 100
        assert result == result.strip()
        assert "  " not in result
        assert parse_person_name(result) == result


@pytest.mark.parametrize(("text", "expected"), [
    ("12", 12), ("2147483647", 2**31 - 1), ("2147483648", None), ("0", None), ("", None),
    ("²", None), ("١٢", None), ("-3", None), ("12a", None), ("99999999999999999999", None)])
def test_ids_in_button_data(text: str, expected: int | None) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("3", 3), ("003", 3), ("²", None), ("1234567", None), ("", None), ("½", None)])
def test_option_and_page_numbers(text: str, expected: int | None) -> None:
    assert small_number(text) == expected
