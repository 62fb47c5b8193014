"""Parsers for what a person types in chat.

Every parser takes the raw text of a message and returns either the normalised
value or an :class:`Invalid`.  Parsers never raise on user input and never
produce user-facing text: an :class:`Invalid` carries a message-catalog key
plus the parameters the caller needs to render it in the user's language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import phonenumbers
from phonenumbers import PhoneNumberType

__all__ = [
    "HOUSEHOLD_SIZE_MAX",
    "HOUSEHOLD_SIZE_MIN",
    "NAME_MAX_LENGTH",
    "NAME_MIN_LENGTH",
    "NIK_LENGTH",
    "NIK_MAX_AGE_YEARS",
    "PROVINCE_CODES",
    "RT_RW_MAX",
    "STREET_MAX_LENGTH",
    "STREET_MIN_LENGTH",
    "Invalid",
    "StreetAddress",
    "clean_text",
    "has_link",
    "nik_birth_date",
    "parse_household_size",
    "parse_id",
    "parse_int_in_range",
    "parse_nik",
    "parse_person_name",
    "parse_phone",
    "parse_quantity",
    "parse_short_text",
    "parse_street_address",
    "small_number",
]


@dataclass(frozen=True)
class Invalid:
    """Why a piece of input was refused: a catalog key and its parameters."""

    reason: str
    params: Mapping[str, str | int] = field(default_factory=dict)


def _collapse_whitespace(text: str) -> str:
    """Replace every run of whitespace (any Unicode space, tabs, newlines) by one space."""
    return " ".join(text.split())


# Invisible characters that change how text reads without being seen: control characters
# (Cc), format characters (Cf: bidi overrides such as U+202E that show "exe.txt" as
# "txt.exe", zero-width spaces and joiners), and lone surrogates (Cs), which cannot even be
# stored as UTF-8.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def clean_text(text: str, *, newlines: bool = False) -> str:
    """The text without control and format characters. Whitespace controls (tab, line
    breaks) become spaces, or stay line breaks with `newlines`; every other one is
    dropped, so that what staff and volunteers read is what was typed, in plain order."""
    kept: list[str] = []
    for char in text:
        if newlines and char == "\n":
            kept.append(char)
        elif char.isspace() and unicodedata.category(char) == "Cc":
            kept.append(" ")
        elif unicodedata.category(char) not in _HIDDEN_CATEGORIES:
            kept.append(char)
    return "".join(kept)


# --------------------------------------------------------------------------- links
#
# Links in an address or a name would reach staff and volunteers as something to tap,
# from a stranger. A chat app makes a link of a dotted host name with a known ending, of an
# address (1.2.3.4), and of forms people type to get past a filter: look-alike dots
# ("t．me", "evil。ru"), spaces around the dot ("t . me/x"), the dot in words ("example
# [dot] com"). What Indonesian addresses and names hold is not one: "Jl. Mawar No. 5",
# "Jl.Cokroaminoto", "Blok C.3", "RT 01/RW 02", "1.500", "M. Ali", "KH. Ahmad Dahlan".

# Dots by another name: NFKC turns the fullwidth and small ones into "." already.
_DOTS = str.maketrans({char: "." for char in (
    "\u3002"  # ideographic full stop
    "\uff61"  # halfwidth ideographic full stop
    "\u00b7"  # middle dot
    "\u0387"  # Greek ano teleia
    "\u06d4"  # Arabic full stop
    "\u0701\u0702"  # Syriac full stops
    "\u2027"  # hyphenation point
    "\u2219\u22c5"  # bullet and dot operators
    "\u30fb\uff65"  # katakana middle dots
    "\u2e33\u2e31"  # raised and word-separator dots
    "\u1362\ua4f8\ua60e")})  # Ethiopic, Lisu and Vai full stops
# The dot spelled out or bracketed: "[dot]", "(.)", " dot ", " titik ".
_SPELLED_DOT = re.compile(
    r"\s*(?:[\[({<]\s*(?:\.|dot|titik)\s*[\])}>]|(?<=\w)\s+(?:dot|titik)\s+(?=\w))\s*",
    re.IGNORECASE)
# Endings that are top-level domains and seldom a word of an address: the generic ones
# and the country codes that links in spam use.
_TLD_LIST = """
    com net org info biz edu gov mil int io me ly co gl gg cc tk ml ga cf gq xyz link site
    online app dev top click shop store id ru su sh pw ws tv fm ai cn ch de uk us eu fr
    nl ph sg my th vn kr jp pk bd ng ir tr ua by kz uz br ar mx cl pe ve au nz ca za gh
    tz ug ps lk np mm kh bn tl fj pg vu sb nu gs vg mn lt lv ee pl cz sk hu ro bg gr rs
    hr si ba mk al md ge az kg tj tm af sa ae qa kw bh jo lb sy iq il eg dz tn sd et rw
    mw zm zw mz ao bw ls sz mg mu sc yt wf pf nc ck ki nr mh ag bs bb bz dm gd kn lc vc
    tt jm ht cu pr vi ky bm
    win bid loan work live life news world today space website tech fun club vip cloud
    host press email digital network services agency global zone icu cyou buzz rest bar
    casino bet poker games game money cash finance credit loans trade market gift gifts
    promo deals sale free best plus one pro mobi name asia tel travel jobs
    """
_TLDS = frozenset(_TLD_LIST.split())
# Words an address or a name puts before a dot: they make no host of what follows.
_ABBREVIATION_LIST = """
    jl jln jalan gg gang no nomor kp kav blok blk komp kompl perum perumahan rt rw kel
    kec kab kota prov ds dsn desa dk dkh lk lkgn lt ruko rusun apt psr pasar sd smp sma
    tk mi mts ma kh h hj hr dr drs dra ir prof st sdr sdri bpk ibu bu pak muh moh mohd
    abd ach ahm m mr mrs ms sh se mm mt amd spd skm
    """
_ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())
# A host: labels of letters, digits and hyphens joined by dots, the last of them letters.
_HOST = re.compile(r"(?<![\w.-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+)([a-z]{2,24})"
                   r"(?![\w-])(?!\.[a-z0-9])(/|:\d)?", re.IGNORECASE)
_IP = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w.])(:\d|/)?")
_LINK = re.compile(
    r"[a-z][a-z0-9+.-]*://"
    r"|\bwww\."
    r"|\b(?:t|wa|telegram|tg)\.me\b",
    re.IGNORECASE)


def _as_a_chat_app_reads_it(text: str) -> str:
    """The text with look-alike dots as dots, spelled-out dots as dots, and the spaces
    around a dot before a domain ending dropped ("t . me" is "t.me")."""
    text = unicodedata.normalize("NFKC", clean_text(text)).translate(_DOTS)
    text = _SPELLED_DOT.sub(".", text)
    return re.sub(r"(?<=\w)\s*\.\s+(?=([a-z]{2,24})\b)|(?<=\w)\s+\.\s*(?=([a-z]{2,24})\b)",
                  lambda m: "." if (m.group(1) or m.group(2) or "").lower() in _TLDS else
                  m.group(0), text, flags=re.IGNORECASE)


def _is_host(match: re.Match[str]) -> bool:
    labels = match.group(1).lower().rstrip(".").split(".")
    ending = match.group(2).lower()
    if match.group(3):
        # A path or a port after it: "example.anything/x" is a link whatever its ending.
        return labels[0] not in _ABBREVIATIONS
    if ending not in _TLDS:
        return False
    # "Jl.No", "KH.Ahmad", "M.Ali": an address's or a name's abbreviation before the dot.
    return not (len(labels) == 1 and (labels[0] in _ABBREVIATIONS or len(labels[0]) == 1)
                and ending not in ("com", "net", "org", "me", "ru", "io", "ly", "gl", "sh"))


def _is_address(match: re.Match[str]) -> bool:
    parts = [int(part) for part in match.groups()[:4]]
    if any(part > 255 for part in parts):
        return False
    # "1.250.000.000" is an amount (digits grouped by three), unless a port or path says
    # otherwise.
    grouped = all(len(part) == 3 for part in match.groups()[1:4])
    return bool(match.group(5)) or not grouped


def has_link(text: str) -> bool:
    """Whether the text holds something a chat app would show as a link, or that reads
    as one once its look-alike or spelled-out dots are dots."""
    read = _as_a_chat_app_reads_it(text)
    return _LINK.search(read) is not None \
        or any(_is_host(m) for m in _HOST.finditer(read)) \
        or any(_is_address(m) for m in _IP.finditer(read))


def _is_ascii_digits(text: str) -> bool:
    """True when ``text`` is non-empty and made only of the ASCII digits 0-9.

    ``str.isdigit`` is not used because it also accepts superscripts and
    digits of other scripts, which ``int`` would then interpret.
    """
    return text != "" and all("0" <= char <= "9" for char in text)


# --------------------------------------------------------------------------- numbers

# The largest id a database integer column holds: a larger one cannot name a row.
MAX_ID = 2**31 - 1


def parse_id(text: str) -> int | None:
    """A row id carried in button data, or None when the data cannot be one (tampered,
    superscript digits, too large for the column)."""
    if not _is_ascii_digits(text) or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def small_number(text: str) -> int | None:
    """A short run of ASCII digits (an option or page number), or None."""
    return int(text) if _is_ascii_digits(text) and len(text) <= 6 else None


_SIGNED_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_int_in_range(text: str, low: int, high: int) -> int | Invalid:
    """Parse a whole number written with ASCII digits (optional sign) within ``low..high``.

    Keys: ``invalid.number``; ``invalid.number.range`` {min} {max}.
    """
    cleaned = text.strip()
    if _SIGNED_INTEGER.fullmatch(cleaned) is None:
        return Invalid("invalid.number")
    out_of_range = Invalid("invalid.number.range", {"min": low, "max": high})
    try:
        value = int(cleaned)
    except ValueError:
        # Only reachable for absurdly long digit strings (int max str digits).
        return out_of_range
    if not low <= value <= high:
        return out_of_range
    return value


# Digits grouped by thousands with dots (as Indonesians write them) or commas: "1.500",
# "1,500", "2.000.000". A dot or comma anywhere else is a decimal point.
_GROUPED = re.compile(r"[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]{1,3}(?:,[0-9]{3})+")


# Thousands grouped by spaces: "1 500", "10 000 000".
_SPACE_GROUPED = re.compile(r"[0-9]{1,3}(?: [0-9]{3})+")

# A count as people write it: an amount of rupiah ("Rp 50.000", "IDR 50000"), digits
# (grouped or not), a word that multiplies them ("50rb", "1 juta", "1,5 jt"), and the
# unit counted ("10 paket", "10 pcs", "10 dus", "5 orang", "1 juta rupiah").
_COUNT = re.compile(
    r"(?:(?:rp|idr)\.?\s*)?"
    r"(?P<number>[0-9](?:[0-9., ]*[0-9])?)"
    r"\s*(?P<words>[^\W\d_][^\W\d]*(?:[\s.]+[^\W\d_][^\W\d]*)*)?\.?")
# Words that multiply the number before them, in Bahasa Indonesia and English.
_MULTIPLIERS = {
    "rb": 1_000, "ribu": 1_000, "rebu": 1_000, "k": 1_000, "thousand": 1_000,
    "jt": 1_000_000, "juta": 1_000_000, "million": 1_000_000,
    "miliar": 1_000_000_000, "milyar": 1_000_000_000,
    "billion": 1_000_000_000,
}
# With a multiplier, a decimal part is a fraction of it: "1,5 juta", "2.25 jt".
_DECIMAL = re.compile(r"(?P<whole>[0-9]+)(?:[.,](?P<fraction>[0-9]{1,2}))?")


def parse_quantity(text: str, limit: int, *, unit: str, example: int = 10
                   ) -> int | Invalid:
    """A count of items or an amount of rupiah, with or without its unit: "10", "1.000",
    "1,000", "10 paket", "10 pcs", "5 orang", "Rp 50.000", "50rb", "1 juta", "1,5 jt".

    "1.500" is one thousand five hundred; "1.5" or "0,5" is not a whole number and is
    refused with its own hint rather than read as 15 or 5. `unit` names what is counted
    (in the person's language) and `example` a sensible count of it, for the hints.

    Keys: ``invalid.quantity`` {unit} {example}; ``invalid.quantity.whole``;
    ``invalid.quantity.none`` {unit} {example}; ``invalid.quantity_too_big`` {max}.
    """
    written = clean_text(text).strip().lower()
    match = _COUNT.fullmatch(written)
    value: int | Invalid | None = None
    if match is not None:
        number = match["number"]
        words = match["words"].replace(".", " ").split() if match["words"] else []
        multiplier = _MULTIPLIERS.get(words[0], 1) if words else 1
        value = _multiplied(number, multiplier) if multiplier > 1 else _whole(number)
    if value is None:
        return Invalid("invalid.quantity", {"unit": unit, "example": _thousands(example)})
    if isinstance(value, Invalid):
        return value
    if value < 1:
        return Invalid("invalid.quantity.none", {"unit": unit, "example": _thousands(example)})
    if value > limit:
        return Invalid("invalid.quantity_too_big", {"max": _thousands(limit)})
    return value


def _thousands(value: int) -> str:
    """1000 as "1.000": thousands marked the Indonesian way."""
    return f"{value:,}".replace(",", ".")


def _whole(number: str) -> int | Invalid | None:
    """A whole number in digits, grouped by thousands or not; None when it is not one
    number."""
    if " " in number:
        # A space may group thousands ("10 000"), never join two numbers ("1 5").
        if not _SPACE_GROUPED.fullmatch(number):
            return None
        number = number.replace(" ", "")
    if re.search(r"[.,]", number):
        if not _GROUPED.fullmatch(number):
            return Invalid("invalid.quantity.whole")
        number = re.sub(r"[.,]", "", number)
    if not _is_ascii_digits(number):
        return None
    # Past 18 digits, more than anything can count: read as just that, without turning an
    # absurdly long text into a number.
    return int(number) if len(number) <= 18 else 10**19


def _multiplied(number: str, multiplier: int) -> int | Invalid | None:
    """A number before "rb", "juta"...: whole ("50rb", "1.500 rb") or with a decimal part
    ("1,5 juta"), as long as the amount is whole."""
    decimal = _DECIMAL.fullmatch(number)
    if decimal is None:
        whole = _whole(number)
        return whole * multiplier if isinstance(whole, int) else whole
    fraction = decimal["fraction"] or ""
    cents = int(decimal["whole"]) * 10 ** len(fraction) + int(fraction or 0)
    amount, rest = divmod(cents * multiplier, 10 ** len(fraction))
    return Invalid("invalid.quantity.whole") if rest else amount


HOUSEHOLD_SIZE_MIN = 1
HOUSEHOLD_SIZE_MAX = 30

# A number, optionally followed by a single word such as "orang", "jiwa", "people", "org.".
_HOUSEHOLD_SIZE = re.compile(r"(?P<number>[+-]?[0-9]+)\s*(?:[^\W\d_]+\.?)?")


def parse_household_size(text: str) -> int | Invalid:
    """Parse the number of people in a household: "5", " 5 ", "5 orang", "5 people".

    Keys: ``invalid.household_size.number``; ``invalid.household_size.range`` {min} {max}.
    """
    match = _HOUSEHOLD_SIZE.fullmatch(_collapse_whitespace(text))
    if match is None:
        return Invalid("invalid.household_size.number")
    result = parse_int_in_range(match["number"], HOUSEHOLD_SIZE_MIN, HOUSEHOLD_SIZE_MAX)
    if isinstance(result, Invalid):
        if result.reason == "invalid.number.range":
            return Invalid("invalid.household_size.range", result.params)
        return Invalid("invalid.household_size.number")
    return result


# --------------------------------------------------------------------------- free text


def parse_short_text(text: str, max_length: int) -> str | Invalid:
    """Free text with whitespace collapsed; must be non-empty and at most ``max_length`` long.

    Control and format characters are dropped; links are refused.

    Keys: ``invalid.text.empty``; ``invalid.text.too_long`` {max}; ``invalid.link``.
    """
    cleaned = _collapse_whitespace(clean_text(text))
    if not cleaned:
        return Invalid("invalid.text.empty")
    if len(cleaned) > max_length:
        return Invalid("invalid.text.too_long", {"max": max_length})
    if has_link(cleaned):
        return Invalid("invalid.link")
    return cleaned


# --------------------------------------------------------------------------- person name

NAME_MIN_LENGTH = 2
NAME_MAX_LENGTH = 100

_NAME_PUNCTUATION = frozenset(" .'-,")
# Phones often turn a typed apostrophe into a typographic one ("smart punctuation").
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def _is_letter_or_mark(char: str) -> bool:
    """Letters of any script, plus combining marks (accents, vowel signs) that attach to them."""
    return unicodedata.category(char)[0] in ("L", "M")


def _is_letter(char: str) -> bool:
    return unicodedata.category(char)[0] == "L"


def _has_name_characters_only(name: str) -> bool:
    """Only letters, combining marks and name punctuation, with at least one letter."""
    return all(_is_letter_or_mark(char) or char in _NAME_PUNCTUATION for char in name) and any(
        _is_letter(char) for char in name
    )


def _normalise_name(text: str) -> str:
    return _collapse_whitespace(
        unicodedata.normalize("NFC", clean_text(text)).translate(_APOSTROPHES))


def parse_person_name(text: str) -> str | Invalid:
    """Parse a head-of-household name.

    Whitespace is collapsed; letters of any script, spaces and ``. ' - ,`` are
    allowed; the name must contain at least one letter.  A name typed entirely
    in lower or upper case is title-cased ("SITI AMINAH" -> "Siti Aminah"),
    any other capitalisation is kept as typed.

    Keys: ``invalid.name.too_short``; ``invalid.name.too_long`` {max};
    ``invalid.name.characters``; ``invalid.link``.
    """
    name = _normalise_name(text)
    if not name:
        return Invalid("invalid.name.too_short")
    if has_link(name):
        return Invalid("invalid.link")
    if not _has_name_characters_only(name):
        return Invalid("invalid.name.characters")
    if name.islower() or name.isupper():
        # Title-casing can change the text (a ligature may expand to two
        # letters), so the result is normalised and checked again.
        name = _normalise_name(name.title())
        if not _has_name_characters_only(name):
            return Invalid("invalid.name.characters")
    if len(name) < NAME_MIN_LENGTH:
        return Invalid("invalid.name.too_short")
    if len(name) > NAME_MAX_LENGTH:
        return Invalid("invalid.name.too_long", {"max": NAME_MAX_LENGTH})
    return name


# --------------------------------------------------------------------------- phone

_INDONESIA_REGION = "ID"
_INDONESIA_CALLING_CODE = 62
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
# What a typed or shared phone number may contain besides digits.  Letters are
# refused so that "vanity" numbers (1-800-FLOWERS) and extensions are not guessed.
_PHONE_PUNCTUATION = frozenset("+-.()/ ")
_PHONE_MAX_INPUT = 64


def parse_phone(text: str) -> str | Invalid:
    """Parse an Indonesian mobile number and return it in E.164 form ("+62812...").

    Accepts national ("0812-3456-7890") and international ("+62 812 3456 7890",
    "62812...") spellings.

    Keys: ``invalid.phone.format``; ``invalid.phone.not_indonesian``;
    ``invalid.phone.not_mobile``.
    """
    # Drop invisible formatting characters (bidi marks copied from chat apps)
    # and unify whitespace.
    cleaned = _collapse_whitespace(clean_text(text))
    if (
        not cleaned
        or len(cleaned) > _PHONE_MAX_INPUT
        or not all("0" <= char <= "9" or char in _PHONE_PUNCTUATION for char in cleaned)
        or not any("0" <= char <= "9" for char in cleaned)
    ):
        return Invalid("invalid.phone.format")
    try:
        number = phonenumbers.parse(cleaned, _INDONESIA_REGION)
    except phonenumbers.NumberParseException:
        return Invalid("invalid.phone.format")
    if not phonenumbers.is_valid_number(number):
        return Invalid("invalid.phone.format")
    if number.country_code != _INDONESIA_CALLING_CODE:
        return Invalid("invalid.phone.not_indonesian")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return Invalid("invalid.phone.not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --------------------------------------------------------------------------- NIK

NIK_LENGTH = 16
NIK_MAX_AGE_YEARS = 120
# Province codes (BPS / Kemendagri) that begin every NIK.
PROVINCE_CODES: frozenset[str] = frozenset(
    f"{code:02d}"
    for code in (
        *range(11, 20),
        21,
        *range(31, 37),
        *range(51, 54),
        *range(61, 66),
        *range(71, 77),
        81,
        82,
        *range(91, 97),
    )
)
_FEMALE_DAY_OFFSET = 40
_NIK_SEPARATORS = frozenset(".-")


def _years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier (Feb 29 falls back to Feb 28)."""
    year = max(date.min.year, day.year - years)
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)


