"""The flood-limit keeper: windows that count messages in flight, priorities, pauses."""

from __future__ import annotations

import asyncio
import time

from gotong.bot.ratelimit import MARGIN, Limiter, Limits, Window


def test_a_window_counts_messages_from_their_start_to_a_window_after_their_end() -> None:
    window = Window(2, 1.0)
    assert window.delay(0.0) == 0.0
    window.start()
    window.start()
    # Both in flight: nothing more until one ends.
    assert window.delay(5.0) is None
    window.finish(5.0)
    assert window.delay(5.5) == 1.0 + MARGIN - 0.5
    window.finish(5.2)
    assert window.delay(6.0 + MARGIN) == 0.0


def test_rates_below_one_a_second_stretch_the_window() -> None:
    window = Window.per_second(0.5)
    assert (window.capacity, window.seconds) == (1, 2.0 + MARGIN)
    assert Window.per_second(30).capacity == 30


async def test_groups_are_limited_per_minute_and_people_per_second() -> None:
    now = [100.0]
    limiter = Limiter(Limits(per_second=100, per_chat_per_second=1, per_group_per_minute=2),
                      clock=lambda: now[0])
    for _ in range(2):
        await limiter.acquire("-1001", (1, 0))
        limiter.release("-1001")
    third = asyncio.create_task(limiter.acquire("-1001", (1, 0)))
    person = asyncio.create_task(limiter.acquire("42", (1, 1)))
    await asyncio.sleep(0.01)
    assert person.done() and not third.done()
    now[0] += 60.0 + MARGIN
    limiter.release("42")  # any change lets waiters be looked at again
    await asyncio.sleep(0.01)
    assert third.done()


async def test_the_best_priority_gets_the_next_slot() -> None:
    limiter = Limiter(Limits(per_second=1, per_chat_per_second=10, per_group_per_minute=20))
    await limiter.acquire("1", (3, 1))
    order: list[str] = []

    async def send(chat: str, priority: tuple[int, int]) -> None:
        await limiter.acquire(chat, priority)
        order.append(chat)
        limiter.release(chat)

    broadcast = asyncio.create_task(send("2", (3, 2)))
    await asyncio.sleep(0.01)
    status = asyncio.create_task(send("3", (1, 9)))
    await asyncio.sleep(0.01)
    limiter.release("1")
    await asyncio.wait_for(asyncio.gather(broadcast, status), 5)
    assert order == ["3", "2"]


async def test_replies_are_not_held_by_the_per_chat_window() -> None:
    limiter = Limiter(Limits(per_second=30, per_chat_per_second=1, per_group_per_minute=20))
    started = time.monotonic()
    for _ in range(3):
        await limiter.acquire("7", (-1, 0), paced=False)
        limiter.release("7", paced=False)
    assert time.monotonic() - started < 0.5


async def test_a_pause_holds_everyone() -> None:
    now = [0.0]
    limiter = Limiter(Limits(per_second=30, per_chat_per_second=1, per_group_per_minute=20),
                      clock=lambda: now[0])
    limiter.pause(3.0)
    waiting = asyncio.create_task(limiter.acquire("9", (1, 0)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    now[0] = 3.0
    limiter.pause(0.0)
    await asyncio.sleep(0.01)
    assert waiting.done()


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    limiter = Limiter(Limits(per_second=1, per_chat_per_second=1, per_group_per_minute=20))
    await limiter.acquire("1", (1, 0))
    waiting = asyncio.create_task(limiter.acquire("2", (1, 1)))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    limiter.release("1")
    assert limiter._waiters == []
