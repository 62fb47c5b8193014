"""The audit log: every staff action and every attempt refused, for the operator.

Entries name the contact and the kind of action, never what a person wrote (a wrong
invite code is recorded as wrong, not as the code).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_contact_action_at", "contact_id", "action", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    aggregator_id: Mapped[int | None] = mapped_column(
        ForeignKey("aggregator.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))
    # "done", or why it was refused ("wrong code", "locked", "not staff", ...).
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(200), default="")


def audit(session: AsyncSession, now: datetime, action: str, outcome: str, *,
          contact_id: int | None = None, aggregator_id: int | None = None,
          detail: str = "") -> None:
    session.add(AuditEntry(at=now, contact_id=contact_id, aggregator_id=aggregator_id,
                           action=action, outcome=outcome, detail=detail[:200]))


async def count_since(session: AsyncSession, contact_id: int, action: str | Sequence[str],
                      outcome: str, since: datetime, aggregator_id: int | None = None
                      ) -> int:
    """The contact's entries of the action (or any of the actions) since then, of one
    aggregator or of any."""
    actions = [action] if isinstance(action, str) else list(action)
    query = select(func.count()).select_from(AuditEntry).where(
        AuditEntry.contact_id == contact_id, AuditEntry.action.in_(actions),
        AuditEntry.outcome == outcome, AuditEntry.at >= since)
    if aggregator_id is not None:
        query = query.where(AuditEntry.aggregator_id == aggregator_id)
    return int(await session.scalar(query) or 0)


async def recent_entries(session: AsyncSession, limit: int = 50,
                         aggregator_id: int | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if aggregator_id is not None:
        query = query.where(AuditEntry.aggregator_id == aggregator_id)
    return list((await session.scalars(query)).all())
