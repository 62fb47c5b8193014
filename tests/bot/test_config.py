"""Loading the configuration: the TOML file, GOTONG_<SECTION>__<KEY> overrides, validation."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from gotong.bot.config import (
    Config,
    ConfigError,
    PrivacyConfig,
    TelegramConfig,
    WebConfig,
    load_config,
)

KEY = "k" * 40
KEY_ENV = "GOTONG_PRIVACY__NIK_HASH_KEY"
TOKEN = "123456:ABC-def_ghi"


def write(directory: Path, text: str, name: str = "config.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load(directory: Path, text: str, **env: str) -> Config:
    """Load `text` as the config file, with the NIK secret in the environment unless
    the caller's environment sets it."""
    return load_config(write(directory, text, "settings.toml"), {KEY_ENV: KEY, **env})


@pytest.fixture(autouse=True)
def in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./config.toml and no GOTONG_* variables from the real environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("GOTONG_"):
            monkeypatch.delenv(name)


# --- defaults and the file --------------------------------------------------------------


def test_defaults_without_a_file() -> None:
    config = load_config(None, {KEY_ENV: KEY})
    assert config == Config(privacy=PrivacyConfig(nik_hash_key=KEY))
    assert config.database.url == "sqlite+aiosqlite:///data/gotong.sqlite3"
    assert config.database.echo is False
    assert config.telegram.token == ""
    assert config.telegram.mode == "polling"
    assert config.web == WebConfig(host="127.0.0.1", port=8080)
    assert config.i18n.default_language == "id"
    assert config.i18n.timezone == "Asia/Jakarta"
    assert config.areas.provinces == ("DKI Jakarta",)
    assert config.dialogs.page_size == 8
    assert config.requests.duplicate_window_days == 90
    assert config.logging.level == "INFO"
    assert config.nik_key == KEY.encode()


def test_defaults_alone_are_refused_for_want_of_a_secret() -> None:
    with pytest.raises(ConfigError, match=r"privacy\.nik_hash_key"):
        load_config(None, {})


FULL_FILE = f"""
[database]
url = "postgresql+asyncpg://gotong@db/gotong"
echo = true

[telegram]
token = "{TOKEN}"
mode = "webhook"
webhook_url = "https://bot.example.org/telegram"
webhook_secret = "s3cret_-value"
max_concurrent_chats = 8

[web]
host = "0.0.0.0"
port = 9000

[i18n]
default_language = "en"
timezone = "Asia/Makassar"

[privacy]
nik_hash_key = "{"f" * 32}"

[areas]
provinces = ["DKI Jakarta", "DI Yogyakarta"]

[dialogs]
resume_after_minutes = 30
max_invalid_attempts = 5
max_text_length = 500
page_size = 10

[requests]
duplicate_window_days = 0

[logging]
level = "debug"
"""


def test_values_from_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_FILE), {})
    assert config.database.url == "postgresql+asyncpg://gotong@db/gotong"
    assert config.database.echo is True
    assert config.telegram == TelegramConfig(
        token=TOKEN, mode="webhook", webhook_url="https://bot.example.org/telegram",
        webhook_secret="s3cret_-value", max_concurrent_chats=8,
    )
    assert config.web == WebConfig(host="0.0.0.0", port=9000)
    assert config.i18n.default_language == "en"
    assert config.i18n.timezone == "Asia/Makassar"
    assert config.privacy.nik_hash_key == "f" * 32
    assert config.areas.provinces == ("DKI Jakarta", "DI Yogyakarta")
    assert config.dialogs.resume_after_minutes == 30
    assert config.dialogs.max_invalid_attempts == 5
    assert config.dialogs.max_text_length == 500
    assert config.dialogs.page_size == 10
    assert config.requests.duplicate_window_days == 0
    assert config.logging.level == "debug"


def test_keys_missing_from_the_file_keep_their_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "[web]\nport = 9000\n")
    assert config.web == WebConfig(host="127.0.0.1", port=9000)
    assert config.telegram == TelegramConfig()
    assert config.dialogs == Config().dialogs


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "") == Config(privacy=PrivacyConfig(nik_hash_key=KEY))


def test_config_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, "[web]\nport = 9001\n")
    assert load_config(None, {KEY_ENV: KEY}).web.port == 9001


