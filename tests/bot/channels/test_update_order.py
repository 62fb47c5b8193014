"""Updates of one chat are handled in order, different chats at the same time."""

from __future__ import annotations

import asyncio

from telegram import Update

from gotong.bot.channels.telegram import ChatOrderedProcessor
from tests.fakes.telegram_updates import TgUser, UpdateFactory


async def test_one_chat_in_order_and_chats_concurrently() -> None:
    factory = UpdateFactory()
    alice, bob = TgUser(id=1, first_name="Alice"), TgUser(id=2, first_name="Bob")
    processor = ChatOrderedProcessor(max_concurrent_updates=8)
    events: list[str] = []
    both_running = asyncio.Event()
    running: set[str] = set()

    async def handle(name: str, delay: float) -> None:
        events.append(f"start {name}")
        running.add(name[0])
        if running == {"a", "b"}:
            both_running.set()
        await asyncio.sleep(delay)
        running.discard(name[0])
        events.append(f"end {name}")

    updates = [
        (Update.de_json(factory.text(alice, "1"), None), "a1", 0.05),
        (Update.de_json(factory.text(alice, "2"), None), "a2", 0.0),
        (Update.de_json(factory.text(bob, "1"), None), "b1", 0.02),
        (Update.de_json(factory.text(alice, "3"), None), "a3", 0.0),
    ]
    async with processor:
        await asyncio.gather(*(processor.process_update(update, handle(name, delay))
                               for update, name, delay in updates))
    alice_events = [e for e in events if e.endswith(("a1", "a2", "a3"))]
    assert alice_events == ["start a1", "end a1", "start a2", "end a2", "start a3", "end a3"]
    assert both_running.is_set(), events
    # Bob did not wait for Alice's slow first update.
    assert events.index("end b1") < events.index("end a1")
    # Idle chats are forgotten.
    assert processor._locks == {} and processor._waiting == {}
