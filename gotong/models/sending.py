"""Sending from the outbox: the dispatcher claims the rows that are due and first in line
for their contact, records what became of them, and keeps the table tidy.

Rows of one contact are sent one at a time in (priority, id) order: a row is claimed only
when no earlier row of its contact is still pending or being sent. A claimed row holds a
lease; when the process holding it dies, the lease runs out and the row is sent again
(at least once: only rows in flight at a crash can be sent twice). A notice whose subject
has moved on since it was written is skipped as outdated when it comes to be claimed
(models/subjects.py), however long it waited, on whichever process.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, null, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased

from gotong.models.base import UTCDateTime
from gotong.models.broadcast import Broadcast
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation
from gotong.models.outbox import (
    SETTLED_SQL,
    UNSETTLED,
    Claimed,
    Failure,
    OutboxMessage,
    OutboxStatus,
    Purpose,
)
from gotong.models.subjects import about_of, outdated


# The two ways a row falls due, each claimed by its own walk of ix_outbox_message_due
# (status, priority, id): a condition joining them with OR would make the database read
# and sort every pending row before the batch's LIMIT, which with a broadcast to a city
# queued is a million rows for every claim.
def _due_conditions(now: datetime) -> tuple[Any, Any]:
    return (
        and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.lease_until < now),
    )


async def claim(connection: AsyncConnection, channels: Sequence[str], now: datetime,
                limit: int, lease: timedelta, owner: str,
                chat_gap: timedelta = timedelta(0)) -> tuple[list[Claimed], int]:
    """Claim up to `limit` rows that are due and first in line for their contact, leased
    to `owner` (only it may send and settle them while the lease lasts).

    Returns the claimed rows and how many rows were skipped instead (the contact opted out
    of non-essential messages, or is unreachable, or a direct reply that a newer one to
    the same chat has overtaken: the person has moved on, and an old question sent now
    would only confuse; or a notice whose subject has moved on since it was written: the
    news is outdated). A contact's next row waits until `chat_gap` has passed since
    its last one was answered, whichever process sent that: the platform's limit per
    chat holds across processes. Runs in the caller's transaction; on PostgreSQL rows
    another dispatcher holds are skipped, not waited for.
    """
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
    recent = aliased(OutboxMessage)
    just_sent = exists().where(recent.contact_id == OutboxMessage.contact_id,
                               recent.sent_at > now - chat_gap)
    newer = aliased(OutboxMessage)
    overtaken = and_(m.priority == int(Purpose.REPLY), exists().where(
        newer.contact_id == m.contact_id, newer.priority == int(Purpose.REPLY),
        newer.id > m.id))
    columns = (m.id, m.contact_id, m.priority, m.essential, m.message_key, m.params,
               m.actions, m.body, m.parts_sent, m.attempts, m.timeouts, c.channel, c.chat_id,
               c.language, c.opted_out_at, c.unreachable_at, c.last_inbound_at,
               Conversation.updated_at.label("active_at"),
               Broadcast.text.label("broadcast_text"), held_before.label("held_before"),
               overtaken.label("overtaken"), m.still, m.subject_ids, m.subject_assignment)
    found: list[Row[*tuple[Any, ...]]] = []
    for due in _due_conditions(now):
        query = (
            select(*columns)
            .join(c, c.id == m.contact_id)
            .outerjoin(Conversation, Conversation.contact_id == c.id)
            .outerjoin(Broadcast, Broadcast.id == m.broadcast_id)
            .where(due, c.channel.in_(channels), ~blocked,
                   *([~just_sent] if chat_gap else []))
            .order_by(m.priority, m.id)
            .limit(limit)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(of=m, skip_locked=True)
        found.extend((await connection.execute(query)).all())
    # The first of both walks, in the order one walk over both would have given. (On
    # PostgreSQL the few rows beyond the batch stay locked until the claim commits: the
    # other dispatchers pass over them for that long.)
    found.sort(key=lambda row: (row.priority, row.id))
    claimed: list[Claimed] = []
    skipped: list[dict[str, Any]] = []
    rows = []
    for row in found[:limit]:
        reason = "overtaken" if row.overtaken else _skip_reason(
            row.essential, row.opted_out_at, row.unreachable_at, row.active_at)
        if reason is not None:
            # A person who cannot be reached is a failure staff hear of; the other
            # reasons are the person's choice or news that moved on.
            unreachable = reason == UNREACHABLE
            skipped.append({"row_id": row.id, "reason": reason,
                            "b_failure": Failure.UNREACHABLE if unreachable else None,
                            "b_failed_at": now if unreachable else None})
        else:
            rows.append(row)
    # Read now, in the claim's transaction: whatever waited, and wherever, what is sent is
    # checked against the state of its subject at the moment it is taken to be sent.
    abouts = {row.id: about_of(row.id, row.still, row.subject_ids, row.subject_assignment)
              for row in rows}
    stale = await outdated(connection, {row_id: about for row_id, about in abouts.items()
                                        if about is not None})
    for row in rows:
        if row.id in stale:
            skipped.append({"row_id": row.id, "reason": OUTDATED, "b_failure": None,
                            "b_failed_at": None})
            continue
        claimed.append(Claimed(
            id=row.id, contact_id=row.contact_id, channel=row.channel, chat_id=row.chat_id,
            language=row.language, priority=row.priority, message_key=row.message_key,
            params=row.params or {}, actions=row.actions or [], body=row.body,
            parts_sent=row.parts_sent, attempts=row.attempts,
            broadcast_text=row.broadcast_text, last_inbound_at=row.last_inbound_at,
            held_before=bool(row.held_before), timeouts=row.timeouts,
        ))
    if claimed:
        await connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([c.id for c in claimed]))
            .values(status=OutboxStatus.SENDING, lease_until=now + lease, lease_owner=owner)
        )
    if skipped:
        await connection.execute(_SKIP, skipped)
    return claimed, len(skipped)


# Why a notice whose subject has moved on was skipped (the operator sees it in
# `gotong outbox`).
OUTDATED = "outdated"


UNREACHABLE = "unreachable"


def _skip_reason(essential: bool, opted_out_at: datetime | None,
                 unreachable_at: datetime | None, active_at: datetime | None) -> str | None:
    if unreachable_at is not None and (active_at is None or active_at < unreachable_at):
        return UNREACHABLE
    if not essential and opted_out_at is not None:
        return "opted out"
    return None


_TABLE = OutboxMessage.__table__
_SKIP = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(status=OutboxStatus.SKIPPED, last_error=bindparam("reason"), lease_until=None,
            body=null(), lease_owner=None, failure=bindparam("b_failure"),
            failed_at=bindparam("b_failed_at", type_=UTCDateTime()))
)


# --- recording outcomes -----------------------------------------------------------


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    HELD = "held"
    # The platform never answered again: the message may have arrived; no more copies.
    UNCERTAIN = "uncertain"


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
    # The send timed out: its outcome is unknown (the next copy waits longer).
    timed_out: bool = False
    # Why a row given up on failed (FAILED and UNREACHABLE outcomes).
    failure: Failure | None = None


_SETTLE_SENT = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING,
           _TABLE.c.lease_owner == bindparam("b_owner"))
    .values(status=OutboxStatus.SENT, platform_message_id=bindparam("b_message_id"),
            sent_at=bindparam("b_at", type_=UTCDateTime()), lease_until=None, lease_owner=None,
            attempts=_TABLE.c.attempts + 1, parts_sent=bindparam("b_parts_sent"),
            body=null())
)
_SETTLE_RETRY = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING,
           _TABLE.c.lease_owner == bindparam("b_owner"))
    .values(status=OutboxStatus.PENDING, lease_until=None, lease_owner=None,
            attempts=_TABLE.c.attempts + 1,
            timeouts=_TABLE.c.timeouts + bindparam("b_timed_out"),
            next_attempt_at=bindparam("b_next_attempt_at", type_=UTCDateTime()),
            last_error=bindparam("b_error"), parts_sent=bindparam("b_parts_sent"))
)
_SETTLE_HELD = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING,
           _TABLE.c.lease_owner == bindparam("b_owner"))
    .values(status=OutboxStatus.HELD, lease_until=None, lease_owner=None,
            platform_message_id=bindparam("b_message_id"), last_error=bindparam("b_error"))
)
_SETTLE_FAILED = (
    update(_TABLE)  # type: ignore[arg-type]
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == OutboxStatus.SENDING,
           _TABLE.c.lease_owner == bindparam("b_owner"))
    .values(status=bindparam("b_status"), lease_until=None, lease_owner=None,
            attempts=_TABLE.c.attempts + 1,
            timeouts=_TABLE.c.timeouts + bindparam("b_timed_out"),
            last_error=bindparam("b_error"), parts_sent=bindparam("b_parts_sent"),
            body=null(), failure=bindparam("b_failure"),
            failed_at=bindparam("b_failed_at", type_=UTCDateTime()))
)


async def record(connection: AsyncConnection, results: Sequence[Result], owner: str
                 ) -> list[int]:
    """Write what became of sent rows, in the caller's transaction; the ids of those that
    were no longer `owner`'s to settle.

    Only rows still being sent under the owner's lease are changed: a row whose lease ran
    out and that another dispatcher took over is that dispatcher's to settle.
    """
    lost = list(await connection.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.id.in_([r.row_id for r in results]),
               or_(OutboxMessage.status != OutboxStatus.SENDING,
                   OutboxMessage.lease_owner.is_(None),
                   OutboxMessage.lease_owner != owner)))) if results else []
    by_kind: dict[Outcome, list[dict[str, Any]]] = {o: [] for o in Outcome}
    for r in results:
        by_kind[r.outcome].append({
            # Bind names differ from column names: SQLAlchemy would SET a column that a
            # parameter of an UPDATE names.
            "row_id": r.row_id, "b_message_id": r.platform_message_id, "b_at": r.at,
            "b_error": (r.error or "")[:200] or None, "b_next_attempt_at": r.next_attempt_at,
            "b_parts_sent": r.parts_sent, "b_owner": owner, "b_timed_out": int(r.timed_out),
            "b_status": OutboxStatus.UNCERTAIN if r.outcome is Outcome.UNCERTAIN
            else OutboxStatus.FAILED,
            "b_failure": r.failure, "b_failed_at": r.at if r.failure is not None else None,
        })
    if by_kind[Outcome.SENT]:
        await connection.execute(_SETTLE_SENT, by_kind[Outcome.SENT])
    if by_kind[Outcome.RETRY]:
        await connection.execute(_SETTLE_RETRY, by_kind[Outcome.RETRY])
    if by_kind[Outcome.HELD]:
        await connection.execute(_SETTLE_HELD, by_kind[Outcome.HELD])
    failed = by_kind[Outcome.FAILED] + by_kind[Outcome.UNREACHABLE] + \
        by_kind[Outcome.UNCERTAIN]
    if failed:
        await connection.execute(_SETTLE_FAILED, failed)
    for r in results:
        if r.outcome is Outcome.UNREACHABLE and r.contact_id is not None \
                and r.row_id not in lost:
            await mark_unreachable(connection, r.contact_id, r.at)
    return lost


async def mark_unreachable(connection: AsyncConnection, contact_id: int, now: datetime) -> None:
    """The person blocked the bot or left: skip what waits for them until they write."""
    await connection.execute(
        update(Contact).where(Contact.id == contact_id).values(unreachable_at=now)
    )
    await connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_id == contact_id,
               OutboxMessage.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.SKIPPED, last_error=UNREACHABLE, body=null(),
                failure=Failure.UNREACHABLE, failed_at=now)
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
                        until: datetime, owner: str) -> set[int]:
    """The process holding these rows is alive and still means to send them; the ids of
    those it still holds (the others were taken over while it was held up)."""
    result = await connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(row_ids), OutboxMessage.status == OutboxStatus.SENDING,
               OutboxMessage.lease_owner == owner)
        .values(lease_until=until)
        .returning(OutboxMessage.id)
    )
    return set(result.scalars())


# Rows forgotten per transaction: SQLite has one writer, and the chat must not wait long
# behind a prune.
PRUNE_BATCH = 5000


async def prune(engine: AsyncEngine, before: datetime, batch: int = PRUNE_BATCH) -> int:
    """Forget settled rows written before `before` (they name who was told what); how many.

    In small transactions; each finds its rows by ix_outbox_message_created, reading only
    the rows older than `before` (of which the rows still unsettled, read again by each
    batch, are few: a row waits days only while its contact's platform refuses it)."""
    old = aliased(OutboxMessage)
    forgotten = 0
    while True:
        async with engine.begin() as connection:
            result = await connection.execute(
                delete(OutboxMessage).where(OutboxMessage.id.in_(
                    select(old.id)
                    # The partial index's own predicate, word for word.
                    .where(old.created_at < before, text(SETTLED_SQL))
                    .limit(batch))))
        count = max(result.rowcount or 0, 0)
        forgotten += count
        if count < batch:
            return forgotten


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


async def skip_reasons(session: AsyncSession) -> dict[str, int]:
    """Why the rows kept were skipped (opted out, unreachable, overtaken, outdated), with
    how many each, most first (for the operator)."""
    rows = await session.execute(
        select(OutboxMessage.last_error, func.count())
        .where(OutboxMessage.status == OutboxStatus.SKIPPED)
        .group_by(OutboxMessage.last_error)
        .order_by(func.count().desc(), OutboxMessage.last_error))
    return {reason or "unknown": count for reason, count in rows.all()}


async def latest_failures(session: AsyncSession, limit: int = 10) -> list[OutboxMessage]:
    """The most recent rows given up on, newest first (for the operator)."""
    result = await session.scalars(
        select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED)
        .order_by(OutboxMessage.id.desc()).limit(limit)
    )
    return list(result.all())