def test_gotong_config_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "[web]\nport = 9001\n")  # ./config.toml, not the one named
    named = write(tmp_path, "[web]\nport = 9002\n", "elsewhere.toml")
    config = load_config(None, {"GOTONG_CONFIG": str(named), KEY_ENV: KEY})
    assert config.web.port == 9002


def test_gotong_config_is_read_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = write(tmp_path, f'[web]\nport = 9003\n[privacy]\nnik_hash_key = "{KEY}"\n',
                  "elsewhere.toml")
    monkeypatch.setenv("GOTONG_CONFIG", str(named))
    monkeypatch.setenv("GOTONG_WEB__HOST", "0.0.0.0")
    config = load_config()
    assert config.web == WebConfig(host="0.0.0.0", port=9003)


def test_an_explicit_path_beats_gotong_config(tmp_path: Path) -> None:
    named = write(tmp_path, "[web]\nport = 9002\n", "named.toml")
    given = write(tmp_path, "[web]\nport = 9004\n", "given.toml")
    config = load_config(given, {"GOTONG_CONFIG": str(named), KEY_ENV: KEY})
    assert config.web.port == 9004


# --- environment overrides ----------------------------------------------------------------


def test_environment_beats_the_file_for_strings(tmp_path: Path) -> None:
    config = load(tmp_path, f'[telegram]\ntoken = "{TOKEN}"\n[i18n]\ntimezone = "Asia/Jayapura"\n',
                  GOTONG_TELEGRAM__TOKEN="987:XYZ", GOTONG_DATABASE__URL="sqlite+aiosqlite:///x.db")
    assert config.telegram.token == "987:XYZ"
    assert config.database.url == "sqlite+aiosqlite:///x.db"
    assert config.i18n.timezone == "Asia/Jayapura"  # not overridden


def test_environment_can_empty_a_string(tmp_path: Path) -> None:
    config = load(tmp_path, f'[telegram]\ntoken = "{TOKEN}"\n', GOTONG_TELEGRAM__TOKEN="")
    assert config.telegram.token == ""


def test_environment_beats_the_file_for_the_secret(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f'[privacy]\nnik_hash_key = "{"f" * 32}"\n'),
                         {KEY_ENV: KEY})
    assert config.privacy.nik_hash_key == KEY


def test_environment_beats_the_file_for_integers(tmp_path: Path) -> None:
    config = load(tmp_path, "[web]\nport = 9000\n[dialogs]\npage_size = 5\n",
                  GOTONG_WEB__PORT="9100", GOTONG_DIALOGS__PAGE_SIZE=" 12 ")
    assert config.web.port == 9100
    assert config.dialogs.page_size == 12
    assert isinstance(config.web.port, int)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("off", False)],
)
def test_environment_booleans(tmp_path: Path, value: str, expected: bool) -> None:
    config = load(tmp_path, f"[database]\necho = {str(not expected).lower()}\n",
                  GOTONG_DATABASE__ECHO=value)
    assert config.database.echo is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DI Yogyakarta", ("DI Yogyakarta",)),
        ("DKI Jakarta,DI Yogyakarta", ("DKI Jakarta", "DI Yogyakarta")),
        (" DKI Jakarta , DI Yogyakarta ,, ", ("DKI Jakarta", "DI Yogyakarta")),
    ],
)
def test_environment_comma_list_of_provinces(
    tmp_path: Path, value: str, expected: tuple[str, ...]
) -> None:
    config = load(tmp_path, '[areas]\nprovinces = ["Bali"]\n', GOTONG_AREAS__PROVINCES=value)
    assert config.areas.provinces == expected


def test_environment_alone_without_a_file() -> None:
    config = load_config(None, {KEY_ENV: KEY, "GOTONG_I18N__DEFAULT_LANGUAGE": "en",
                                "GOTONG_LOGGING__LEVEL": "warning"})
    assert config.i18n.default_language == "en"
    assert config.logging.level == "warning"


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    config = load(tmp_path, "", GOTONG_TEST_DATABASE_URL="postgresql://elsewhere",
                  OTHER_WEB__PORT="1", GOTONGWEB__PORT="2", PATH="/usr/bin")
    assert config == Config(privacy=PrivacyConfig(nik_hash_key=KEY))


# --- invalid values -------------------------------------------------------------------------

WEBHOOK = f'[telegram]\ntoken = "{TOKEN}"\nmode = "webhook"\n'
HTTPS_HOOK = 'webhook_url = "https://bot.example.org/hook"\n'

