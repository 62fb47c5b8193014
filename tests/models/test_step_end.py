"""The writes that end a step go together or not at all: the update marked handled, the
conversation saved and the reply recorded, on both databases, whether the step wrote
nothing else (on PostgreSQL the statement then runs alone, outside a transaction) or
read and wrote before them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm.exc import StaleDataError

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import get_or_create_contact
from gotong.models.conversation import Conversation, get_or_create_conversation
from gotong.models.inbound import InboundUpdate, LeaseLost, ToStore, claim_waiting, store_batch
from gotong.models.outbox import OutboxMessage
from gotong.models.step_end import Finish, ReplyRow, end_step

OWNER = "this-process"
LEASE = timedelta(seconds=30)


async def _a_claimed_update(services: Services) -> tuple[Conversation, Finish]:
    now = utcnow()
    async with services.sessions() as session:
        contact, _ = await get_or_create_contact(session, "telegram", "42", "id", now)
        conversation = await get_or_create_conversation(session, contact.id)
        await session.commit()
        session.expunge(conversation)
    async with services.engine.begin() as connection:
        await store_batch(connection, [ToStore("telegram", "1", "42", {"text": "hi"}, False)],
                          now)
        [[queued]] = await claim_waiting(connection, OWNER, ["telegram"], now, LEASE, 1)
    return conversation, Finish(queued.id, OWNER)


def _reply(conversation: Conversation) -> ReplyRow:
    return ReplyRow(conversation.contact_id, {"replies": []}, LEASE, OWNER)


async def _state(services: Services, conversation: Conversation
                 ) -> tuple[bool, int, str | None, int]:
    """Whether the update is handled, the conversation's version and step, the replies."""
    async with services.engine.connect() as connection:
        processed = await connection.scalar(select(InboundUpdate.processed_at))
        version, step = (await connection.execute(
            select(Conversation.version, Conversation.step)
            .where(Conversation.id == conversation.id))).one()
        replies = await connection.scalar(select(func.count()).select_from(OutboxMessage))
    return processed is not None, version, step, int(replies or 0)


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "after-other-work"])
async def test_a_step_ends_with_all_three_writes(services: Services, alone: bool) -> None:
    conversation, finish = await _a_claimed_update(services)
    version = conversation.version
    conversation.step = "name"
    async with services.engine.connect() as connection, connection.begin():
        if not alone:
            await connection.execute(text("SELECT 1"))
        reply_id = await end_step(connection, utcnow(), conversation, finish,
                                  _reply(conversation))
    assert reply_id is not None
    assert conversation.version == version + 1
    assert await _state(services, conversation) == (True, version + 1, "name", 1)


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "after-other-work"])
async def test_a_lost_lease_writes_nothing(services: Services, alone: bool) -> None:
    conversation, finish = await _a_claimed_update(services)
    version = conversation.version
    conversation.step = "name"
    # Another process took the chat over.
    async with services.engine.begin() as connection:
        await connection.execute(InboundUpdate.__table__.update()
                                 .values(lease_owner="another-process"))
    with pytest.raises(LeaseLost):
        async with services.engine.connect() as connection, connection.begin():
            if not alone:
                await connection.execute(text("SELECT 1"))
            await end_step(connection, utcnow(), conversation, finish, _reply(conversation))
    assert await _state(services, conversation) == (False, version, None, 0)


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "after-other-work"])
async def test_a_conversation_changed_meanwhile_writes_nothing(
        services: Services, alone: bool) -> None:
    conversation, finish = await _a_claimed_update(services)
    version = conversation.version
    conversation.step = "name"
    # Another process moved the conversation on.
    async with services.engine.begin() as connection:
        await connection.execute(Conversation.__table__.update()
                                 .values(version=version + 1, step="other"))
    with pytest.raises(StaleDataError):
        async with services.engine.connect() as connection, connection.begin():
            if not alone:
                await connection.execute(text("SELECT 1"))
            await end_step(connection, utcnow(), conversation, finish, _reply(conversation))
    assert await _state(services, conversation) == (False, version + 1, "other", 0)
    assert conversation.version == version


async def test_a_step_of_no_queued_update_and_no_reply(services: Services) -> None:
    conversation, _ = await _a_claimed_update(services)
    version = conversation.version
    conversation.step = "name"
    async with services.engine.connect() as connection, connection.begin():
        assert await end_step(connection, utcnow(), conversation, None, None) is None
    assert await _state(services, conversation) == (False, version + 1, "name", 0)
