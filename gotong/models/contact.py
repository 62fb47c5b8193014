"""A chat with a person on one channel: their language and verified phone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, utcnow


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5))
    # Set only from a phone the platform vouches for (Telegram's shared contact).
    verified_phone: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


async def save_contact(connection: AsyncConnection, contact: Contact) -> None:
    """Write what a conversation can change of a contact read earlier."""
    await connection.execute(
        update(Contact).where(Contact.id == contact.id)
        .values(language=contact.language, verified_phone=contact.verified_phone)
    )


async def get_or_create_contact(
    session: AsyncSession, channel: str, chat_id: str, language: str, now: datetime
) -> tuple[Contact, bool]:
    """The contact of this chat, created on first contact; True when new."""
    contact = await session.scalar(
        select(Contact).where(Contact.channel == channel, Contact.chat_id == chat_id)
    )
    if contact is not None:
        return contact, False
    contact = Contact(channel=channel, chat_id=chat_id, language=language, created_at=now)
    session.add(contact)
    await session.flush()
    return contact, True