WHATSAPP = ('[whatsapp]\nphone_number_id = "1234567890"\naccess_token = "EAAtoken"\n'
            'app_secret = "s"\nverify_token = "v"\n')

INVALID: list[tuple[str, str, dict[str, str], str]] = [
    # (case id, file text, environment, what the message must name)
    ("database url scheme", '[database]\nurl = "mysql://db/gotong"\n', {}, "database.url"),
    ("sync sqlite driver", "", {"GOTONG_DATABASE__URL": "sqlite:///gotong.db"}, "database.url"),
    ("sync postgres driver", '[database]\nurl = "postgresql://db/gotong"\n', {},
     "database.url"),
    ("database echo not a bool", '[database]\necho = "maybe"\n', {}, "database.echo"),
    ("database echo env not a bool", "", {"GOTONG_DATABASE__ECHO": "perhaps"},
     "database.echo"),
    ("telegram mode", '[telegram]\nmode = "push"\n', {}, "telegram.mode"),
    ("telegram mode case", "", {"GOTONG_TELEGRAM__MODE": "Webhook"}, "telegram.mode"),
    ("malformed token", '[telegram]\ntoken = "not-a-token"\n', {}, "telegram.token"),
    ("token without id", "", {"GOTONG_TELEGRAM__TOKEN": ":ABC"}, "telegram.token"),
    ("token with spaces", "", {"GOTONG_TELEGRAM__TOKEN": "123: ABC"}, "telegram.token"),
    ("token not a string", "[telegram]\ntoken = 123456\n", {}, "telegram.token"),
    ("webhook without url", WEBHOOK + 'webhook_secret = "abc"\n', {}, "telegram.webhook_url"),
    ("webhook over http", WEBHOOK + 'webhook_url = "http://bot.example.org/hook"\n'
     'webhook_secret = "abc"\n', {}, "telegram.webhook_url"),
    ("webhook without secret", WEBHOOK + HTTPS_HOOK, {}, "telegram.webhook_secret"),
    ("webhook secret characters", WEBHOOK + HTTPS_HOOK + 'webhook_secret = "no spaces!"\n',
     {}, "telegram.webhook_secret"),
    ("webhook secret too long", WEBHOOK + HTTPS_HOOK + f'webhook_secret = "{"a" * 257}"\n',
     {}, "telegram.webhook_secret"),
    ("api base url", '[telegram]\napi_base_url = "ftp://api.example.org"\n', {},
     "telegram.api_base_url"),
    ("no concurrent chats", "[telegram]\nmax_concurrent_chats = 0\n", {},
     "telegram.max_concurrent_chats"),
    ("default language", '[i18n]\ndefault_language = "fr"\n', {}, "i18n.default_language"),
    ("timezone", '[i18n]\ntimezone = "Asia/Atlantis"\n', {}, "i18n.timezone"),
    ("empty timezone", "", {"GOTONG_I18N__TIMEZONE": ""}, "i18n.timezone"),
    ("short nik key", "", {KEY_ENV: "k" * 31}, "privacy.nik_hash_key"),
    ("empty nik key", f'[privacy]\nnik_hash_key = "{KEY}"\n', {KEY_ENV: ""},
     "privacy.nik_hash_key"),
    ("port not an integer", '[web]\nport = "eighty"\n', {}, "web.port"),
    ("port env not an integer", "", {"GOTONG_WEB__PORT": "80a"}, "web.port"),
    ("port zero", "[web]\nport = 0\n", {}, "web.port"),
    ("port too high", "", {"GOTONG_WEB__PORT": "65536"}, "web.port"),
    ("port negative", "[web]\nport = -1\n", {}, "web.port"),
    ("page size too small", "[dialogs]\npage_size = 2\n", {}, "dialogs.page_size"),
    ("page size too big", "", {"GOTONG_DIALOGS__PAGE_SIZE": "21"}, "dialogs.page_size"),
    ("page size not an integer", '[dialogs]\npage_size = "many"\n', {}, "dialogs.page_size"),
    ("resume after", "[dialogs]\nresume_after_minutes = 0\n", {},
     "dialogs.resume_after_minutes"),
    ("invalid attempts", "[dialogs]\nmax_invalid_attempts = 0\n", {},
     "dialogs.max_invalid_attempts"),
    ("text length too small", "[dialogs]\nmax_text_length = 49\n", {},
     "dialogs.max_text_length"),
    ("text length too big", "[dialogs]\nmax_text_length = 4001\n", {},
     "dialogs.max_text_length"),
    ("duplicate window", "[requests]\nduplicate_window_days = -1\n", {},
     "requests.duplicate_window_days"),
    ("logging level", '[logging]\nlevel = "LOUD"\n', {}, "logging.level"),
    ("no provinces", "[areas]\nprovinces = []\n", {}, "areas.provinces"),
    ("no provinces in env", "", {"GOTONG_AREAS__PROVINCES": " , "}, "areas.provinces"),
    ("provinces not strings", "[areas]\nprovinces = [31]\n", {}, "areas.provinces"),
    ("unknown section", "[bogus]\nkey = 1\n", {}, "bogus"),
    ("unknown section in env", "", {"GOTONG_BOGUS__KEY": "1"}, "bogus"),
    ("unknown key", '[telegram]\ntokn = "x"\n', {}, "telegram.tokn"),
    ("unknown key in env", "", {"GOTONG_WEB__PORTS": "80"}, "web.ports"),
    ("section not a table", "web = 8080\n", {}, "web"),
    ("section not a table with env", "web = 8080\n", {"GOTONG_WEB__PORT": "80"}, "web"),
    ("port a float", "[web]\nport = 8080.9\n", {}, "web.port"),
    ("port a boolean", "[web]\nport = true\n", {}, "web.port"),
    ("page size a float", "[dialogs]\npage_size = 5.5\n", {}, "dialogs.page_size"),
    ("unknown province", '[areas]\nprovinces = ["Atlantis"]\n', {}, "areas.provinces"),
    ("rate zero", "[telegram]\nmessages_per_second = 0\n", {}, "telegram.messages_per_second"),
    ("rate not a number", "", {"GOTONG_TELEGRAM__CHAT_MESSAGES_PER_SECOND": "fast"},
     "telegram.chat_messages_per_second"),
    ("rate a boolean", "[telegram]\ngroup_messages_per_minute = true\n", {},
     "telegram.group_messages_per_minute"),
    ("rate infinite", "", {"GOTONG_TELEGRAM__MESSAGES_PER_SECOND": "inf"},
     "telegram.messages_per_second"),
    ("no attempts", "[notifications]\nmax_attempts = 0\n", {}, "notifications.max_attempts"),
    ("negative lease", "", {"GOTONG_NOTIFICATIONS__LEASE_SECONDS": "-1"},
     "notifications.lease_seconds"),
    ("nan poll", "", {"GOTONG_NOTIFICATIONS__POLL_SECONDS": "nan"},
     "notifications.poll_seconds"),
    ("retry max below base", "[notifications]\nretry_base_seconds = 10\nretry_max_seconds = 5\n",
     {}, "notifications.retry_max_seconds"),
    ("reminder never", "[notifications]\nreminder_after_hours = 0\n", {},
     "notifications.reminder_after_hours"),
    ("keep no days", "", {"GOTONG_NOTIFICATIONS__KEEP_DAYS": "0"}, "notifications.keep_days"),
    ("keep no updates", "[inbound]\nkeep_days = 0\n", {}, "inbound.keep_days"),
    ("digest never", "[notifications]\ndigest_minutes = 0\n", {},
     "notifications.digest_minutes"),
    ("negative cool-down", "[aid]\ncooldown_days = -1\n", {}, "aid.cooldown_days"),
    ("no households proposed", "", {"GOTONG_AID__ALLOCATION_SIZE": "0"},
     "aid.allocation_size"),
    ("too many proposed", "[aid]\nallocation_size = 51\n", {}, "aid.allocation_size"),
    ("no failure allowed", "[aid]\nmax_delivery_failures = 0\n", {},
     "aid.max_delivery_failures"),
    ("no task at a time", "[volunteer]\nmax_open_tasks = 0\n", {},
     "volunteer.max_open_tasks"),
    ("suppress nothing below zero", "", {"GOTONG_PUBLIC__MIN_COUNT": "0"},
     "public.min_count"),
    ("linked delivery", "[notifications]\nlinked_delivery = \"sms\"\n", {},
     "notifications.linked_delivery"),
    ("whatsapp number id", '[whatsapp]\nphone_number_id = "+62 812"\n', {},
     "whatsapp.phone_number_id"),
    ("whatsapp without token", WHATSAPP.replace('access_token = "EAAtoken"\n', ""), {},
     "whatsapp.access_token"),
    ("whatsapp without app secret", WHATSAPP, {"GOTONG_WHATSAPP__APP_SECRET": ""},
     "whatsapp.app_secret"),
    ("whatsapp without verify token", WHATSAPP.replace('verify_token = "v"\n', ""), {},
     "whatsapp.verify_token"),
    ("whatsapp api url", WHATSAPP + 'api_base_url = "graph.facebook.com"\n', {},
     "whatsapp.api_base_url"),
    ("whatsapp api version", WHATSAPP + 'api_version = "21"\n', {}, "whatsapp.api_version"),
    ("whatsapp webhook path", WHATSAPP + 'webhook_path = "whatsapp"\n', {},
     "whatsapp.webhook_path"),
    ("whatsapp rate zero", WHATSAPP + "messages_per_second = 0\n", {},
     "whatsapp.messages_per_second"),
    ("whatsapp fallback template", WHATSAPP + 'fallback_template = "Gotong Update"\n', {},
     "whatsapp.fallback_template"),
    ("whatsapp template pair", WHATSAPP + 'templates = ["gotong_verified"]\n', {},
     "whatsapp.templates"),
    ("whatsapp template key", "", {"GOTONG_WHATSAPP__PHONE_NUMBER_ID": "123",
                                   "GOTONG_WHATSAPP__ACCESS_TOKEN": "t",
                                   "GOTONG_WHATSAPP__APP_SECRET": "s",
                                   "GOTONG_WHATSAPP__VERIFY_TOKEN": "v",
                                   "GOTONG_WHATSAPP__TEMPLATES": "request_verified=x"},
     "whatsapp.templates"),
]


