"""The transcripts of bursts without faults, made once per test process and shared by
the fault tests."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.burst import reference_run

Reference = dict[int, list[str]]


class References:
    def __init__(self, workdir: Path, template: Path) -> None:
        self._workdir = workdir
        self._template = template
        self._made: dict[str, Reference] = {}

    def get(self, kind: str) -> Reference:
        if kind not in self._made:
            workdir = self._workdir / kind
            workdir.mkdir()
            database = workdir / "gotong.sqlite3"
            shutil.copyfile(self._template, database)
            url = f"sqlite+aiosqlite:///{database}"
            # On a loop of its own, in a thread: it is first asked for from inside a
            # test's running loop.
            with ThreadPoolExecutor(max_workers=1) as pool:
                self._made[kind] = pool.submit(
                    asyncio.run, reference_run(kind, workdir, url)).result()
        return self._made[kind]

    def log_text(self, kind: str) -> str:
        """Everything the reference run of `kind` logged."""
        self.get(kind)
        return "\n".join(path.read_text(errors="replace")
                         for path in sorted((self._workdir / kind).glob("*.log")))


@pytest.fixture(scope="session")
def references(tmp_path_factory: pytest.TempPathFactory,
               sqlite_template: Path) -> References:
    return References(tmp_path_factory.mktemp("fault-references"), sqlite_template)


@pytest.fixture
def reference_of(references: References) -> Callable[[str], Reference]:
    return references.get