def _decode_birth_date(digits: str, today: date) -> tuple[date, bool] | None:
    """Birth date and sex encoded in digits 7-12 (DDMMYY) of a 16-digit NIK, or None."""
    day = int(digits[6:8])
    month = int(digits[8:10])
    two_digit_year = int(digits[10:12])
    is_female = day > _FEMALE_DAY_OFFSET
    if is_female:
        day -= _FEMALE_DAY_OFFSET
    # The two-digit year is read as the most recent year not after today's year.
    century = today.year - today.year % 100
    year = century + two_digit_year
    if two_digit_year > today.year % 100:
        year -= 100
    try:
        born = date(year, month, day)
    except ValueError:
        return None
    # With the century rule above a birth date is always less than 100 years
    # ago, so the age limit is a safeguard should that rule ever change.
    if born > today or born < _years_before(today, NIK_MAX_AGE_YEARS):
        return None
    return born, is_female


def parse_nik(text: str, today: date) -> str | Invalid:
    """Parse an Indonesian national identity number (NIK) and return its 16 digits.

    Spaces, dots and dashes are ignored.  Layout: PP KK CC DDMMYY SSSS, with
    province PP, regency KK, district CC, birth date DDMMYY (women add 40 to
    the day) and serial SSSS.

    Keys: ``invalid.nik.digits``; ``invalid.nik.length`` {length};
    ``invalid.nik.province``; ``invalid.nik.region``; ``invalid.nik.date``;
    ``invalid.nik.serial``.
    """
    digits = "".join(char for char in text if not char.isspace() and char not in _NIK_SEPARATORS)
    # Checked before the length so that "NIK 3171..." is reported as a wrong
    # character rather than a wrong length.
    if digits and not _is_ascii_digits(digits):
        return Invalid("invalid.nik.digits")
    if len(digits) != NIK_LENGTH:
        return Invalid("invalid.nik.length", {"length": len(digits)})
    if digits[0:2] not in PROVINCE_CODES:
        return Invalid("invalid.nik.province")
    if digits[2:4] == "00" or digits[4:6] == "00":
        return Invalid("invalid.nik.region")
    if _decode_birth_date(digits, today) is None:
        return Invalid("invalid.nik.date")
    if digits[12:16] == "0000":
        return Invalid("invalid.nik.serial")
    return digits


