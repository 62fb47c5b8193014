"""The inbound queue: each chat's updates in the order they were stored, different chats
at once; a failing update is retried with its chat waiting behind it, set aside when it is
not the database's fault; a redelivery of a waiting update is handled once; a lease that
runs out lets another process take the chat over."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from gotong.bot.channels.inbound import InboundQueue, InboundSettings
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.inbound import (
    InboundUpdate,
    QueuedUpdate,
    Stored,
    claim_waiting,
    finish_inbound,
    inbound_counts,
    set_aside_updates,
)

CHANNEL = "telegram"
FAST = InboundSettings(lease=timedelta(seconds=30), max_attempts=3,
                       retry_base=timedelta(milliseconds=20),
                       retry_max=timedelta(milliseconds=50),
                       poll=timedelta(milliseconds=50), concurrent_chats=8)


class Recorder:
    """A channel's handler that notes what it handles, with a failure or delay per text."""

    def __init__(self, queue: InboundQueue) -> None:
        self.queue = queue
        self.events: list[str] = []
        self.delays: dict[str, float] = {}
        self.failures: dict[str, list[Exception]] = {}
        self.running: set[str] = set()
        self.overlapped = False
        queue.register(CHANNEL, self.handle)

    async def handle(self, update: QueuedUpdate) -> bool:
        text = str(update.payload["text"])
        chat = update.chat_id
        if chat in self.running:
            self.overlapped = True
        self.running.add(chat)
        try:
            self.events.append(f"start {text}")
            await asyncio.sleep(self.delays.get(text, 0))
            pending = self.failures.get(text)
            if pending:
                raise pending.pop(0)
            await self.queue.finish_alone(update)
            self.events.append(f"end {text}")
            return True
        finally:
            self.running.discard(chat)


async def store(queue: InboundQueue, number: int, chat: str, text: str) -> Stored:
    return await queue.accept(CHANNEL, str(number), chat, {"text": text})


async def run_until_idle(queue: InboundQueue) -> None:
    async with asyncio.timeout(20):
        await queue.run_until_idle()


def handled(events: list[str], prefix: str) -> list[str]:
    return [e.split()[1] for e in events if e.startswith("end ") and e.split()[1][0] == prefix]


async def test_one_chat_in_order_and_chats_at_once(services: Services) -> None:
    queue = InboundQueue(services.engine, FAST)
    recorder = Recorder(queue)
    recorder.delays = {"a1": 0.1, "b1": 0.02}
    for number, (chat, text) in enumerate([("A", "a1"), ("A", "a2"), ("B", "b1"),
                                           ("A", "a3"), ("B", "b2")]):
        await store(queue, number, chat, text)
    await run_until_idle(queue)
    assert handled(recorder.events, "a") == ["a1", "a2", "a3"]
    assert handled(recorder.events, "b") == ["b1", "b2"]
    assert not recorder.overlapped
    # B did not wait for A's slow first update.
    assert recorder.events.index("end b1") < recorder.events.index("end a1")
    assert await _waiting(services) == 0


async def test_a_database_failure_is_retried_and_the_chat_waits(services: Services) -> None:
    queue = InboundQueue(services.engine, FAST)
    recorder = Recorder(queue)
    trouble = OperationalError("UPDATE", {}, Exception("server closed the connection"))
    # More failures than max_attempts: the database's trouble never sets an update aside.
    recorder.failures = {"a1": [trouble] * 5}
    for number, text in enumerate(["a1", "a2", "a3"]):
        await store(queue, number, "A", text)
    await run_until_idle(queue)
    assert handled(recorder.events, "a") == ["a1", "a2", "a3"]
    # a2 never started before a1 was handled.
    assert recorder.events.index("start a2") > recorder.events.index("end a1")
    assert recorder.events.count("start a1") == 6
    assert await inbound_counts_of(services) == (0, 0)


async def test_a_bug_sets_the_update_aside_and_the_chat_goes_on(services: Services) -> None:
    queue = InboundQueue(services.engine, FAST)
    recorder = Recorder(queue)
    recorder.failures = {"a2": [KeyError("payload")] * 10}
    for number, text in enumerate(["a1", "a2", "a3"]):
        await store(queue, number, "A", text)
    await run_until_idle(queue)
    assert handled(recorder.events, "a") == ["a1", "a3"]
    assert recorder.events.count("start a2") == FAST.max_attempts
    assert recorder.events.index("start a3") > max(
        i for i, e in enumerate(recorder.events) if e == "start a2")
    assert await inbound_counts_of(services) == (0, 1)
    async with services.sessions() as session:
        [aside] = await set_aside_updates(session)
    assert (aside.channel, aside.attempts, aside.reason) == (CHANNEL, 3, "KeyError")
    # Set aside for good: a redelivery of it is a replay, and a restart does not run it.
    assert await store(queue, 1, "A", "a2") is Stored.DONE
    await run_until_idle(queue)
    assert recorder.events.count("start a2") == FAST.max_attempts


