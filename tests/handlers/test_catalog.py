"""The message catalogs: every language complete and consistent, every key the code uses
present, and the Catalog's look-up, fallback and formatting."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gotong.bot.config import LANGUAGES
from gotong.handlers.catalog import LOCALES_DIR, Catalog, MissingMessage, placeholders
from gotong.handlers.commands import LANGUAGE_NAMES, MENU_ITEMS
from gotong.handlers.household import NONE_OF_THESE
from gotong.handlers.messages import Kind
from gotong.models.delivery import FAILURE_REASONS, DeliveryStatus
from gotong.models.help_request import NEEDS, REJECT_REASONS, VULNERABILITIES
from gotong.models.notifications import STARS
from gotong.models.pledge import CATEGORIES, PledgeStatus
from gotong.models.priority import VULNERABILITY_WEIGHTS
from gotong.models.request_status import RequestStatus
from gotong.models.support import OUTCOMES, ROLES, SupportStatus
from gotong.models.volunteer import TRAVEL_MODES

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "gotong"
HANDLERS_DIR = PACKAGE_DIR / "handlers"
# Modules outside the handlers that name what people are told (the notification rules).
MESSAGE_MODULES = (PACKAGE_DIR / "models" / "notifications.py",
                   PACKAGE_DIR / "models" / "broadcast.py",
                   PACKAGE_DIR / "models" / "tasks.py",
                   PACKAGE_DIR / "models" / "support.py",
                   # The notice of a link by phone.
                   PACKAGE_DIR / "models" / "person.py",
                   # The question to a phone a proxy gave, and the proxy's news of it.
                   PACKAGE_DIR / "models" / "phone_confirmation.py",
                   # Staff's digest of the households that could not be reached.
                   PACKAGE_DIR / "models" / "failures.py",
                   # The WhatsApp channel's own words (list button, "more", ...).
                   PACKAGE_DIR / "bot" / "channels" / "whatsapp.py",
                   # The Telegram channel's own words (to a group, before it leaves).
                   PACKAGE_DIR / "bot" / "channels" / "telegram.py",
                   # The playground's screens (their titles, tips and own answers).
                   PACKAGE_DIR / "bot" / "channels" / "webchat.py",
                   # The web pages' handlers (flash messages, chart labels, ...).
                   PACKAGE_DIR / "bot" / "web" / "dashboard.py",
                   PACKAGE_DIR / "bot" / "web" / "dashboard_inbox.py",
                   PACKAGE_DIR / "bot" / "web" / "dashboard_failures.py",
                   PACKAGE_DIR / "bot" / "web" / "public.py",
                   # The error pages' words.
                   PACKAGE_DIR / "bot" / "web" / "pages.py")
TEMPLATES_DIR = PACKAGE_DIR / "bot" / "web" / "templates"
# A page's template is named like a key ("public.html"), and is not one.
TEMPLATE_SUFFIX = ".html"
# t("key") and t('key', ...) in a template.
TEMPLATE_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+(?:\.[a-z_]+)+)["']""")
KEY = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
# Names of other kinds that look like keys: the query parameters of Meta's webhook check.
NOT_KEYS = {"hub.mode", "hub.verify_token", "hub.challenge"}
PREFIX = re.compile(r"^[a-z_]+(\.[a-z_]+)*\.$")

# Keys built at run time, by prefix: every value the suffix can take.
DYNAMIC: dict[str, list[str]] = {
    "status.": [s.value for s in RequestStatus],
    "reask.": [k.value for k in Kind],
    "menu.": list(MENU_ITEMS),
    "vulnerable.": [*VULNERABILITIES, NONE_OF_THESE],
    "need.": list(NEEDS),
    "duplicate.": ["nik", "phone", "name_address"],
    "queue.": [f"{action}_done" for action in ("verify", "reject", "duplicate")],
    "reject.": [*REJECT_REASONS, "duplicate"],
    "score.": ["household_size", *VULNERABILITY_WEIGHTS, "days_waiting", "no_aid_yet"],
    "allocate.refused.": ["taken", "cooldown", "no_stock", "no_stock_for_area"],
    "pledge.": [s.value for s in PledgeStatus],
    "rate.": list(STARS),
    "failure.": [*FAILURE_REASONS, "disputed", "locked"],
    "travel.": list(TRAVEL_MODES),
    "delivery.": [s.value for s in DeliveryStatus],
    "category.": list(CATEGORIES),
    "unit.": list(CATEGORIES),
    "unit_one.": list(CATEGORIES),
    "amount.": list(CATEGORIES),
    "donor.": ["individual", "organisation", "drop", "pickup"],
    "support.role.": list(ROLES),
    "support.outcome.": list(OUTCOMES),
    "web.support.status.": [s.value for s in SupportStatus],
}
DYNAMIC_KEYS = sorted(prefix + suffix for prefix, suffixes in DYNAMIC.items()
                      for suffix in suffixes)