def nik_birth_date(nik: str, today: date) -> tuple[date, bool]:
    """Return ``(birth date, is_female)`` encoded in a valid NIK.

    Raises ``ValueError`` when ``nik`` is not a valid NIK (a programming error:
    call :func:`parse_nik` on user input first).
    """
    parsed = parse_nik(nik, today)
    if isinstance(parsed, Invalid):
        raise ValueError(f"not a valid NIK: {parsed.reason}")
    decoded = _decode_birth_date(parsed, today)
    if decoded is None:  # pragma: no cover - parse_nik already checked the date
        raise ValueError("not a valid NIK: invalid.nik.date")
    return decoded


# --------------------------------------------------------------------------- street address

RT_RW_MAX = 999
STREET_MIN_LENGTH = 5
STREET_MAX_LENGTH = 200


@dataclass(frozen=True)
class StreetAddress:
    """A street address with its RT (neighbourhood) and RW (hamlet) numbers."""

    street: str
    rt: str  # 3-digit, zero padded: "003"
    rw: str  # 3-digit, zero padded: "005"

    def display(self) -> str:
        """Conventional written form: "Jl. Melati No. 5, RT 003/RW 005"."""
        return f"{self.street}, RT {self.rt}/RW {self.rw}"


# Keyword not glued to a preceding letter (so "Kartini" does not contain "RT").
_NO_LETTER_BEFORE = r"(?<![^\W\d_])"
# ... nor followed by one (so "Rtn." or "Rwanda" are not keywords).
_NO_LETTER_AFTER = r"(?![^\W\d_])"
_KEYWORD_SEPARATOR = r"\s*[.:]?\s*"
_NUMBER = r"[0-9]+(?![0-9])"
_RT = _NO_LETTER_BEFORE + r"rt" + _NO_LETTER_AFTER + _KEYWORD_SEPARATOR
_RW = _NO_LETTER_BEFORE + r"rw" + _NO_LETTER_AFTER + _KEYWORD_SEPARATOR
_PAIR_SEPARATOR = r"\s*[/,.\-]?\s*"

