"""`gotong backup` while the database is written to, and `gotong restore` of the copy, as
people run them (the console script in a subprocess)."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from gotong.bot.cli.main import main
from tests.bot.cli.test_cli import gotong, with_key


def counts(database: Path) -> dict[str, int]:
    """Rows of every table."""
    with sqlite3.connect(database) as connection:
        tables = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for table in tables}


class Writer(threading.Thread):
    """Writes while the backup runs: each transaction one row into each of two tables, so
    that a consistent copy has as many rows in one as in the other."""

    def __init__(self, database: Path) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        with sqlite3.connect(self.database, timeout=30) as connection:
            while not self.stop.is_set():
                with connection:
                    connection.execute("INSERT INTO load_a (v) VALUES (?)", ("x" * 200,))
                    connection.execute("INSERT INTO load_b (v) VALUES (?)", ("y" * 200,))
                self.written += 1


def test_a_backup_under_write_load_restores_to_the_same_rows(
        tmp_path: Path, sqlite_template: Path) -> None:
    database = tmp_path / "gotong.sqlite3"
    shutil.copyfile(sqlite_template, database)  # migrated, the areas loaded
    env = with_key(GOTONG_DATABASE__URL=f"sqlite+aiosqlite:///{database}")
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE load_a (id INTEGER PRIMARY KEY, v TEXT)")
        connection.execute("CREATE TABLE load_b (id INTEGER PRIMARY KEY, v TEXT)")
    writer = Writer(database)
    writer.start()
    try:
        while writer.written < 200:
            threading.Event().wait(0.01)
        copy = tmp_path / "copy.sqlite3"
        done = gotong("backup", str(copy), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "backed up" in done.stdout
    finally:
        writer.stop.set()
        writer.join()
    saved = counts(copy)
    assert saved["load_a"] == saved["load_b"] > 0  # one moment, not half a transaction
    assert saved["load_a"] < writer.written  # the writes went on meanwhile
    assert saved["alembic_version"] == 1 and saved["area"] > 0
    # Restored into another installation's database: row for row the copy.
    other = tmp_path / "other.sqlite3"
    env_other = with_key(GOTONG_DATABASE__URL=f"sqlite+aiosqlite:///{other}")
    done = gotong("restore", "--yes", str(copy), cwd=tmp_path, env=env_other)
    assert done.returncode == 0, done.stderr
    assert counts(other) == saved


def run(monkeypatch: pytest.MonkeyPatch, database_url: str, *args: str,
        answer: str = "") -> int:
    """The command in this process (its start-up is the same code; a subprocess per
    case would cost seconds)."""
    monkeypatch.setenv("GOTONG_DATABASE__URL", database_url)
    monkeypatch.setenv("GOTONG_PRIVACY__NIK_HASH_KEY", with_key()["GOTONG_PRIVACY__NIK_HASH_KEY"])
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    return main(list(args))


def test_what_is_not_a_backup_is_not_restored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        sqlite_template: Path) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "gotong.sqlite3"
    url = f"sqlite+aiosqlite:///{database}"
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database" * 100)
    for path, why in ((junk, "not a Gotong database"), (tmp_path / "none", "does not exist")):
        assert run(monkeypatch, url, "restore", "--yes", str(path)) == 1
        assert why in capsys.readouterr().err
    assert not database.exists()
    # Asked, and not answered yes: nothing changes.
    assert run(monkeypatch, url, "restore", str(sqlite_template), answer="n") == 1
    assert not database.exists()
    # A backup never overwrites a file.
    shutil.copyfile(sqlite_template, database)
    assert run(monkeypatch, url, "backup", str(junk)) == 1
    assert "exists" in capsys.readouterr().err


def test_postgresql_is_backed_up_with_its_own_tools(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+asyncpg://gotong@127.0.0.1:5432/gotong"
    assert run(monkeypatch, url, "backup", str(tmp_path / "copy")) == 2
    assert "pg_dump" in capsys.readouterr().err
    assert run(monkeypatch, url, "restore", "--yes", str(tmp_path / "copy")) == 2
    assert "pg_restore" in capsys.readouterr().err
