"""`gotong backup PATH` and `gotong restore PATH`: a consistent copy of an SQLite database
taken while the bot runs, and putting one back.

SQLite's online backup API copies the database page by page inside one read transaction:
the copy is the database as it was at one moment, whatever is written meanwhile (in WAL
mode writers are not held up). PostgreSQL has its own tools for this (README, "Backups").
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from gotong.bot.config import Config

# How long a backup or restore waits for a lock held by a writer, in seconds.
BUSY_SECONDS = 30.0


def add_backup_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup", help="copy the SQLite database to a file, while the bot runs")
    backup.add_argument("path", type=Path, help="the copy to write (must not exist)")
    restore = commands.add_parser(
        "restore", help="put a copy made by `gotong backup` back (stop gotong first)")
    restore.add_argument("path", type=Path, help="the copy to restore")
    restore.add_argument("--yes", action="store_true",
                         help="replace the current database without asking")


def sqlite_file(config: Config) -> Path | None:
    """The database file, or None when the database is not SQLite."""
    url = make_url(config.database.url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    return Path(url.database)


def run_backup(config: Config, args: argparse.Namespace) -> int:
    database = sqlite_file(config)
    if database is None:
        print("gotong: backup copies an SQLite database; for PostgreSQL use pg_dump (see "
              "README, \"Backups\")", file=sys.stderr)
        return 2
    if not database.exists():
        print(f"gotong: there is no database at {database}", file=sys.stderr)
        return 1
    target: Path = args.path
    if target.exists():
        print(f"gotong: {target} exists; choose a new file", file=sys.stderr)
        return 1
    with sqlite3.connect(database, timeout=BUSY_SECONDS) as source, \
            sqlite3.connect(target) as copy:
        source.backup(copy)
    size = target.stat().st_size
    print(f"backed up {database} to {target} ({size / 1_000_000:.1f} MB)")
    return 0


def run_restore(config: Config, args: argparse.Namespace) -> int:
    database = sqlite_file(config)
    if database is None:
        print("gotong: restore puts back an SQLite database; for PostgreSQL use pg_restore "
              "(see README, \"Backups\")", file=sys.stderr)
        return 2
    copy_path: Path = args.path
    problem = _not_a_backup(copy_path)
    if problem:
        print(f"gotong: {copy_path} {problem}", file=sys.stderr)
        return 1
    if not args.yes:
        answer = input(f"Replace {database} with {copy_path}? Every gotong process must "
                       "be stopped. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing was changed")
            return 1
    with sqlite3.connect(copy_path) as copy, \
            sqlite3.connect(database, timeout=BUSY_SECONDS) as current:
        copy.backup(current)
    print(f"restored {database} from {copy_path}; run `gotong db upgrade` if the copy is "
          "from an older version")
    return 0


def _not_a_backup(path: Path) -> str | None:
    """Why `path` is not a copy of a Gotong database, or None."""
    if not path.is_file():
        return "does not exist"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as copy:
            [(integrity,)] = copy.execute("PRAGMA integrity_check").fetchall()
            if integrity != "ok":
                return "is damaged"
            copy.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        return "is not a Gotong database"
    return None
