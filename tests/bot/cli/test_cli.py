"""The `gotong` console script, run as people run it: in a subprocess, in a directory of
its own, with the configuration in config.toml or the environment."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from gotong.bot.config import load_config
from gotong.handlers.catalog import Catalog
from gotong.models.migrate import alembic_config

GOTONG = Path(sys.executable).parent / "gotong"
KEY = "cli-test-key-" + "k" * 32
TIMEOUT = 60  # seconds; each run takes one or two


def gotong(*args: str, cwd: Path, env: dict[str, str] | None = None,
           stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the console script with only the GOTONG_* variables given."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOTONG_")}
    # Tests run side by side: no process of theirs takes the metrics' fixed port.
    environ.update({"GOTONG_METRICS__PORT": "0", **(env or {})})
    return subprocess.run(
        [str(GOTONG), *args], cwd=cwd, env=environ, input=stdin, capture_output=True,
        text=True, timeout=TIMEOUT, check=False,
    )


def with_key(**env: str) -> dict[str, str]:
    return {"GOTONG_PRIVACY__NIK_HASH_KEY": KEY, **env}


def test_console_script_is_installed() -> None:
    assert GOTONG.exists(), GOTONG


# --- gotong init --------------------------------------------------------------------------


def written_config(directory: Path) -> dict[str, dict[str, str]]:
    return tomllib.loads((directory / "config.toml").read_text())


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two directories where `gotong init` ran."""
    directories = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    for directory in directories:
        result = gotong("init", cwd=directory)
        assert result.returncode == 0, result.stderr
        assert "config.toml" in result.stdout
    return directories


def test_init_writes_fresh_secrets(initialised: tuple[Path, Path]) -> None:
    one, other = (written_config(d) for d in initialised)
    for config in (one, other):
        assert len(config["privacy"]["nik_hash_key"]) >= 32
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", config["telegram"]["webhook_secret"])
        assert config["telegram"]["token"] == ""
    assert one["privacy"]["nik_hash_key"] != other["privacy"]["nik_hash_key"]
    assert one["telegram"]["webhook_secret"] != other["telegram"]["webhook_secret"]
    assert one["privacy"]["nik_hash_key"] != one["telegram"]["webhook_secret"]


def test_init_writes_a_config_that_loads(initialised: tuple[Path, Path]) -> None:
    directory = initialised[0]
    config = load_config(directory / "config.toml", {})
    assert config.privacy.nik_hash_key == written_config(directory)["privacy"]["nik_hash_key"]
    assert config.telegram.token == ""


def test_init_leaves_an_existing_file_alone(initialised: tuple[Path, Path]) -> None:
    directory = initialised[1]
    before = (directory / "config.toml").read_text()
    result = gotong("init", cwd=directory)
    assert result.returncode == 0
    assert "exists" in result.stdout
    assert (directory / "config.toml").read_text() == before