# Tried in order; the first that matches anywhere in the text wins.
_RT_RW_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # "RT/RW 003/005", "RT.RW: 3/5", "rt rw 3 5"
        rf"{_NO_LETTER_BEFORE}rt\s*[/.]?\s*rw{_NO_LETTER_AFTER}{_KEYWORD_SEPARATOR}"
        rf"(?P<rt>{_NUMBER})(?:\s*[/,.\-]\s*|\s+)(?P<rw>{_NUMBER})",
        # "RT 03 RW 05", "rt.3 rw.5", "RT003/RW005", "RT 3 / RW 7", "rt 01, rw 02"
        rf"{_RT}(?P<rt>{_NUMBER}){_PAIR_SEPARATOR}{_RW}(?P<rw>{_NUMBER})",
        # "RW 05 RT 03"
        rf"{_RW}(?P<rw>{_NUMBER}){_PAIR_SEPARATOR}{_RT}(?P<rt>{_NUMBER})",
        # "RT 03/05"
        rf"{_RT}(?P<rt>{_NUMBER})\s*/\s*(?P<rw>{_NUMBER})",
        # Bare "03/05" at the very end: "Jl. Kebon Jeruk 3 03/05"
        rf"(?<![0-9/])(?P<rt>{_NUMBER})\s*/\s*(?P<rw>{_NUMBER})\s*[.,;]?\s*$",
    )
)
# The patterns that rely on the RT/RW keywords (all but the bare "03/05").
_RT_RW_KEYWORD_PATTERNS = _RT_RW_PATTERNS[:-1]
# Characters trimmed where the RT/RW part was cut out of the address.
_BEFORE_RT_RW_TRIM = " ,;/-:|("
_AFTER_RT_RW_TRIM = " ,;/-:.|)"


