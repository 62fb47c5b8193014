"""Refusing a change the rules do not allow, at the moment of writing it.

A check made on what was read earlier is not enough: on PostgreSQL two people may both
read a delivery as open before either writes. So each rule about the state of a row is
part of the UPDATE that changes it, and of two people changing one row at once the
second matches no row and is refused. A guarded UPDATE that matches no row is no error:
the transaction goes on, and the refused person's answer is committed with the rest of
their unit of work.
"""

from __future__ import annotations

from sqlalchemy import Update
from sqlalchemy.ext.asyncio import AsyncSession


class NotAllowed(Exception):
    """The person may not make this change (not theirs, or too late). The operations
    raise it before they have written anything, so the caller can still answer and commit."""


async def write_guarded(session: AsyncSession, statement: Update, seen: object) -> None:
    """Run an UPDATE of one row whose WHERE holds the rule; NotAllowed, with nothing
    written, when the row no longer meets it (`seen`: what the refusal says was there)."""
    written = await session.execute(statement.execution_options(synchronize_session=False))
    if written.rowcount != 1:  # type: ignore[attr-defined]
        raise NotAllowed(seen)
