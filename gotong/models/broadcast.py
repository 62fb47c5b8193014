"""Broadcasts: one message from the operator to everyone matching a filter.

A broadcast is one row per recipient in the outbox, at the lowest priority, so that it
never holds up news of anyone's aid. People who sent /stop are not counted or written to,
nor is a number a proxy typed for a household until its owner writes to us.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, CursorResult, Text, and_, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, aliased, mapped_column

from gotong.models.base import Base, UTCDateTime, utcnow
from gotong.models.contact import Contact, ContactRole, Role
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import OutboxMessage, OutboxStatus, Purpose

BROADCAST_KEY = "notice.broadcast"
# People whose outbox rows are written in one transaction (by their key, a contact id):
# tens of milliseconds of SQLite's writer each.
BATCH_PEOPLE = 5_000


class Broadcast(Base):
    __tablename__ = "broadcast"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    # The filter as the operator gave it, for the record.
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recipients: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Audience:
    """Who a broadcast is for; every part that is given must match."""

    role: Role | None = None
    # Kelurahan ids: a person matches when their area is one of them.
    villages: Collection[int] | None = None
    language: str | None = None
    described: dict[str, Any] = field(default_factory=dict)


def _recipients_query(audience: Audience, people: tuple[int, int] | None = None) -> Any:
    """One contact per person in the audience (the dispatcher sends to the app the person
    uses); with `people`, only the people whose key (their first contact's id) is in
    that range, from the first (included) to the second (excluded)."""
    # A contact made only because a proxy typed its number (models/proxy.py) is someone
    # who never wrote to us: not theirs to be written to by everyone's news. Tested on
    # the row the range already reads, so the batches stay index range scans.
    query = select(Contact.id, func.coalesce(Contact.person_id, Contact.id).label("person")) \
        .where(Contact.opted_out_at.is_(None), Contact.proxy_typed_at.is_(None))
    if people is not None:
        # A person's contacts share their key: the first one's id, which is the
        # person_id of every linked contact, or a lone contact's own id. Both are read
        # by an index (the key, the person_id), and a person is never split between
        # two ranges.
        first, stop = people
        query = query.where(or_(
            and_(Contact.person_id.is_(None), Contact.id >= first, Contact.id < stop),
            and_(Contact.person_id >= first, Contact.person_id < stop)))
    if audience.role is not None:
        query = query.where(
            select(ContactRole.id).where(ContactRole.contact_id == Contact.id,
                                         ContactRole.role == audience.role).exists()
        )
    if audience.villages is not None:
        # A household's area is that of its latest request.
        newer = aliased(HelpRequest)
        latest = (select(func.max(newer.id)).where(newer.contact_id == Contact.id)
                  .correlate(Contact).scalar_subquery())
        query = query.where(
            select(HelpRequest.id).where(and_(HelpRequest.id == latest,
                                              HelpRequest.village_id.in_(audience.villages)))
            .correlate(Contact).exists()
        )
    if audience.language is not None:
        query = query.where(Contact.language == audience.language)
    matching = query.subquery()
    return select(func.min(matching.c.id).label("id")).group_by(matching.c.person)


async def count_recipients(session: AsyncSession, audience: Audience) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(_recipients_query(audience).subquery())) or 0)


async def queue_broadcast(sessions: async_sessionmaker[AsyncSession], text: str,
                          audience: Audience, now: datetime, *,
                          batch: int = BATCH_PEOPLE,
                          progress: Callable[[int], None] | None = None) -> Broadcast:
    """The broadcast, then its outbox rows, `batch` people (by their key) at a time,
    each batch in a transaction of its own; `progress` hears how many rows are queued
    after each.

    A city's million rows in one transaction would hold SQLite's one writer for
    seconds, and the chat with it; a batch holds it for milliseconds. The dispatcher
    may send the first batches while the next are written. The broadcast's
    `recipients` counts the rows queued so far, so a run stopped half-way says how far
    it got.
    """
    async with sessions() as session, session.begin():
        broadcast = Broadcast(text=text, audience=audience.described, created_at=now)
        session.add(broadcast)
        await session.flush()
        first = await _next_key(session, 0)
    queued = 0
    while first is not None:
        stop = first + batch
        async with sessions() as session, session.begin():
            queued += await _queue_batch(session, broadcast.id, audience, now,
                                         (first, stop))
            await session.execute(update(Broadcast).where(Broadcast.id == broadcast.id)
                                  .values(recipients=queued))
            # Ids need not be dense (contacts made in bulk, imported): a range with
            # nobody in it is skipped, not walked.
            first = await _next_key(session, stop)
        if progress is not None:
            progress(queued)
    broadcast.recipients = queued
    return broadcast


async def _next_key(session: AsyncSession, at_least: int) -> int | None:
    """The smallest person key from `at_least` on: two lookups, on the key and on the
    person_id (a person's first contact may be gone while the others keep its id)."""
    lone = await session.scalar(select(func.min(Contact.id)).where(
        Contact.person_id.is_(None), Contact.id >= at_least))
    linked = await session.scalar(select(func.min(Contact.person_id)).where(
        Contact.person_id >= at_least))
    keys = [key for key in (lone, linked) if key is not None]
    return min(keys) if keys else None


async def _queue_batch(session: AsyncSession, broadcast_id: int, audience: Audience,
                       now: datetime, people: tuple[int, int]) -> int:
    """The outbox rows of the people in the range; how many."""
    recipients = _recipients_query(audience, people).subquery()
    written = await session.execute(
        insert(OutboxMessage).from_select(
            ["contact_id", "priority", "essential", "message_key", "params", "actions",
             "broadcast_id", "status", "attempts", "parts_sent", "next_attempt_at",
             "created_at"],
            select(recipients.c.id, literal(int(Purpose.BROADCAST)), literal(False),
                   literal(BROADCAST_KEY), literal({}, JSON), literal([], JSON),
                   literal(broadcast_id), literal(str(OutboxStatus.PENDING)), literal(0),
                   literal(0), literal(now, UTCDateTime()), literal(now, UTCDateTime()))
            .order_by(recipients.c.id),
        )
    )
    return int(cast(CursorResult[Any], written).rowcount)