async def test_a_redelivered_waiting_update_is_handled_once(services: Services) -> None:
    queue = InboundQueue(services.engine, FAST)
    recorder = Recorder(queue)
    assert await store(queue, 7, "A", "a1") is Stored.NEW
    # Redelivered before it was handled (the platform did not get our answer): it waits.
    assert await store(queue, 7, "A", "a1") is Stored.WAITING
    await run_until_idle(queue)
    # Redelivered after: a replay.
    assert await store(queue, 7, "A", "a1") is Stored.DONE
    await run_until_idle(queue)
    assert recorder.events == ["start a1", "end a1"]


async def test_an_expired_lease_is_taken_over(services: Services) -> None:
    queue = InboundQueue(services.engine, FAST)
    recorder = Recorder(queue)
    await store(queue, 1, "A", "a1")
    await store(queue, 2, "A", "a2")
    now = utcnow()
    # A process claims the chat's first update, then stops (killed, or paused).
    async with services.engine.begin() as connection:
        [[dead, _]] = await claim_waiting(connection, "dead-process", [CHANNEL], now,
                                          timedelta(seconds=30), 10)
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(stop))
    try:
        # While its lease lasts, nobody else touches the chat, not even its later update.
        await asyncio.sleep(0.5)
        assert recorder.events == []
        # The lease runs out: the chat is taken over, in order.
        async with services.engine.begin() as connection:
            await connection.execute(InboundUpdate.__table__.update()
                                     .where(InboundUpdate.id == dead.id)
                                     .values(lease_until=now - timedelta(seconds=1)))
        await queue.wait_finished(2)
    finally:
        stop.set()
        await worker
    assert handled(recorder.events, "a") == ["a1", "a2"]
    # The stopped process wakes up: its unit of work can no longer mark the update.
    async with services.engine.begin() as connection:
        assert not await finish_inbound(connection, dead.id, dead.owner, utcnow())


async def test_the_worker_handles_what_another_process_stored(services: Services) -> None:
    queue = InboundQueue(services.engine, FAST)
    recorder = Recorder(queue)
    other = InboundQueue(services.engine, FAST)
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(stop))
    try:
        # Stored by another process: no wake-up here, the worker finds it by polling.
        await other.accept(CHANNEL, "1", "A", {"text": "a1"})
        await queue.wait_finished(1)
    finally:
        stop.set()
        await worker
    assert recorder.events == ["start a1", "end a1"]


async def _waiting(services: Services) -> int:
    return (await inbound_counts_of(services))[0]


async def inbound_counts_of(services: Services) -> tuple[int, int]:
    async with services.sessions() as session:
        return await inbound_counts(session)



async def test_updates_stored_while_their_chat_is_handled_follow_it_at_once(
        services: Services) -> None:
    # A poll so long that only wake-ups can bring the updates within the test's time.
    settings = replace(FAST, poll=timedelta(seconds=60))
    queue = InboundQueue(services.engine, settings)
    recorder = Recorder(queue)
    release = asyncio.Event()
    held = asyncio.Event()
    handle = recorder.handle

    async def first_waits(update: QueuedUpdate) -> bool:
        if update.payload["text"] == "a1":
            held.set()
            await release.wait()
        return await handle(update)

    queue.register(CHANNEL, first_waits)
    claims: list[int] = []
    claim = claim_waiting

    async def counted_claim(*args: Any, **kwargs: Any) -> Any:
        claims.append(1)
        return await claim(*args, **kwargs)

    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(stop))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("gotong.bot.channels.inbound.claim_waiting", counted_claim)
            await store(queue, 1, "A", "a1")
            async with asyncio.timeout(5):
                await held.wait()
            claims_while_held = len(claims)
            # The chat is being handled: these cannot be claimed before it ends, and
            # storing them does not make the worker look.
            await store(queue, 2, "A", "a2")
            await store(queue, 3, "A", "a3")
            await asyncio.sleep(0.2)
            assert len(claims) == claims_while_held
            release.set()
            async with asyncio.timeout(5):
                await queue.wait_finished(3)
            # Another chat's update, stored while nothing is held, is claimed at once.
            await store(queue, 4, "B", "b1")
            async with asyncio.timeout(5):
                await queue.wait_finished(4)
    finally:
        release.set()
        stop.set()
        await worker
    assert handled(recorder.events, "a") == ["a1", "a2", "a3"]
    assert handled(recorder.events, "b") == ["b1"]
