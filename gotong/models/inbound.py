"""Inbound updates: one durable queue per chat, shared by every process.

Every update a platform sends (a webhook call, a polled batch) is stored here, keyed by
its platform id, before the platform is answered: a replayed update finds its row and is
dropped, and one that was stored but not yet handled is still waiting in its row.

Any process may handle a chat's next update: it claims the oldest waiting update of a
chat that no live process holds, by writing a lease (its owner name and an expiry) on
that row. A chat's later updates wait while an earlier one is waiting, leased, or backing
off after a failure, so each chat's updates are handled strictly in the order they were
stored. The update is marked handled inside the unit of work that handles it, only while
the lease is still its handler's; a process that died or stalled loses the lease when it
expires, and another takes the chat over. On PostgreSQL claims skip rows that another
process is claiming at the same moment (`FOR UPDATE SKIP LOCKED`).

An update that fails is released with back-off and tried again; the chat waits behind it.
One that fails for a reason other than the database (a bug, a payload the code cannot
read) is set aside after a few tries: recorded with its reason, no longer blocking its
chat, shown to the operator.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Index,
    String,
    UniqueConstraint,
    and_,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from gotong.models.base import Base, UTCDateTime, utcnow
from gotong.models.contact import Contact
from gotong.models.outbox import UNSETTLED, OutboxMessage, Purpose

# The rows still to handle; the partial index over them keeps claims cheap however many
# handled rows the table holds.
_WAITING = "processed_at IS NULL AND set_aside_at IS NULL"


class InboundUpdate(Base):
    __tablename__ = "inbound_update"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_inbound_update_waiting", "channel", "chat_id", "id",
              postgresql_where=text(_WAITING), sqlite_where=text(_WAITING)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    # The chat whose queue the update is in ("" for records that are no one's turn).
    chat_id: Mapped[str] = mapped_column(String(128), default="", server_default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    # The raw update, kept only until it is processed (it holds personal data).
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    # Why the last attempt failed: the kind of error only, never what the person wrote.
    last_error: Mapped[str | None] = mapped_column(String(200))
    set_aside_at: Mapped[datetime | None]


class LeaseLost(Exception):
    """An update's lease is no longer its handler's: another process took the chat over
    (the handler's unit of work is rolled back)."""


class Stored(enum.Enum):
    NEW = "new"
    # Stored before and not handled yet: a redelivery, which the queue still holds.
    WAITING = "waiting"
    # Handled (or set aside) before: a replay, dropped.
    DONE = "done"


def _insert_for(dialect: str) -> Any:
    """The INSERT with ON CONFLICT of the database in use."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def store_inbound(connection: AsyncConnection | AsyncSession, channel: str,
                        external_id: str, chat_id: str, payload: dict[str, Any] | None,
                        now: datetime, *, handled: bool = False) -> Stored:
    """Record an update in its chat's queue (or, `handled`, only as seen: a record that
    makes a replay of it a no-op)."""
    dialect = connection.dialect if isinstance(connection, AsyncConnection) \
        else connection.get_bind().dialect
    insert = _insert_for(dialect.name)
    result = await connection.execute(
        insert(InboundUpdate)
        .values(channel=channel, external_id=external_id, chat_id=chat_id,
                payload=None if handled else payload, received_at=now,
                processed_at=now if handled else None)
        .on_conflict_do_nothing(index_elements=[InboundUpdate.channel,
                                                InboundUpdate.external_id])
        .returning(InboundUpdate.id)
    )
    if result.first() is not None:
        return Stored.NEW
    row = (await connection.execute(
        select(InboundUpdate.processed_at, InboundUpdate.set_aside_at)
        .where(InboundUpdate.channel == channel, InboundUpdate.external_id == external_id)
    )).first()
    if row is not None and row.processed_at is None and row.set_aside_at is None:
        return Stored.WAITING
    return Stored.DONE


@dataclass(frozen=True)
class ToStore:
    channel: str
    external_id: str
    chat_id: str
    payload: dict[str, Any]
    # An update no one answers: recorded as seen (so that a replay of it is dropped),
    # never queued, and without its payload.
    seen_only: bool = False


async def store_batch(connection: AsyncConnection, updates: Sequence[ToStore], now: datetime
                      ) -> list[Stored]:
    """Record updates that arrived together in their chats' queues, in one statement (and
    one more for those seen before); what became of each, in order."""
    insert = _insert_for(connection.dialect.name)
    rows = [{"channel": u.channel, "external_id": u.external_id, "chat_id": u.chat_id,
             "payload": None if u.seen_only else u.payload, "received_at": now,
             "processed_at": now if u.seen_only else None} for u in updates]
    # The rows as parameters of one cached statement, which SQLAlchemy sends as one
    # multi-row INSERT: rows inside the statement (`.values(rows)`) would make it a new
    # statement, compiled again, for every batch.
    stored = await connection.execute(
        insert(InboundUpdate)
        .on_conflict_do_nothing(index_elements=[InboundUpdate.channel,
                                                InboundUpdate.external_id])
        .returning(InboundUpdate.channel, InboundUpdate.external_id), rows)
    new = {(row.channel, row.external_id) for row in stored.all()}
    seen_before = [u for u in updates if (u.channel, u.external_id) not in new]
    waiting: set[tuple[str, str]] = set()
    for channel in {u.channel for u in seen_before}:
        ids = [u.external_id for u in seen_before if u.channel == channel]
        found = await connection.execute(
            select(InboundUpdate.external_id)
            .where(InboundUpdate.channel == channel, InboundUpdate.external_id.in_(ids),
                   _waiting(InboundUpdate)))
        waiting |= {(channel, external_id) for external_id in found.scalars()}
    results: list[Stored] = []
    for u in updates:
        key = (u.channel, u.external_id)
        if key in new:
            # The same update twice in one batch (sent again at once): stored once.
            new.discard(key)
            if not u.seen_only:
                waiting.add(key)
            results.append(Stored.NEW)
        else:
            results.append(Stored.WAITING if key in waiting else Stored.DONE)
    return results


@dataclass(frozen=True)
class QueuedUpdate:
    """A claimed update: its handler holds the chat until `lease_until`."""

    id: int
    channel: str
    chat_id: str
    external_id: str
    payload: dict[str, Any]
    attempts: int
    owner: str
    lease_until: datetime


def _waiting(table: Any) -> Any:
    return and_(table.processed_at.is_(None), table.set_aside_at.is_(None))


@cache
def _first_waiting_statement(dialect: str) -> Any:
    """The oldest waiting update of each chat that can be claimed now; built once per
    dialect (constructing it costs more than running it).

    Both conditions on other rows are subqueries that do not refer to the update at hand,
    so the database computes each once per claim, from the rows still to handle and the
    answers still to send, whatever its statistics say. Written as correlated NOT EXISTS,
    a database whose statistics still describe empty queues (a new one, minutes into its
    first burst) joined them as nested loops over every contact and each one's past
    answers, per waiting update: seconds per claim, with every chat stalled meanwhile."""
    u = InboundUpdate
    earlier = aliased(InboundUpdate)
    reply, contact = aliased(OutboxMessage), aliased(Contact)
    now = bindparam("now", type_=UTCDateTime())
    channels: Any = bindparam("channels", expanding=True)
    # Only the chat's oldest waiting update: the others wait their turn.
    firsts = (select(func.min(earlier.id))
              .where(_waiting(earlier), earlier.channel.in_(channels))
              .group_by(earlier.channel, earlier.chat_id))
    # Chats whose last answer is not settled, unless it is one this process sent itself a
    # moment ago ("answered_here"; not one its dispatcher is sending for a process that
    # died): their next answer could overtake it.
    unsettled = (select(contact.channel, contact.chat_id)
                 .join(reply, reply.contact_id == contact.id)
                 .where(reply.priority == int(Purpose.REPLY),
                        reply.status.in_(UNSETTLED),
                        or_(reply.lease_owner.is_distinct_from(bindparam("owner")),
                            contact.chat_id.not_in(
                                bindparam("answered_here", expanding=True)))))
    if dialect == "postgresql":
        # Computed once, before the scan, as an array (an IN would be planned as a join,
        # which such statistics make a nested loop over the waiting rows once per row).
        first = u.id == any_(func.array(firsts.scalar_subquery()))
    else:
        first = u.id.in_(firsts)  # SQLite computes an uncorrelated IN once
    query = (
        select(u.id, u.channel, u.chat_id)
        .where(first, _waiting(u),
               or_(u.next_attempt_at.is_(None), u.next_attempt_at <= now),
               or_(u.lease_until.is_(None), u.lease_until < now),
               tuple_(u.channel, u.chat_id).not_in(unsettled))
        .order_by(u.id)
        .limit(bindparam("limit"))
    )
    if dialect == "postgresql":
        query = query.with_for_update(of=u, skip_locked=True)
    return query


@cache
def _lease_chats_statement() -> Any:
    """Lease every waiting update of the given chats of one channel, and return them."""
    u = InboundUpdate
    return (
        update(InboundUpdate)
        # Bind names differ from column names: SQLAlchemy would SET a column that a
        # parameter of an UPDATE names.
        .where(_waiting(u), u.channel == bindparam("b_channel"),
               u.chat_id.in_(bindparam("b_chats", expanding=True)))
        .values(lease_owner=bindparam("b_owner"),
                lease_until=bindparam("b_until", type_=UTCDateTime()))
        .returning(u.id, u.chat_id, u.external_id, u.payload, u.attempts)
    )


async def claim_waiting(connection: AsyncConnection, owner: str, channels: Sequence[str],
                        now: datetime, lease: timedelta, chats: int,
                        answered_here: Sequence[str] = ()) -> list[list[QueuedUpdate]]:
    """Lease the waiting updates of up to `chats` chats that no one holds, in stored
    order, the chats with the oldest updates first.

    A chat is claimable when its oldest waiting update is due and not leased, and its
    last answer is settled (being sent, or left to a dispatcher by a process that died or
    failed to send it, the next answer would overtake it). In the chats of
    `answered_here`, whose last answer this process (`owner`) has just sent itself, an
    answer it holds counts as settled: only the dispatcher's writing it down is to come.
    Not elsewhere: an answer this process holds may be one its dispatcher is sending for
    a process that died, in several messages, a second apart. Its later updates
    come with it: the claimant handles them one after another without claiming again,
    and nobody else can take them while the first waits. Runs in the caller's
    transaction, which should commit at once: the leases, not the transaction, keep other
    processes off the chats.
    """
    firsts = (await connection.execute(
        _first_waiting_statement(connection.dialect.name),
        {"now": now, "channels": list(channels), "limit": chats, "owner": owner,
         "answered_here": list(answered_here)})).all()
    if not firsts:
        return []
    batches: dict[tuple[str, str], list[QueuedUpdate]] = {}
    until = now + lease
    for channel in {row.channel for row in firsts}:
        chat_ids = [row.chat_id for row in firsts if row.channel == channel]
        rows = (await connection.execute(
            _lease_chats_statement(),
            {"b_channel": channel, "b_chats": chat_ids, "b_owner": owner,
             "b_until": until})).all()
        for row in sorted(rows, key=lambda r: r.id):
            batches.setdefault((channel, row.chat_id), []).append(QueuedUpdate(
                row.id, channel, row.chat_id, row.external_id, row.payload or {},
                row.attempts, owner, until))
    # The chats with the oldest first update first.
    return sorted(batches.values(), key=lambda batch: batch[0].id)


@cache
def finish_statement() -> Any:
    # Built once: constructing the statement costs more than running it.
    now = bindparam("now", type_=UTCDateTime())
    return (
        update(InboundUpdate)
        .where(InboundUpdate.id == bindparam("update_id"),
               InboundUpdate.lease_owner == bindparam("owner"),
               InboundUpdate.processed_at.is_(None))
        .values(processed_at=now, payload=None, lease_owner=None, lease_until=None)
        .returning(InboundUpdate.id)
    )


async def finish_inbound(connection: AsyncConnection, update_id: int, owner: str,
                         now: datetime) -> bool:
    """Mark a claimed update handled, in the unit of work that handles it.

    False when the lease is no longer the caller's (it expired and another process took
    the chat over): the caller must then roll its unit of work back.
    """
    result = await connection.execute(finish_statement(),
                                      finish_values(update_id, owner, now))
    return result.first() is not None


def finish_values(update_id: int, owner: str, now: datetime) -> dict[str, Any]:
    """finish_statement's parameters."""
    return {"update_id": update_id, "owner": owner, "now": now}


