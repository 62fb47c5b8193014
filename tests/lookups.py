"""Small look-ups of what the database holds, which tests of many modules check."""

from __future__ import annotations

from sqlalchemy import func, select

from gotong.bot.services import Services
from gotong.models.audit import AuditEntry
from gotong.models.outbox import OutboxMessage


async def outbox(services: Services, key: str | None = None, contact_id: int | None = None
                 ) -> list[OutboxMessage]:
    """The outbox's rows in the order they were written: all of them, or those with the
    message key and for the contact where given."""
    query = select(OutboxMessage)
    if key is not None:
        query = query.where(OutboxMessage.message_key == key)
    if contact_id is not None:
        query = query.where(OutboxMessage.contact_id == contact_id)
    async with services.sessions() as session:
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


async def count(services: Services, model: type) -> int:
    """How many rows the table of `model` holds."""
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def audit_log(services: Services) -> list[tuple[str, str]]:
    """The audit trail as (action, outcome), in the order it was written."""
    async with services.sessions() as session:
        rows = (await session.execute(select(AuditEntry.action, AuditEntry.outcome)
                                      .order_by(AuditEntry.id))).all()
    return [(action, outcome) for action, outcome in rows]
