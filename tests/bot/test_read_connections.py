"""What only reads (dashboard pages, the public page, exports, figures) reads on
connections of its own (Services.reads): on SQLite, read-only connections beside the one
writer, so that the chat never waits for the web, and nothing is written through them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gotong.bot.services import Services
from gotong.models.audit import AuditEntry, audit
from gotong.models.contact import Contact
from tests.chat import Chat


async def test_chat_answers_while_a_read_is_open(services: Services) -> None:
    """A page or an export batch is reading (its transaction open, a row read): a
    person's message is answered, and its writes committed, before that read ends. With
    SQLite's one connection shared by reads, the message would wait for the read."""
    async with services.reads() as reads, reads.begin():
        before = await reads.scalar(select(func.count()).select_from(Contact))
        chat = Chat(services.conversations, chat_id="during-read")
        replies = await chat.say("/start")
        assert replies, "the chat answered while the read was open"
        # Still inside the read: it reads the database as it was when it began (a
        # snapshot on SQLite), so the chat's writes went in while it was open.
        if services.read_engine is not None:
            assert await reads.scalar(select(func.count()).select_from(Contact)) == before
    async with services.reads() as reads:
        assert await reads.scalar(select(func.count()).select_from(Contact)) == before + 1


async def test_nothing_is_written_through_the_reads(services: Services) -> None:
    if services.read_engine is None:
        pytest.skip("PostgreSQL reads and writes on one pool")
    at = datetime(2025, 3, 1, tzinfo=UTC)
    async with services.reads() as reads:
        audit(reads, at, "dashboard", "written by a page")
        with pytest.raises(OperationalError, match="readonly"):
            await reads.commit()
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0