async def release_leases(connection: AsyncConnection, update_ids: Sequence[int],
                         owner: str) -> None:
    """Give back claimed updates untouched (those of a chat after one that failed, or
    whose answer could not be sent now): the chat is claimed again in its turn."""
    if update_ids:
        await connection.execute(
            update(InboundUpdate)
            .where(InboundUpdate.id.in_(update_ids), InboundUpdate.lease_owner == owner,
                   InboundUpdate.processed_at.is_(None))
            .values(lease_owner=None, lease_until=None))


async def release_inbound(connection: AsyncConnection, update_id: int, owner: str,
                          now: datetime, error: str, retry_at: datetime | None) -> None:
    """Give a claimed update back after a failed attempt: tried again from `retry_at`, or
    (None) set aside for good, letting its chat go on."""
    values: dict[str, Any] = {"attempts": InboundUpdate.attempts + 1,
                              "last_error": error[:200], "lease_owner": None,
                              "lease_until": None, "next_attempt_at": retry_at}
    if retry_at is None:
        values["set_aside_at"] = now
    await connection.execute(
        update(InboundUpdate)
        .where(InboundUpdate.id == update_id, InboundUpdate.lease_owner == owner,
               InboundUpdate.processed_at.is_(None))
        .values(**values))


async def next_turn_at(connection: AsyncConnection, channels: Sequence[str]
                       ) -> datetime | None:
    """When the earliest waiting update that cannot be claimed now becomes claimable (a
    back-off or a lease running out)."""
    u = InboundUpdate
    return await connection.scalar(
        select(func.min(func.coalesce(u.lease_until, u.next_attempt_at)))
        .where(_waiting(u), u.channel.in_(channels),
               or_(u.lease_until.is_not(None), u.next_attempt_at.is_not(None))))


