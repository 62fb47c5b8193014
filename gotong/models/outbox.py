"""The outbox: every message the bot sends that is not the answer to the update at hand.

A row is written in the transaction of the change that causes it, so a change and the
news of it are committed together or not at all. Rows hold a catalog key and parameters,
rendered in the recipient's language when sent. Direct replies are rows too (already
rendered, in `body`): the channel sends them at once after the commit, and a reply whose
sending failed or whose process died is picked up by the dispatcher like any other row.

Rows of one contact are sent one at a time in (priority, id) order: a row is claimed only
when no earlier row of its contact is still pending or being sent. A claimed row holds a
lease; when the process holding it dies, the lease runs out and the row is sent again
(at least once: only rows in flight at a crash can be sent twice).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from gotong.models.base import Base, UTCDateTime, utcnow
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    SKIPPED = "skipped"
    # Kept until the person writes again (outside WhatsApp's 24-hour window).
    HELD = "held"


class Purpose(enum.IntEnum):
    """Why a row is sent; the value is its priority (lower goes first)."""

    REPLY = 0
    STATUS = 1
    REMINDER = 2
    BROADCAST = 3


OUTBOX_WRITTEN = "outbox_written"

# News is held for a person only after this long without a message from them (WhatsApp
# takes free-form messages for 24 hours after the person's last one; a little less, so
# that a message sent near the end cannot arrive after it).
HELD_AFTER = timedelta(hours=24) - timedelta(minutes=5)

# Rows that still hold back the later rows of their contact.
UNSETTLED = (OutboxStatus.PENDING, OutboxStatus.SENDING)


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_message_due", "status", "priority", "id"),
        Index("ix_outbox_message_contact_status", "contact_id", "status"),
        # Delivery statuses name the platform's message.
        Index("ix_outbox_message_platform_message_id", "platform_message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    priority: Mapped[int]
    # Essential rows (news of the person's own aid, answers) ignore /stop.
    essential: Mapped[bool]
    message_key: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Buttons under the message: [[context, option id, label key], ...].
    actions: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    # A direct reply, already rendered: the serialized replies and the message to edit.
    # Cleared once settled: it can hold what the person wrote (a summary, say).
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("broadcast.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # Messages of a multi-message row already sent, so a retry does not repeat them.
    parts_sent: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


@dataclass(frozen=True)
class Notice:
    """A message for one contact, by catalog key; rendered in their language when sent.

    A parameter given as {"key": "..."} is itself rendered from the catalog (a status
    name, say), so that it too reads in the recipient's language.
    """

    contact_id: int
    key: str
    params: Mapping[str, Any]
    purpose: Purpose = Purpose.STATUS
    essential: bool = True
    actions: tuple[tuple[str, str, str], ...] = ()


def enqueue(session: AsyncSession, notice: Notice, now: datetime,
            broadcast_id: int | None = None) -> OutboxMessage:
    """Add a row for a notice to the caller's unit of work."""
    row = OutboxMessage(
        contact_id=notice.contact_id, priority=int(notice.purpose),
        essential=notice.essential, message_key=notice.key, params=dict(notice.params),
        actions=[list(a) for a in notice.actions], broadcast_id=broadcast_id,
        status=OutboxStatus.PENDING, attempts=0, parts_sent=0, next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    # Read by the unit of work, to wake the dispatcher once the transaction commits.
    session.info[OUTBOX_WRITTEN] = True
    return row


@cache
def _reply_insert() -> Any:
    # Built once: every inbound update writes one.
    table = OutboxMessage.__table__
    return (
        insert(table)  # type: ignore[arg-type]
        .values(contact_id=bindparam("contact_id"), priority=int(Purpose.REPLY),
                essential=True, params={}, actions=[], body=bindparam("body"),
                status=OutboxStatus.SENDING, attempts=0, parts_sent=0,
                next_attempt_at=bindparam("now", type_=UTCDateTime()),
                lease_until=bindparam("lease_until", type_=UTCDateTime()),
                created_at=bindparam("now", type_=UTCDateTime()))
        .returning(table.c.id)
    )


async def enqueue_reply(connection: AsyncConnection, contact_id: int, body: dict[str, Any],
                        now: datetime, lease: timedelta) -> int:
    """Record a direct reply as being sent by this process, within the update's unit of
    work; the dispatcher sends it if this process does not settle it within the lease."""
    result = await connection.execute(_reply_insert(), {
        "contact_id": contact_id, "body": body, "now": now, "lease_until": now + lease,
    })
    return int(result.scalar_one())


# --- claiming ---------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A row claimed for sending, with what the sender needs to know of its contact."""

    id: int
    contact_id: int
    channel: str
    chat_id: str
    language: str
    priority: int
    message_key: str | None
    params: dict[str, Any]
    actions: list[list[str]]
    body: dict[str, Any] | None
    parts_sent: int
    attempts: int
    broadcast_text: str | None
    # When the person last wrote, and whether earlier news already waits for that.
    last_inbound_at: datetime | None = None
    held_before: bool = False


def _due(now: datetime) -> Any:
    return or_(
        and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.lease_until < now),
    )


