"""Inbound updates, recorded once by their platform id.

The record is the de-duplication point (a replayed update finds its row and is dropped)
and, for webhooks, the durable queue: an update is stored before the platform gets its
200, and one that was stored but not processed is processed after a restart.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, UTCDateTime, utcnow


class InboundUpdate(Base):
    __tablename__ = "inbound_update"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    # The raw update, kept only until it is processed (it holds personal data).
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)


async def store_inbound(
    session: AsyncSession | AsyncConnection, channel: str, external_id: str,
    payload: dict[str, Any] | None, now: datetime,
) -> bool:
    """Record an update before it is processed; False when it was already recorded."""
    dialect = session.dialect if isinstance(session, AsyncConnection) \
        else session.get_bind().dialect
    insert = _insert_for(dialect.name)
    result = await session.execute(
        insert(InboundUpdate)
        .values(channel=channel, external_id=external_id, payload=payload, received_at=now)
        .on_conflict_do_nothing(index_elements=[InboundUpdate.channel,
                                                InboundUpdate.external_id])
        .returning(InboundUpdate.id)
    )
    return result.first() is not None


def _insert_for(dialect: str) -> Any:
    """The INSERT with ON CONFLICT of the database in use."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def claim_inbound(
    connection: AsyncConnection, channel: str, external_id: str, now: datetime
) -> bool:
    """Mark an update processed within the caller's unit of work.

    Returns False when it was processed before (a replay); the caller then drops it.
    One statement on every update: insert the record, or, for one stored by the webhook
    and not yet processed, mark it processed; a processed record matches neither.
    """
    statement = _claim_statement(connection.dialect.name)
    result = await connection.execute(
        statement, {"channel": channel, "external_id": external_id, "now": now}
    )
    return result.first() is not None


@cache
def _claim_statement(dialect: str) -> Any:
    # Built once per dialect: constructing the statement costs more than running it.
    insert = _insert_for(dialect)
    now = bindparam("now", type_=UTCDateTime())
    return (
        insert(InboundUpdate)
        .values(channel=bindparam("channel"), external_id=bindparam("external_id"),
                received_at=now, processed_at=now)
        .on_conflict_do_update(
            index_elements=[InboundUpdate.channel, InboundUpdate.external_id],
            set_={"processed_at": now, "payload": None},
            where=InboundUpdate.processed_at.is_(None),
        )
        .returning(InboundUpdate.id)
    )


async def unprocessed_payloads(session: AsyncSession, channel: str) -> list[dict[str, Any]]:
    """Stored updates that were never processed, oldest first (after a crash)."""
    rows = await session.scalars(
        select(InboundUpdate.payload)
        .where(InboundUpdate.channel == channel, InboundUpdate.processed_at.is_(None),
               InboundUpdate.payload.is_not(None))
        .order_by(InboundUpdate.id)
    )
    return [p for p in rows if p is not None]
