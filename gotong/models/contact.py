"""A chat with a person on one channel: their language, verified phone, roles, and
whether they can and want to be written to."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, select, update
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
    verified_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by /stop: no reminders or broadcasts; status changes of their own aid still come.
    opted_out_at: Mapped[datetime | None]
    # Set when the platform refused a message because the person blocked the bot or left;
    # nothing more is sent until they write again (their conversation is newer than this).
    unreachable_at: Mapped[datetime | None]
    # When the person last wrote to us (WhatsApp lets us write freely for 24 hours after).
    last_inbound_at: Mapped[datetime | None]
    # The first contact of the same person on another app (models/person.py).
    person_id: Mapped[int | None] = mapped_column(index=True)


class Role(enum.StrEnum):
    HOUSEHOLD = "household"
    DONOR = "donor"
    VOLUNTEER = "volunteer"
    STAFF = "staff"


class ContactRole(Base):
    """A role a contact holds, granted by what they did (a request) or an invite."""

    __tablename__ = "contact_role"
    __table_args__ = (UniqueConstraint("contact_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), index=True)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


async def grant_role(session: AsyncSession, contact_id: int, role: Role, now: datetime) -> None:
    held = await session.scalar(
        select(ContactRole.id).where(ContactRole.contact_id == contact_id,
                                     ContactRole.role == role)
    )
    if held is None:
        session.add(ContactRole(contact_id=contact_id, role=role, granted_at=now))


async def save_contact(connection: AsyncConnection, contact: Contact) -> None:
    """Write what a conversation can change of a contact read earlier."""
    await connection.execute(
        update(Contact).where(Contact.id == contact.id)
        .values(language=contact.language, verified_phone=contact.verified_phone,
                opted_out_at=contact.opted_out_at, last_inbound_at=contact.last_inbound_at)
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