@pytest.mark.parametrize(("text", "env", "key"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_value_names_the_key(
    tmp_path: Path, text: str, env: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text, **env)
    assert key in str(raised.value)


def test_numbers_of_the_notification_settings(tmp_path: Path) -> None:
    config = load(tmp_path, "[telegram]\nmessages_per_second = 25\n",
                  GOTONG_NOTIFICATIONS__LEASE_SECONDS="2.5")
    assert config.telegram.messages_per_second == 25.0
    assert config.notifications.lease_seconds == 2.5
    assert config.notifications.reminder_after_hours == 24.0


def test_valid_webhook_settings(tmp_path: Path) -> None:
    config = load(tmp_path, WEBHOOK + HTTPS_HOOK + f'webhook_secret = "{"aZ0_-" * 51}"\n')
    assert config.telegram.mode == "webhook"
    assert len(config.telegram.webhook_secret) == 255


def test_whatsapp_settings(tmp_path: Path) -> None:
    config = load(tmp_path, WHATSAPP + 'templates = ["notice.request_verified = gotong_ok"]\n',
                  GOTONG_WHATSAPP__MESSAGES_PER_SECOND="40")
    assert config.whatsapp.enabled and config.whatsapp.messages_per_second == 40.0
    assert config.whatsapp.templates == ("notice.request_verified = gotong_ok",)
    # Without a number, WhatsApp is off and nothing else of it is checked.
    assert not load(tmp_path, '[whatsapp]\napi_version = "x"\n').whatsapp.enabled


def test_webhook_settings_are_not_needed_without_a_token(tmp_path: Path) -> None:
    # Without a token Gotong runs as a console chat, so no webhook is set up.
    config = load(tmp_path, '[telegram]\nmode = "webhook"\n')
    assert config.telegram.mode == "webhook"


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[web\nport = 1\n", "broken.toml")
    with pytest.raises(ConfigError, match="not valid TOML") as raised:
        load_config(path, {KEY_ENV: KEY})
    assert str(path) in str(raised.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="does not exist") as raised:
        load_config(path, {KEY_ENV: KEY})
    assert str(path) in str(raised.value)


def test_directory_instead_of_a_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, {KEY_ENV: KEY})
    assert str(tmp_path) in str(raised.value)


def test_missing_file_named_by_gotong_config(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(None, {"GOTONG_CONFIG": str(path), KEY_ENV: KEY})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- the result is frozen -------------------------------------------------------------------


def test_config_is_frozen() -> None:
    config = load_config(None, {KEY_ENV: KEY})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.web = WebConfig(port=1)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.web.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.privacy.nik_hash_key = ""  # type: ignore[misc]
    assert isinstance(config.areas.provinces, tuple)
    assert hash(config) == hash(load_config(None, {KEY_ENV: KEY}))
