"""Reminders of dialogs left unfinished: one per dialog, never more."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.contact import Contact
from gotong.models.conversation import Conversation
from gotong.models.notifications import Event, Subject, announce

# Reminders written per pass; the rest wait for the next one.
BATCH = 500


async def queue_reminders(session: AsyncSession, channels: Sequence[str],
                          dialogs: Mapping[str, str], now: datetime, after: timedelta) -> int:
    """Write a reminder for each dialog untouched for `after`, in the caller's transaction.

    `dialogs` maps each dialog that may be reminded of to the menu item resuming it. The
    conversation is marked (and its version moved on, so a process holding it in memory
    reloads it); a conversation another process changed meanwhile is left for later.
    """
    if not dialogs:
        return 0
    rows = (await session.execute(
        select(Conversation.id, Conversation.version, Conversation.contact_id,
               Conversation.dialog)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.dialog.in_(list(dialogs)), Conversation.reminded_at.is_(None),
               Conversation.updated_at <= now - after, Contact.channel.in_(channels),
               Contact.opted_out_at.is_(None))
        .order_by(Conversation.id)
        .limit(BATCH)
    )).all()
    queued = 0
    for row in rows:
        marked = await session.execute(
            update(Conversation)
            .where(Conversation.id == row.id, Conversation.version == row.version)
            .values(reminded_at=now, version=row.version + 1)
            .execution_options(synchronize_session=False)
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            continue
        subject = Subject(contact_id=row.contact_id,
                          params={"what": {"key": f"menu.{dialogs[row.dialog]}"}},
                          menu_item=dialogs[row.dialog], conversation_id=row.id)
        await announce(session, Event.DIALOG_UNFINISHED, subject, now)
        queued += 1
    return queued
