"""Loading the configuration: the TOML file, GOTONG_<SECTION>__<KEY> overrides, validation."""

from __future__ import annotations

import dataclasses
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


def load(directory: Path, text: str | None = None, **env: str) -> Config:
    """Load `text` as the config file (none when None), with the NIK secret in the
    environment unless the caller gives one."""
    path = write(directory, text) if text is not None else None
    return load_config(path, {KEY_ENV: KEY, **env})


@pytest.fixture(autouse=True)
def in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./config.toml and no GOTONG_* variables of the real environment."""
    monkeypatch.chdir(tmp_path)
    import os

    for name in list(os.environ):
        if name.startswith("GOTONG_"):
            monkeypatch.delenv(name)


# --- defaults and the file --------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path) -> None:
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


def test_default_config_without_a_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"privacy\.nik_hash_key"):
        load_config(None, {})


def test_values_from_the_file(tmp_path: Path) -> None:
    config = load(tmp_path, f"""
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
""", **{KEY_ENV: ""} | {})
    # The file's secret counts when the environment does not set one: see below.
    assert config.database.url == "postgresql+asyncpg://gotong@db/gotong"
    assert config.database.echo is True
    assert config.telegram == TelegramConfig(
        token=TOKEN, mode="webhook", webhook_url="https://bot.example.org/telegram",
        webhook_secret="s3cret_-value", max_concurrent_chats=8,
    )
    assert config.web == WebConfig(host="0.0.0.0", port=9000)
    assert config.i18n.default_language == "en"
    assert config.i18n.timezone == "Asia/Makassar"
    assert config.areas.provinces == ("DKI Jakarta", "DI Yogyakarta")
    assert config.dialogs.resume_after_minutes == 30
    assert config.dialogs.max_invalid_attempts == 5
    assert config.dialogs.max_text_length == 500
    assert config.dialogs.page_size == 10
    assert config.requests.duplicate_window_days == 0
    assert config.logging.level == "debug"
