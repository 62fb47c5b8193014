"""Where a chat is in its conversation: dialog, step, answers so far."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, utcnow


class Conversation(Base):
    __tablename__ = "conversation"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"),
                                            unique=True)
    dialog: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(32))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Transient state of the current step: selection of a multi-choice, page shown,
    # "did you mean" candidates, a pending language choice.
    scratch: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    invalid_attempts: Mapped[int] = mapped_column(default=0)
    reminded_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Optimistic lock: two processes handling the same chat cannot both commit.
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy reads it)

    def reset(self) -> None:
        self.dialog = None
        self.step = None
        self.answers = {}
        self.scratch = {}
        self.invalid_attempts = 0


async def get_or_create_conversation(session: AsyncSession, contact_id: int) -> Conversation:
    conversation = await session.scalar(
        select(Conversation).where(Conversation.contact_id == contact_id)
    )
    if conversation is None:
        conversation = Conversation(contact_id=contact_id, answers={}, scratch={})
        session.add(conversation)
        await session.flush()
    return conversation