@pytest.fixture(scope="module")
def loaded() -> Catalog:
    return Catalog.load(strict=True)


def all_entries(catalog: Catalog) -> Iterator[tuple[str, str, str]]:
    for language in catalog.languages:
        for key in catalog.keys(language):
            yield language, key, catalog.raw(language, key)


def handler_sources() -> list[tuple[Path, ast.Module]]:
    paths = [*sorted(HANDLERS_DIR.glob("*.py")), *MESSAGE_MODULES]
    assert all(path.exists() for path in paths)
    return [(path, ast.parse(path.read_text(), str(path))) for path in paths]


def literal_keys() -> set[str]:
    """String literals of the handlers that look like catalog keys."""
    return {node.value for _, tree in handler_sources() for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and KEY.match(node.value) and not node.value.endswith(TEMPLATE_SUFFIX)
            and node.value not in NOT_KEYS}


def key_prefixes() -> dict[str, set[str]]:
    """Constant heads of f-strings that build a key, e.g. "status." of f"status.{x}"."""
    found: dict[str, set[str]] = {}
    for path, tree in handler_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr) and node.values:
                head = node.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str) \
                        and PREFIX.match(head.value):
                    found.setdefault(head.value, set()).add(f"{path.name}:{node.lineno}")
    return found


# --- the files ----------------------------------------------------------------------------


def test_every_configurable_language_has_a_catalog(loaded: Catalog) -> None:
    assert set(loaded.languages) == set(LANGUAGES) == set(LANGUAGE_NAMES)
    assert {p.stem for p in LOCALES_DIR.glob("*.po")} == set(LANGUAGES)


def test_every_language_has_the_same_keys(loaded: Catalog) -> None:
    reference = set(loaded.keys("en"))
    assert len(reference) > 100
    for language in loaded.languages:
        keys = set(loaded.keys(language))
        assert keys - reference == set(), f"only in {language}"
        assert reference - keys == set(), f"missing from {language}"


def test_no_key_is_defined_twice() -> None:
    for path in sorted(LOCALES_DIR.glob("*.po")):
        ids = re.findall(r'^msgid "(.+)"$', path.read_text(), re.MULTILINE)
        assert len(ids) == len(set(ids)), [i for i in set(ids) if ids.count(i) > 1]


def test_no_empty_translations(loaded: Catalog) -> None:
    empty = [(language, key) for language, key, text in all_entries(loaded) if not text.strip()]
    assert empty == []


def test_keys_look_like_keys(loaded: Catalog) -> None:
    odd = [key for key in loaded.keys("en") if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)*", key)]
    assert odd == []


def test_placeholders_are_the_same_in_every_language(loaded: Catalog) -> None:
    for key in loaded.keys("en"):
        expected = placeholders(loaded.raw("en", key))
        for language in loaded.languages:
            assert placeholders(loaded.raw(language, key)) == expected, f"{language}:{key}"


def test_every_text_formats_with_its_placeholders(loaded: Catalog) -> None:
    # Catches positional fields ("{}"), attribute access and unbalanced braces, which
    # placeholders() does not report.
    for language, key, text in all_entries(loaded):
        params = {name: "X" for name in placeholders(text)}
        assert all(name.isidentifier() for name in params), f"{language}:{key}"
        # A strict catalog raises on what str.format refuses.
        assert loaded.text(language, key, **params)


