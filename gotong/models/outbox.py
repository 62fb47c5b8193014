"""The outbox: every message the bot sends that is not the answer to the update at hand.

A row is written in the transaction of the change that causes it, so a change and the
news of it are committed together or not at all. Rows hold a catalog key and parameters,
rendered in the recipient's language when sent. Direct replies are rows too (already
rendered, in `body`): the channel sends them at once after the commit, and a reply whose
sending failed or whose process died is picked up by the dispatcher like any other row.

Rows of one contact are sent one at a time in (priority, id) order: a row is claimed only
when no earlier row of its contact is still pending or being sent. A claimed row holds a
lease; when the process holding it dies, the lease runs out and the row is sent again
(at least once: only rows in flight at a crash can be sent twice); models/sending.py
claims and settles them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Index,
    String,
    bindparam,
    insert,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, UTCDateTime, utcnow


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
    # Sent, but the platform never answered, twice: it may or may not have arrived, and
    # a third copy is not worth the risk of a second.
    UNCERTAIN = "uncertain"


class Failure(enum.StrEnum):
    """Why a row was given up on, in a word that staff are shown in plain words."""

    # The person blocked the bot, or is not (or no longer) on the app: nothing reaches them
    # until they write again.
    UNREACHABLE = "unreachable"
    # WhatsApp will not send this kind of message to a person known by their username
    # alone (131062); free text within 24 hours of their message can go.
    NOT_FOR_USERNAME = "not_for_username"
    # WhatsApp refused the template (missing in that language, not approved, paused...).
    TEMPLATE_REFUSED = "template_refused"
    # The app refused the message for good (spam limit, a message it will never take).
    REFUSED = "refused"
    # Failed again and again (network, the app's servers, its limits) until given up on.
    GAVE_UP = "gave_up"
    # The app said it failed, without a reason we know.
    UNKNOWN = "unknown"


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
# The predicates of the partial indexes, literal so that a query that repeats them word
# for word (`prune`) is seen to be served by them on both databases.
SETTLED_SQL = "status NOT IN ('pending', 'sending')"
ANSWERED_SQL = "platform_message_id IS NOT NULL"
FAILED_SQL = "failed_at IS NOT NULL"


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    # A broadcast writes a row per person, a million in a city: each index and each
    # foreign key is paid a million times. So the indexes that only settled, answered or
    # failed rows need leave pending rows out (a row enters them as it is sent, at the
    # platform's pace), and the keys to contact and broadcast are not foreign keys:
    # every row is written from its contact (a broadcast's from the contact table, in
    # the same statement), contacts are tombstoned rather than deleted (the demo's reset
    # deletes their rows first), and broadcasts are never deleted. Checking each of a
    # broadcast's rows against both tables took 60% of queueing it on PostgreSQL.
    __table_args__ = (
        Index("ix_outbox_message_due", "status", "priority", "id"),
        Index("ix_outbox_message_contact_status", "contact_id", "status"),
        # Old settled rows are forgotten by age, in small batches (sending.prune).
        Index("ix_outbox_message_created", "created_at",
              postgresql_where=text(SETTLED_SQL), sqlite_where=text(SETTLED_SQL)),
        # Delivery statuses name the platform's message.
        Index("ix_outbox_message_platform_message_id", "platform_message_id",
              postgresql_where=text(ANSWERED_SQL), sqlite_where=text(ANSWERED_SQL)),
        # The rows given up on, newest first (models/failures).
        Index("ix_outbox_message_failed_at", "failed_at",
              postgresql_where=text(FAILED_SQL), sqlite_where=text(FAILED_SQL)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int]
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
    broadcast_id: Mapped[int | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # Messages of a multi-message row already sent, so a retry does not repeat them.
    parts_sent: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    # The process holding the lease: only it may send the row or settle it.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    # Sends whose answer never came (timed out): the message may have arrived.
    timeouts: Mapped[int] = mapped_column(default=0, server_default="0")
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(String(200))
    # Why and when the row was given up on (or skipped for a person who cannot be
    # reached): what staff see of it (models/failures.py).
    failure: Mapped[str | None] = mapped_column(String(20))
    failed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # What the notice is about (its About), checked when it is claimed: a notice whose
    # subject has moved on since is skipped as outdated rather than sent stale. None for
    # replies, broadcasts and news that stays true once it happened.
    still: Mapped[str | None] = mapped_column(String(40))
    subject_ids: Mapped[list[int] | None] = mapped_column(JSON)
    subject_assignment: Mapped[str | None] = mapped_column(String(6))


@dataclass(frozen=True)
class About:
    """What a notice is about, to tell when it is sent whether it is still worth sending.

    `still` names what must still hold (a rule of models/notifications, by name: rows
    outlive a release); `ids` are the rows it must hold of, a request, a delivery, a
    pledge, a volunteer or a conversation as the rule says (a digest tells of several:
    it is worth sending while the rule holds of any of them); `assignment` is the
    delivery's code when the notice was written, which names the delivery's giving to a
    volunteer that the notice told of: a delivery given to another volunteer, or to the
    same one again, gets a new code (and a notice of its own).
    """

    still: str
    ids: tuple[int, ...]
    assignment: str | None = None


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
    about: About | None = None


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
    if notice.about is not None:
        row.still = notice.about.still
        row.subject_ids = list(notice.about.ids)
        row.subject_assignment = notice.about.assignment
    session.add(row)
    # Read by the unit of work, to wake the dispatcher once the transaction commits.
    session.info[OUTBOX_WRITTEN] = True
    return row


@cache
def reply_insert() -> Any:
    # Built once: every inbound update writes one.
    table = OutboxMessage.__table__
    return (
        insert(table)  # type: ignore[arg-type]
        .values(contact_id=bindparam("contact_id"), priority=int(Purpose.REPLY),
                essential=True, params={}, actions=[], body=bindparam("body"),
                status=OutboxStatus.SENDING, attempts=0, parts_sent=0, timeouts=0,
                next_attempt_at=bindparam("now", type_=UTCDateTime()),
                lease_until=bindparam("lease_until", type_=UTCDateTime()),
                lease_owner=bindparam("owner"),
                created_at=bindparam("now", type_=UTCDateTime()))
        .returning(table.c.id)
    )


async def enqueue_reply(connection: AsyncConnection, contact_id: int, body: dict[str, Any],
                        now: datetime, lease: timedelta, owner: str) -> int:
    """Record a direct reply as being sent by `owner` (this process), within the update's
    unit of work; a dispatcher sends it if the owner does not settle it within the
    lease."""
    result = await connection.execute(reply_insert(),
                                      reply_values(contact_id, body, now, lease, owner))
    return int(result.scalar_one())


def reply_values(contact_id: int, body: dict[str, Any], now: datetime, lease: timedelta,
                 owner: str) -> dict[str, Any]:
    """reply_insert's parameters."""
    return {"contact_id": contact_id, "body": body, "now": now, "lease_until": now + lease,
            "owner": owner}


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
    # Earlier sends of the row whose answer never came: the next one waits longer.
    timeouts: int = 0
