"""A chat with a person on one channel: their language, verified phone, roles, and
whether they can and want to be written to."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, UniqueConstraint, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, utcnow

# When the person last wrote (Contact.last_inbound_at) is kept to the minute, and the
# platforms date a message to the second: a chat of many quick messages writes it once.
LAST_INBOUND_PRECISION = timedelta(minutes=1, seconds=1)


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),
                      UniqueConstraint("channel", "platform_user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # Where the platform takes messages for the person: on WhatsApp their number, or their
    # business-scoped user id while the number is not known. It moves when the address
    # does (a number given later, a number changed); the contact and all it holds stay.
    chat_id: Mapped[str] = mapped_column(String(128))
    # The platform's own lasting id of the person beside the address (WhatsApp's
    # business-scoped user id), by which they are found when the address is withheld.
    platform_user_id: Mapped[str | None] = mapped_column(String(128))
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
    # When the platform last said the person's security code changed (a new phone, or
    # someone else on the number): kept beside the verified phone, which links contacts
    # of one person (models/person.py), as a sign that the number may have changed hands.
    identity_changed_at: Mapped[datetime | None]
    # When the person had their data erased (models/erasure.py): the contact is kept, with
    # nothing that reaches or names them, so that their aid record keeps its links.
    erased_at: Mapped[datetime | None]
    # When it was linked to a person's contacts on another app by its phone, and the
    # secret of the "this was not me" button that the person got on those (one link at a
    # time: a newer link's button replaces it).
    phone_linked_at: Mapped[datetime | None]
    link_token: Mapped[str | None] = mapped_column(String(32))
    # The person said, on their other app, that this link was not theirs: it was taken
    # apart, and this contact is never linked by its phone again.
    unlinked_at: Mapped[datetime | None]
    # Made only because a proxy typed this number for a household (models/proxy.py), and
    # the person has not written to us since: no broadcast reaches it or counts it. Cleared
    # by the person's first message (handlers/conversations.py).
    proxy_typed_at: Mapped[datetime | None]


class Role(enum.StrEnum):
    HOUSEHOLD = "household"
    DONOR = "donor"
    VOLUNTEER = "volunteer"
    STAFF = "staff"
    # Registers households on their behalf (an RT/RW head, a village official).
    PROXY = "proxy"


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
                opted_out_at=contact.opted_out_at, last_inbound_at=contact.last_inbound_at,
                platform_user_id=contact.platform_user_id,
                proxy_typed_at=contact.proxy_typed_at)
    )


async def get_or_create_contact(
    session: AsyncSession, channel: str, chat_id: str, language: str, now: datetime, *,
    user_id: str | None = None, move: bool = False,
) -> tuple[Contact, bool]:
    """The contact of this chat, created on first contact; True when new.

    With `user_id` the contact is also found by the platform's user id, when the chat
    id is not (yet) its address; with `move` its address becomes this chat id then (the
    platform gave the number of a person known so far by their user id alone).
    """
    if user_id is None:
        contact = await session.scalar(
            select(Contact).where(Contact.channel == channel, Contact.chat_id == chat_id))
    else:
        found = (await session.scalars(
            select(Contact).where(Contact.channel == channel,
                                  or_(Contact.chat_id == chat_id,
                                      Contact.platform_user_id == user_id))
            .order_by(Contact.id))).all()
        # The contact at this address first; the one known by the user id otherwise.
        contact = next((c for c in found if c.chat_id == chat_id), None) \
            or next(iter(found), None)
        if contact is not None and contact.chat_id != chat_id and move:
            contact.chat_id = chat_id
            await session.flush()
    if contact is not None:
        return contact, False
    contact = Contact(channel=channel, chat_id=chat_id, language=language, created_at=now,
                      platform_user_id=user_id)
    session.add(contact)
    await session.flush()
    return contact, True


async def find_contact(session: AsyncSession, channel: str, chat_id: str,
                       ids: Sequence[str | None]) -> Contact | None:
    """The contact at this chat id, else the one at another of the person's ids, or
    known by one as the platform's user id."""
    known = [i for i in ids if i]
    found = (await session.scalars(
        select(Contact).where(Contact.channel == channel,
                              or_(Contact.chat_id.in_([chat_id, *known]),
                                  Contact.platform_user_id.in_(known)))
        .order_by(Contact.id))).all()
    return next((c for c in found if c.chat_id == chat_id), None) or next(iter(found), None)


async def release_user_id(connection: AsyncConnection | AsyncSession, channel: str,
                          user_id: str, contact_id: int) -> list[int]:
    """Take the platform's user id from the other contacts that hold it, so that
    `contact_id` can; returns theirs. They are the same person (the platform says so):
    the caller links them."""
    result = await connection.execute(
        update(Contact)
        .where(Contact.channel == channel, Contact.platform_user_id == user_id,
               Contact.id != contact_id)
        .values(platform_user_id=None)
        .returning(Contact.id))
    return list(result.scalars().all())