def test_a_count_takes_its_noun_in_the_right_number() -> None:
    catalog = Catalog({"en": {"k": "for {n:plural:household|households}, {m} left"}},
                      strict=True)
    assert catalog.text("en", "k", n=1, m=2) == "for 1 household, 2 left"
    assert catalog.text("en", "k", n=3, m=0) == "for 3 households, 0 left"
    assert catalog.text("en", "k", n=0, m=0) == "for 0 households, 0 left"


@pytest.mark.parametrize("key", ["words.back", "words.skip", "words.done", "words.next",
                                 "words.prev"])
def test_word_lists(loaded: Catalog, key: str) -> None:
    for language in loaded.languages:
        words = loaded.raw(language, key).split("|")
        assert words, f"{language}:{key}"
        assert all(w.strip() and w == w.strip() for w in words), f"{language}:{key}"
        assert len(words) == len(set(words)), f"{language}:{key}"


def test_every_word_list_is_known(loaded: Catalog) -> None:
    assert {k for k in loaded.keys("en") if k.startswith("words.")} == {
        "words.back", "words.skip", "words.done", "words.next", "words.prev"}


def test_a_word_means_one_control(loaded: Catalog) -> None:
    meaning: dict[str, set[str]] = {}
    for language in loaded.languages:
        for key in (k for k in loaded.keys(language) if k.startswith("words.")):
            for word in loaded.raw(language, key).split("|"):
                meaning.setdefault(word.strip().casefold(), set()).add(key)
    assert {w: keys for w, keys in meaning.items() if len(keys) > 1} == {}


# --- keys used in code ----------------------------------------------------------------------


def test_the_code_scan_finds_keys() -> None:
    keys = literal_keys()
    assert {"menu.title", "household.consent", "invalid.nik.length", "words.skip"} <= keys
    assert set(key_prefixes()) >= {"status.", "reask.", "menu."}


def test_every_literal_key_exists(loaded: Catalog) -> None:
    missing = sorted(key for key in literal_keys() if not loaded.has(key))
    assert missing == []


def template_keys() -> set[str]:
    return {key for path in TEMPLATES_DIR.glob("*.html")
            for key in TEMPLATE_KEY.findall(path.read_text())}


def test_every_key_a_template_uses_exists(loaded: Catalog) -> None:
    keys = template_keys()
    assert "web.skip_to_content" in keys
    assert sorted(key for key in keys if not loaded.has(key)) == []


def test_every_key_built_at_run_time_is_known() -> None:
    # A new f"prefix.{x}" key needs its expansions listed in DYNAMIC.
    unknown = {prefix: where for prefix, where in key_prefixes().items()
               if prefix not in DYNAMIC}
    assert unknown == {}


@pytest.mark.parametrize("key", DYNAMIC_KEYS)
def test_every_expansion_of_a_built_key_exists(loaded: Catalog, key: str) -> None:
    assert loaded.has(key)


def test_every_key_is_used(loaded: Catalog) -> None:
    used = literal_keys() | set(DYNAMIC_KEYS) | template_keys()
    # Keys without a dot are used as literals too ("welcome").
    used |= {node.value for _, tree in handler_sources() for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert sorted(set(loaded.keys("en")) - used) == []


def test_literal_keys_get_the_parameters_they_need(loaded: Catalog) -> None:
    """t("key", a=...), text(lang, "key", a=...) and Invalid("key", {"a": ...}) pass every
    placeholder of the key (a strict catalog raises on a missing one)."""
    problems = []
    checked = 0
    for path, tree in handler_sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node.func, ast.Name) else ""
            position = {"t": 0, "text": 1, "Invalid": 0}.get(name)
            if position is None or len(node.args) <= position:
                continue
            key_node = node.args[position]
            if not (isinstance(key_node, ast.Constant) and isinstance(key_node.value, str)
                    and loaded.has(key_node.value)):
                continue
            if any(k.arg is None for k in node.keywords):
                continue  # **params: not known here
            given = {k.arg for k in node.keywords if k.arg}
            rest = node.args[position + 1:]
            if name == "Invalid" and rest:
                if not isinstance(rest[0], ast.Dict):
                    continue  # parameters passed on from elsewhere
                given |= {str(k.value) for k in rest[0].keys if isinstance(k, ast.Constant)}
            needed = placeholders(loaded.raw("en", key_node.value))
            checked += 1
            if needed - given:
                problems.append((f"{path.name}:{node.lineno}", key_node.value,
                                 sorted(needed - given)))
    assert problems == []
    assert checked > 50