async def claim(connection: AsyncConnection, channels: Sequence[str], now: datetime,
                limit: int, lease: timedelta) -> tuple[list[Claimed], int]:
    """Claim up to `limit` rows that are due and first in line for their contact.

    Returns the claimed rows and how many rows were skipped instead (the contact opted out
    of non-essential messages, or is unreachable). Runs in the caller's transaction; on
    PostgreSQL rows another dispatcher holds are skipped, not waited for.
    """
    from gotong.models.broadcast import Broadcast  # the broadcast module imports this one

    earlier = aliased(OutboxMessage)
    blocked = exists().where(
        earlier.contact_id == OutboxMessage.contact_id,
        earlier.status.in_(UNSETTLED),
        # Written out rather than as a row comparison, which SQLite would answer by
        # scanning every earlier pending row instead of the contact's index.
        or_(earlier.priority < OutboxMessage.priority,
            and_(earlier.priority == OutboxMessage.priority, earlier.id < OutboxMessage.id)),
    )
    m, c = OutboxMessage, Contact
    held = aliased(OutboxMessage)
    held_before = exists().where(held.contact_id == m.contact_id,
                                 held.status == OutboxStatus.HELD)
    query = (
        select(m.id, m.contact_id, m.priority, m.essential, m.message_key, m.params, m.actions,
               m.body, m.parts_sent, m.attempts, c.channel, c.chat_id, c.language,
               c.opted_out_at, c.unreachable_at, c.last_inbound_at,
               Conversation.updated_at.label("active_at"),
               Broadcast.text.label("broadcast_text"), held_before.label("held_before"))
        .join(c, c.id == m.contact_id)
        .outerjoin(Conversation, Conversation.contact_id == c.id)
        .outerjoin(Broadcast, Broadcast.id == m.broadcast_id)
        .where(_due(now), c.channel.in_(channels), ~blocked)
        .order_by(m.priority, m.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(of=m, skip_locked=True)
    claimed: list[Claimed] = []
    skipped: list[dict[str, Any]] = []
    for row in (await connection.execute(query)).all():
        reason = _skip_reason(row.essential, row.opted_out_at, row.unreachable_at,
                              row.active_at)
        if reason is not None:
            skipped.append({"row_id": row.id, "reason": reason})
            continue
        claimed.append(Claimed(
            id=row.id, contact_id=row.contact_id, channel=row.channel, chat_id=row.chat_id,
            language=row.language, priority=row.priority, message_key=row.message_key,
            params=row.params or {}, actions=row.actions or [], body=row.body,
            parts_sent=row.parts_sent, attempts=row.attempts,
            broadcast_text=row.broadcast_text, last_inbound_at=row.last_inbound_at,
            held_before=bool(row.held_before),
        ))
    if claimed:
        await connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([c.id for c in claimed]))
            .values(status=OutboxStatus.SENDING, lease_until=now + lease)
        )
    if skipped:
        await connection.execute(_SKIP, skipped)
    return claimed, len(skipped)


def _skip_reason(essential: bool, opted_out_at: datetime | None,
                 unreachable_at: datetime | None, active_at: datetime | None) -> str | None:
    if unreachable_at is not None and (active_at is None or active_at < unreachable_at):
        return "unreachable"
    if not essential and opted_out_at is not None:
        return "opted out"
    return None


_TABLE = OutboxMessage.__table__
_SKIP = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(status=OutboxStatus.SKIPPED, last_error=bindparam("reason"), lease_until=None,
            body=null())
)


# --- recording outcomes -----------------------------------------------------------


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    HELD = "held"


@dataclass(frozen=True)
class Result:
    row_id: int
    outcome: Outcome
    at: datetime
    platform_message_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    parts_sent: int = 0
    contact_id: int | None = None


_SETTLE_SENT = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.SENT, platform_message_id=bindparam("b_message_id"),
            sent_at=bindparam("b_at", type_=UTCDateTime()), lease_until=None,
            attempts=_TABLE.c.attempts + 1, parts_sent=bindparam("b_parts_sent"),
            body=null())
)
_SETTLE_RETRY = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.PENDING, lease_until=None, attempts=_TABLE.c.attempts + 1,
            next_attempt_at=bindparam("b_next_attempt_at", type_=UTCDateTime()),
            last_error=bindparam("b_error"), parts_sent=bindparam("b_parts_sent"))
)
_SETTLE_HELD = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.HELD, lease_until=None,
            platform_message_id=bindparam("b_message_id"), last_error=bindparam("b_error"))
)
_SETTLE_FAILED = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.FAILED, lease_until=None, attempts=_TABLE.c.attempts + 1,
            last_error=bindparam("b_error"), parts_sent=bindparam("b_parts_sent"),
            body=null())
)


