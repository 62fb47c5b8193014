"""Broadcasts: one message from the operator to everyone matching a filter.

A broadcast is one row per recipient in the outbox, at the lowest priority, so that it
never holds up news of anyone's aid. People who sent /stop are not counted or written to.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Text, and_, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from gotong.models.base import Base, UTCDateTime, utcnow
from gotong.models.contact import Contact, ContactRole, Role
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import OutboxMessage, OutboxStatus, Purpose

BROADCAST_KEY = "notice.broadcast"


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


def _recipients_query(audience: Audience) -> Any:
    """One contact per person in the audience (the dispatcher sends to the app the person
    uses)."""
    query = select(Contact.id, func.coalesce(Contact.person_id, Contact.id).label("person")) \
        .where(Contact.opted_out_at.is_(None))
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


async def create_broadcast(session: AsyncSession, text: str, audience: Audience,
                           now: datetime) -> Broadcast:
    """The broadcast and its outbox rows, in the caller's transaction."""
    broadcast = Broadcast(text=text, audience=audience.described, created_at=now)
    session.add(broadcast)
    await session.flush()
    recipients = _recipients_query(audience).subquery()
    await session.execute(
        insert(OutboxMessage).from_select(
            ["contact_id", "priority", "essential", "message_key", "params", "actions",
             "broadcast_id", "status", "attempts", "parts_sent", "next_attempt_at",
             "created_at"],
            select(recipients.c.id, literal(int(Purpose.BROADCAST)), literal(False),
                   literal(BROADCAST_KEY), literal({}, JSON), literal([], JSON),
                   literal(broadcast.id), literal(str(OutboxStatus.PENDING)), literal(0),
                   literal(0), literal(now, UTCDateTime()), literal(now, UTCDateTime()))
            .order_by(recipients.c.id),
        )
    )
    broadcast.recipients = await session.scalar(
        select(func.count()).where(OutboxMessage.broadcast_id == broadcast.id)) or 0
    return broadcast