def _rt_rw_number(digits: str) -> str | None:
    """Three-digit, zero-padded RT/RW number, or None when not in 1..999."""
    significant = digits.lstrip("0")
    if not significant or len(significant) > 3:
        return None
    return f"{int(significant):03d}"


def parse_street_address(text: str) -> StreetAddress | Invalid:
    """Parse a street address that includes its RT and RW numbers.

    Understands the usual spellings: "Jl. Melati No. 5 RT 03 RW 05",
    "jl melati 5 rt.3 rw.5", "Gg. Mawar RT003/RW005", "Jl Kenanga 12 RT 3 / RW 7",
    "RT/RW 03/05", "RT 03/05" and a bare "03/05" at the end.  The street is the
    rest of the text, kept as typed with whitespace collapsed.

    Keys: ``invalid.address.rt_rw``; ``invalid.address.too_short``;
    ``invalid.address.too_long`` {max}; ``invalid.link``.
    """
    cleaned = _collapse_whitespace(clean_text(text))
    if has_link(cleaned):
        return Invalid("invalid.link")
    match = None
    for pattern in _RT_RW_PATTERNS:
        match = pattern.search(cleaned)
        if match is not None:
            break
    if match is None:
        return Invalid("invalid.address.rt_rw")
    rt = _rt_rw_number(match["rt"])
    rw = _rt_rw_number(match["rw"])
    if rt is None or rw is None:
        return Invalid("invalid.address.rt_rw")
    before = cleaned[: match.start()].rstrip(_BEFORE_RT_RW_TRIM)
    after = cleaned[match.end() :].lstrip(_AFTER_RT_RW_TRIM)
    street = f"{before}, {after}" if before and after else before or after
    street = street.lstrip(_AFTER_RT_RW_TRIM).rstrip(_BEFORE_RT_RW_TRIM)
    if any(pattern.search(street) for pattern in _RT_RW_KEYWORD_PATTERNS):
        # Two RT/RW pairs ("RT 1 RW 2 ... RT 3 RW 4"): ambiguous, ask again.
        return Invalid("invalid.address.rt_rw")
    if len(street) < STREET_MIN_LENGTH:
        return Invalid("invalid.address.too_short")
    if len(street) > STREET_MAX_LENGTH:
        return Invalid("invalid.address.too_long", {"max": STREET_MAX_LENGTH})
    return StreetAddress(street=street, rt=rt, rw=rw)
