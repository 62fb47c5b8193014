"""Where a chat is in its conversation: dialog, step, answers so far."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

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

    def forget(self, *keys: str) -> None:
        """Drop these scratch keys: the end of a question asked outside a form."""
        self.scratch = {k: v for k, v in self.scratch.items() if k not in keys}

    def reset(self) -> None:
        self.dialog = None
        self.step = None
        self.answers = {}
        self.scratch = {}
        self.invalid_attempts = 0
        # A new dialog may be reminded of once more.
        self.reminded_at = None


SAVE_CONVERSATION = (
    update(Conversation.__table__)  # type: ignore[arg-type]
    .where(Conversation.__table__.c.id == bindparam("row_id"),
           Conversation.__table__.c.version == bindparam("row_version"))
    .values(dialog=bindparam("dialog"), step=bindparam("step"), answers=bindparam("answers"),
            scratch=bindparam("scratch"), invalid_attempts=bindparam("invalid_attempts"),
            reminded_at=bindparam("reminded_at"), updated_at=bindparam("updated_at"),
            version=bindparam("row_version") + 1)
)


async def save_conversation(connection: AsyncConnection, conversation: Conversation) -> None:
    """Write a conversation read earlier, unless someone changed it since.

    One prepared UPDATE guarded by the version; when another process wrote the row first,
    StaleDataError tells the caller to run the update again on the row as it is now.
    """
    result = await connection.execute(SAVE_CONVERSATION, save_values(conversation))
    if result.rowcount != 1:
        raise StaleDataError(f"conversation {conversation.id} changed concurrently")
    conversation.version += 1


def save_values(conversation: Conversation) -> dict[str, Any]:
    """SAVE_CONVERSATION's parameters."""
    return {
        "row_id": conversation.id, "row_version": conversation.version,
        "dialog": conversation.dialog, "step": conversation.step,
        "answers": conversation.answers, "scratch": conversation.scratch,
        "invalid_attempts": conversation.invalid_attempts,
        "reminded_at": conversation.reminded_at, "updated_at": conversation.updated_at,
    }


async def get_or_create_conversation(session: AsyncSession, contact_id: int) -> Conversation:
    conversation = await session.scalar(
        select(Conversation).where(Conversation.contact_id == contact_id)
    )
    if conversation is None:
        conversation = Conversation(contact_id=contact_id, answers={}, scratch={})
        session.add(conversation)
        await session.flush()
    return conversation
