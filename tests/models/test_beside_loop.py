"""Work beside the event loop: the switch interval is short while it runs, and put back."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest

from gotong.models.beside_loop import SWITCH_INTERVAL, beside_loop

BEFORE = 0.004


@pytest.fixture(autouse=True)
def known_interval() -> Iterator[None]:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(BEFORE)
    yield
    sys.setswitchinterval(saved)


async def test_the_interval_is_short_while_the_work_runs_and_put_back_after() -> None:
    seen: list[float] = []

    def work(x: int) -> int:
        seen.append(sys.getswitchinterval())
        return x * 2

    assert await beside_loop(work, 21) == 42
    assert seen == [pytest.approx(SWITCH_INTERVAL)]
    assert sys.getswitchinterval() == pytest.approx(BEFORE)


async def test_it_stays_short_until_the_last_of_two_pieces_of_work_ends() -> None:
    first_done, release_second = threading.Event(), threading.Event()

    def first() -> None:
        first_done.set()

    def second() -> float:
        release_second.wait(5)
        return sys.getswitchinterval()

    running = asyncio.create_task(beside_loop(second))
    await beside_loop(first)
    assert first_done.is_set()
    # The second still runs: the interval stays short.
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    release_second.set()
    assert await running == pytest.approx(SWITCH_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(BEFORE)


async def test_it_is_put_back_when_the_work_fails() -> None:
    def failing() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await beside_loop(failing)
    assert sys.getswitchinterval() == pytest.approx(BEFORE)
