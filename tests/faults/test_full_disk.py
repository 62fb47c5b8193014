"""The disk holding the SQLite database fills up in the middle of a burst (a filler file
takes every free block of a small tmpfs) and is freed a few seconds later: `gotong run`
fails to write meanwhile (its webhook answers 5xx, and Telegram calls again), then every
chat finishes without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.faults.burst import (
    ANY,
    Gotong,
    Scenario,
    TelegramWebhook,
    common_env,
    free_port,
    telegram_env,
)

log = logging.getLogger(__name__)

# Room for the database (about 1 MB after a burst) and its write-ahead log.
DISK_SIZE = "16m"
# The disk stays full at least this long, and until gotong has failed to write.
FULL_AT_LEAST = 2.0
FULL_AT_MOST = 20.0
LOOK_EVERY = 0.2

Reference = dict[int, list[str]]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE, mounted for the test (needs root, or CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # Lazily: a process that did not end yet must not keep the mount behind.
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> int:
    """Write a file until the disk has no block left; the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as filler:
        for size in (1 << 20, 1 << 12):
            chunk = b"\0" * size
            while True:
                try:
                    written += filler.write(chunk) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_disk_full_during_a_burst(tmp_path: Path, database_url: str, small_disk: Path,
                                        telegram_api: FakeTelegramAPI,
                                        reference_of: Callable[[str], Reference]) -> None:
    reference = reference_of("telegram")
    template = make_url(database_url).database
    assert template is not None
    database = small_disk / "gotong.sqlite3"
    shutil.copyfile(template, database)
    url = f"sqlite+aiosqlite:///{database}"
    gotong = Gotong(tmp_path, "gotong", {**common_env(url, free_port()),
                                         **telegram_env(telegram_api, webhook=True)})
    platform = TelegramWebhook(telegram_api, [gotong.url])
    filler = small_disk / "filler"
    async with Scenario(url, platform, [gotong], platform.poster, think=0.4) as run:
        await run.start()
        taken = await run.wait_taken(0.25)
        retries = platform.poster.retries
        try:
            filled = await asyncio.to_thread(fill, filler)
            full_since = asyncio.get_running_loop().time()
            await asyncio.sleep(FULL_AT_LEAST)
            # Until the program has met the full disk: a write it could not make.
            for _ in range(int(FULL_AT_MOST / LOOK_EVERY)):
                if "OperationalError" in gotong.log_text() \
                        or platform.poster.retries > retries:
                    break
                await asyncio.sleep(LOOK_EVERY)
            else:
                raise AssertionError("gotong never failed to write to the full disk")
            full_for = asyncio.get_running_loop().time() - full_since
        finally:
            with contextlib.suppress(FileNotFoundError):
                filler.unlink()
        during = run.burst.taken_count
        report = await run.finish(reference, allowed_duplicates=ANY)
        log.info("disk full for %.1f s (%d bytes of filler) from %d of %d updates "
                 "(%d taken meanwhile, %d webhook calls failed): %s", full_for, filled,
                 taken, run.burst.total, during - taken, platform.poster.retries - retries,
                 report)
        assert taken < run.burst.total, "the burst ended before the disk filled up"
        assert gotong.runs == 1 and gotong.running