async def record(connection: AsyncConnection, results: Iterable[Result]) -> None:
    """Write what became of sent rows, in the caller's transaction.

    Only rows still being sent are changed: a row whose lease ran out and that another
    dispatcher took over is that dispatcher's to settle.
    """
    by_kind: dict[Outcome, list[dict[str, Any]]] = {o: [] for o in Outcome}
    for r in results:
        by_kind[r.outcome].append({
            # Bind names differ from column names: SQLAlchemy would SET a column that a
            # parameter of an UPDATE names.
            "row_id": r.row_id, "b_message_id": r.platform_message_id, "b_at": r.at,
            "b_error": (r.error or "")[:200] or None, "b_next_attempt_at": r.next_attempt_at,
            "b_parts_sent": r.parts_sent,
        })
    if by_kind[Outcome.SENT]:
        await connection.execute(_SETTLE_SENT, by_kind[Outcome.SENT])
    if by_kind[Outcome.RETRY]:
        await connection.execute(_SETTLE_RETRY, by_kind[Outcome.RETRY])
    if by_kind[Outcome.HELD]:
        await connection.execute(_SETTLE_HELD, by_kind[Outcome.HELD])
    failed = by_kind[Outcome.FAILED] + by_kind[Outcome.UNREACHABLE]
    if failed:
        await connection.execute(_SETTLE_FAILED, failed)
    for r in results:
        if r.outcome is Outcome.UNREACHABLE and r.contact_id is not None:
            await mark_unreachable(connection, r.contact_id, r.at)


async def mark_unreachable(connection: AsyncConnection, contact_id: int, now: datetime) -> None:
    """The person blocked the bot or left: skip what waits for them until they write."""
    await connection.execute(
        update(Contact).where(Contact.id == contact_id).values(unreachable_at=now)
    )
    await connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_id == contact_id,
               OutboxMessage.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.SKIPPED, last_error="unreachable", body=null())
    )


async def release_held(connection: AsyncConnection, contact_id: int, now: datetime) -> int:
    """The person wrote: what was held for them, on this app or another of theirs, is due
    now, after the answer. Returns how many rows."""
    person = (select(func.coalesce(Contact.person_id, Contact.id))
              .where(Contact.id == contact_id).scalar_subquery())
    theirs = select(Contact.id).where(or_(Contact.id == person, Contact.person_id == person))
    result = await connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_id.in_(theirs),
               OutboxMessage.status == OutboxStatus.HELD)
        .values(status=OutboxStatus.PENDING, next_attempt_at=now, last_error=None))
    return max(result.rowcount or 0, 0)


async def extend_leases(connection: AsyncConnection, row_ids: Sequence[int],
                        until: datetime) -> None:
    """The process holding these rows is alive and still means to send them."""
    await connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(row_ids), OutboxMessage.status == OutboxStatus.SENDING)
        .values(lease_until=until)
    )


async def prune(connection: AsyncConnection, before: datetime) -> int:
    """Forget settled rows written before `before` (they name who was told what)."""
    result = await connection.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.status.not_in(UNSETTLED), OutboxMessage.created_at < before)
    )
    return max(result.rowcount or 0, 0)


async def next_due_at(connection: AsyncConnection, channels: Sequence[str]) -> datetime | None:
    """When the earliest row waiting for a retry or a lease becomes due."""
    moment = func.coalesce(OutboxMessage.lease_until, OutboxMessage.next_attempt_at)
    return await connection.scalar(
        select(func.min(moment))
        .join(Contact, Contact.id == OutboxMessage.contact_id)
        .where(OutboxMessage.status.in_(UNSETTLED), Contact.channel.in_(channels))
    )


async def status_counts(session: AsyncSession, broadcast_id: int | None = None
                        ) -> dict[str, int]:
    query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    if broadcast_id is not None:
        query = query.where(OutboxMessage.broadcast_id == broadcast_id)
    return {status: count for status, count in (await session.execute(query)).all()}


async def latest_failures(session: AsyncSession, limit: int = 10) -> list[OutboxMessage]:
    """The most recent rows given up on, newest first (for the operator)."""
    result = await session.scalars(
        select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED)
        .order_by(OutboxMessage.id.desc()).limit(limit)
    )
    return list(result.all())