# Rows deleted per transaction when old ones are forgotten: SQLite has one writer, and
# the updates coming in must not wait long behind a prune.
PRUNE_BATCH = 5000


async def prune_inbound(engine: AsyncEngine, before: datetime,
                        batch: int = PRUNE_BATCH) -> int:
    """Forget updates handled, recorded or set aside before `before` (past the window in
    which a platform may still send them again); how many. Updates still waiting stay.

    In small transactions; each finds its rows by the index on `processed_at` (set
    aside ones have none, and are few)."""
    old = aliased(InboundUpdate)
    forgotten = 0
    for done in (old.processed_at < before,
                 and_(old.processed_at.is_(None), old.set_aside_at < before)):
        while True:
            async with engine.begin() as connection:
                result = await connection.execute(
                    delete(InboundUpdate).where(
                        InboundUpdate.id.in_(select(old.id).where(done).limit(batch))))
            count = max(result.rowcount or 0, 0)
            forgotten += count
            if count < batch:
                break
    return forgotten


@dataclass(frozen=True)
class SetAside:
    id: int
    channel: str
    received_at: datetime
    set_aside_at: datetime
    attempts: int
    reason: str


async def inbound_counts(session: AsyncSession) -> tuple[int, int]:
    """How many updates wait to be handled, and how many were set aside."""
    u = InboundUpdate
    waiting = await session.scalar(select(func.count()).select_from(u).where(_waiting(u)))
    aside = await session.scalar(
        select(func.count()).select_from(u)
        .where(u.processed_at.is_(None), u.set_aside_at.is_not(None)))
    return waiting or 0, aside or 0


async def set_aside_updates(session: AsyncSession, limit: int = 10) -> list[SetAside]:
    """The latest updates set aside, with why (the kind of error)."""
    u = InboundUpdate
    rows = (await session.execute(
        select(u.id, u.channel, u.received_at, u.set_aside_at, u.attempts, u.last_error)
        .where(u.processed_at.is_(None), u.set_aside_at.is_not(None))
        .order_by(u.set_aside_at.desc()).limit(limit))).all()
    return [SetAside(r.id, r.channel, r.received_at, r.set_aside_at, r.attempts,
                     r.last_error or "") for r in rows]
