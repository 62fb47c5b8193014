"""Updates stored together (a group commit of webhooks): each one's fate, in order, on
both databases: new, the same update twice in one batch, seen before and still waiting,
seen before and handled, and recorded as seen only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.inbound import InboundUpdate, Stored, ToStore, store_batch


def _update(external_id: str, chat: str = "42", seen_only: bool = False) -> ToStore:
    return ToStore("telegram", external_id, chat, {"update_id": int(external_id)}, seen_only)


async def test_a_batch_says_what_became_of_each_update(services: Services) -> None:
    now = utcnow()
    async with services.engine.begin() as connection:
        first = await store_batch(connection, [_update("1"), _update("2")], now)
    assert first == [Stored.NEW, Stored.NEW]
    async with services.engine.begin() as connection:
        await connection.execute(update(InboundUpdate)
                                 .where(InboundUpdate.external_id == "2")
                                 .values(processed_at=now))

    later = now + timedelta(seconds=1)
    async with services.engine.begin() as connection:
        results = await store_batch(connection, [
            _update("3"),            # new
            _update("1"),            # seen before, still waiting
            _update("2"),            # seen before, handled
            _update("4", chat="7"),  # new, another chat
            _update("3"),            # the same update again in this batch: a replay
            _update("5", seen_only=True),
        ], later)
    assert results == [Stored.NEW, Stored.WAITING, Stored.DONE, Stored.NEW, Stored.WAITING,
                       Stored.NEW]

    async with services.engine.connect() as connection:
        rows = (await connection.execute(
            select(InboundUpdate.external_id, InboundUpdate.chat_id, InboundUpdate.payload,
                   InboundUpdate.processed_at.is_not(None))
            .order_by(InboundUpdate.id))).all()
    # Stored once each; the one seen only is recorded handled and without its payload.
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("1", "42", {"update_id": 1}, False),
        ("2", "42", {"update_id": 2}, True),
        ("3", "42", {"update_id": 3}, False),
        ("4", "7", {"update_id": 4}, False),
        ("5", "42", None, True),
    ]