def test_init_to_another_path(tmp_path: Path) -> None:
    result = gotong("init", "--path", "other.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "other.toml").exists()
    assert not (tmp_path / "config.toml").exists()


# --- gotong db upgrade --------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_loads_jakarta(tmp_path: Path) -> None:
    path = tmp_path / "db" / "gotong.sqlite3"
    env = with_key(GOTONG_DATABASE__URL=f"sqlite+aiosqlite:///{path}")
    result = gotong("db", "upgrade", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout

    def check() -> None:
        with sqlite3.connect(path) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master "
                                               "WHERE type = 'table'")}
            assert {"alembic_version", "area", "contact", "conversation", "help_request",
                    "request_event", "inbound_update"} <= tables
            levels = dict(db.execute("SELECT level, count(*) FROM area GROUP BY level").fetchall())
            assert levels == {"province": 1, "regency": 6, "district": 44, "village": 267}
            assert db.execute("SELECT name FROM area WHERE code = '12930'").fetchall() == [
                ("Karet Semanggi",)]
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
        db.close()

    check()
    # A second run (every deploy runs it) changes nothing.
    again = gotong("db", "upgrade", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    check()


# --- gotong run / chat --------------------------------------------------------------------


def test_run_without_a_chat_app_or_playground_chats_in_the_terminal(
        tmp_path: Path, catalog: Catalog) -> None:
    # "1" chooses "Request help" in the menu, "2" declines the consent question; then EOF.
    result = gotong("run", cwd=tmp_path, env=with_key(GOTONG_WEB__PLAYGROUND="off"),
                    stdin="1\n2\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "No Telegram token or WhatsApp number is configured" in out
    assert "telegram.token" in out
    assert "GOTONG_TELEGRAM__TOKEN" in out
    assert catalog.text("id", "welcome") in out
    assert catalog.text("id", "menu.title") in out
    for number, item in enumerate(("request", "donate", "volunteer", "status"), start=1):
        assert f"{number}. {catalog.text('id', f'menu.{item}')}" in out
    assert catalog.text("id", "household.consent") in out
    assert f"1. {catalog.text('id', 'household.consent_yes')}" in out
    assert catalog.text("id", "household.consent_declined") in out
    # In that order: explanation, welcome, consent question, the answer to "no".
    positions = [out.index(catalog.text("id", key)) for key in
                 ("welcome", "household.consent", "household.consent_declined")]
    assert out.index("No Telegram token") < positions[0]
    assert positions == sorted(positions)
    # SQLite, the default, is created and migrated on start.
    assert (tmp_path / "data" / "gotong.sqlite3").exists()


def test_chat_in_english(tmp_path: Path, catalog: Catalog) -> None:
    result = gotong("chat", "--language", "en", cwd=tmp_path, env=with_key(), stdin="4\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "No Telegram token" not in out
    assert catalog.text("en", "welcome") in out
    assert f"1. {catalog.text('en', 'menu.request')}" in out
    assert catalog.text("en", "status.none") in out
    assert catalog.text("id", "welcome") not in out
    assert catalog.text("id", "menu.title") not in out


@pytest.mark.parametrize(
    ("env", "file", "key"),
    [
        ({"GOTONG_WEB__PORT": "eighty"}, None, "web.port"),
        ({}, '[telegram]\nmode = "push"\n', "telegram.mode"),
    ],
    ids=["env", "file"],
)
def test_a_bad_value_exits_with_2_naming_the_key(
    tmp_path: Path, env: dict[str, str], file: str | None, key: str
) -> None:
    if file is not None:
        (tmp_path / "config.toml").write_text(file)
    result = gotong("run", cwd=tmp_path, env=with_key(**env))
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()


def test_missing_secret_points_to_gotong_init(tmp_path: Path) -> None:
    result = gotong("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 2
    assert "privacy.nik_hash_key" in result.stderr
    assert "gotong init" in result.stderr


def test_config_option_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "custom.toml").write_text('[web]\nport = "eighty"\n')
    result = gotong("--config", "custom.toml", "run", cwd=tmp_path, env=with_key())
    assert result.returncode == 2
    assert "web.port" in result.stderr
    missing = gotong("--config", "absent.toml", "run", cwd=tmp_path, env=with_key())
    assert missing.returncode == 2
    assert "absent.toml" in missing.stderr


# --- gotong broadcast / outbox ------------------------------------------------------------


def test_operator_commands_for_notifications(tmp_path: Path) -> None:
    path = tmp_path / "gotong.sqlite3"
    env = with_key(GOTONG_DATABASE__URL=f"sqlite+aiosqlite:///{path}")
    assert gotong("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO contact (id, channel, chat_id, language, created_at) "
                   "VALUES (1, 'telegram', '42', 'id', '2026-11-01 10:00:00')")
        db.execute("INSERT INTO outbox_message (contact_id, priority, essential, message_key, "
                   "params, actions, status, attempts, parts_sent, next_attempt_at, "
                   "created_at, last_error) VALUES (1, 1, 1, 'notice.request_cancelled', "
                   "'{}', '[]', 'failed', 8, 0, '2026-11-01 10:00:00', "
                   "'2026-11-01 10:00:00', 'network or server error: Bad Gateway')")
        # News whose subject moved on before it went out, and a person who blocked the bot.
        for reason in ("outdated", "outdated", "unreachable"):
            db.execute("INSERT INTO outbox_message (contact_id, priority, essential, "
                       "message_key, params, actions, status, attempts, parts_sent, "
                       "next_attempt_at, created_at, last_error) VALUES (1, 1, 1, "
                       "'notice.tasks_open', '{}', '[]', 'skipped', 0, 0, "
                       f"'2026-11-01 10:00:00', '2026-11-01 10:00:00', '{reason}')")
        # An update that kept failing (a bug), set aside, and one still waiting.
        db.execute("INSERT INTO inbound_update (channel, external_id, chat_id, received_at, "
                   "payload, attempts, last_error, set_aside_at) VALUES ('telegram', '7', "
                   "'42', '2026-11-01 10:00:00', '{}', 5, 'KeyError', "
                   "'2026-11-01 10:01:00')")
        db.execute("INSERT INTO inbound_update (channel, external_id, chat_id, received_at, "
                   "payload) VALUES ('telegram', '8', '42', '2026-11-01 10:02:00', '{}')")
    db.close()
    message = tmp_path / "message.txt"
    message.write_text("Posko buka besok.\n", encoding="utf-8")
    dry = gotong("broadcast", "--message-file", str(message), "--kota", "Jakarta Barat",
                 "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("0 recipients (kota: Jakarta Barat;")
    unknown = gotong("broadcast", "--message-file", str(message), "--role", "donor",
                     "--kota", "Atlantis", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert "no kota/kabupaten called 'Atlantis'" in unknown.stderr
    report = gotong("outbox", cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert "   failed: 1" in report.stdout and "  pending: 0" in report.stdout
    assert "  skipped: 3\n" in report.stdout
    assert "\nskipped, by reason: outdated 2, unreachable 1\n" in report.stdout
    assert "#1 2026-11-01 10:00 UTC, 8 attempts: network or server error: Bad Gateway" in \
        report.stdout
    assert "updates waiting: 1\nupdates set aside: 1\n" in report.stdout
    assert "update #1 (telegram) received 2026-11-01 10:00 UTC, set aside after 5 attempts: " \
        "KeyError" in report.stdout


def test_operator_exports_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "gotong.sqlite3"
    env = with_key(GOTONG_DATABASE__URL=f"sqlite+aiosqlite:///{path}")
    assert gotong("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    added = gotong("aggregator", "add", "--name", "Posko Tebet", "--posko", "Jl. Tebet 1",
                   "--kota", "Jakarta Selatan", cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stderr
    report = gotong("export", "requests", "--aggregator", "1", cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("reference,status,")
    assert report.stdout.count("\n") == 1  # the header, and no request yet
    unknown = gotong("export", "pledges", "--aggregator", "9", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert "there is no aggregator 9" in unknown.stderr