# --- the Catalog --------------------------------------------------------------------------


def test_strict_catalog_raises_on_a_missing_key(loaded: Catalog) -> None:
    with pytest.raises(MissingMessage, match=r"no\.such_key"):
        loaded.text("en", "no.such_key")
    with pytest.raises(MissingMessage):
        loaded.text("fr", "welcome")
    assert issubclass(MissingMessage, KeyError)


def test_strict_catalog_raises_on_a_missing_parameter(loaded: Catalog) -> None:
    with pytest.raises(KeyError):
        loaded.text("en", "input.too_long")


def test_text_formats_placeholders(loaded: Catalog) -> None:
    for language in loaded.languages:
        text = loaded.text(language, "status.request", reference="GT-ABCDE", status="@@")
        assert "GT-ABCDE" in text and "@@" in text
        assert "{" not in text
        assert "1234" in loaded.text(language, "input.too_long", max=1234)


def test_text_without_placeholders_ignores_extra_parameters(loaded: Catalog) -> None:
    assert loaded.text("en", "menu.title", unused=1) == loaded.raw("en", "menu.title")


def test_has(loaded: Catalog) -> None:
    assert loaded.has("welcome")
    assert not loaded.has("no.such_key")
    partial = Catalog({"en": {"a.b": "A"}, "id": {}})
    assert not partial.has("a.b")


def test_languages_and_keys() -> None:
    catalog = Catalog({"id": {"x": "Xi"}, "en": {"x": "Xe", "y": "Ye"}})
    assert catalog.languages == ("en", "id")
    assert set(catalog.keys("en")) == {"x", "y"}
    assert catalog.raw("id", "x") == "Xi"


def test_lenient_catalog_falls_back_to_english_then_to_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    catalog = Catalog({"en": {"greet": "Hello {name}", "empty": "Nothing"},
                       "id": {"greet": "", "empty": ""}})
    with caplog.at_level(logging.ERROR, logger="gotong.handlers.catalog"):
        assert catalog.text("id", "greet", name="Siti") == "Hello Siti"
        assert catalog.text("id", "empty") == "Nothing"
        assert catalog.text("fr", "greet", name="Siti") == "Hello Siti"
        assert catalog.text("id", "no.such_key") == "no.such_key"
        assert catalog.text("en", "no.such_key", name="x") == "no.such_key"
    assert "missing message" in caplog.text
    assert "Siti" not in caplog.text  # parameters may be personal data


def test_lenient_catalog_keeps_a_text_with_bad_placeholders(
    caplog: pytest.LogCaptureFixture,
) -> None:
    catalog = Catalog({"en": {"greet": "Hello {name}", "broken": "Hello {"}})
    with caplog.at_level(logging.ERROR, logger="gotong.handlers.catalog"):
        assert catalog.text("en", "greet") == "Hello {name}"
        assert catalog.text("en", "broken", name="x") == "Hello {"
    assert "bad placeholders" in caplog.text
    strict = Catalog({"en": {"greet": "Hello {name}"}}, strict=True)
    with pytest.raises(KeyError):
        strict.text("en", "greet")


def test_load_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "en.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "a.b"\nmsgstr "Hello {who}"\n\n'
        'msgid "long"\nmsgstr ""\n"one "\n"two"\n'
    )
    (tmp_path / "id.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "a.b"\nmsgstr "Halo {who}"\n'
    )
    (tmp_path / "notes.txt").write_text("not a catalog")
    catalog = Catalog.load(tmp_path)
    assert catalog.languages == ("en", "id")
    assert set(catalog.keys("en")) == {"a.b", "long"}  # not the header entry
    assert catalog.text("id", "a.b", who="Budi") == "Halo Budi"
    assert catalog.raw("en", "long") == "one two"
    assert Catalog.load(tmp_path, strict=True).text("en", "a.b", who="Ani") == "Hello Ani"


def test_placeholders() -> None:
    assert placeholders("Hello {name}, {count} left") == {"name", "count"}
    assert placeholders("no fields") == set()
    assert placeholders("{{literal}} braces and {real}") == {"real"}
    assert placeholders("{max:d} {max}") == {"max"}
