"""inbound updates form one queue per chat: the chat, a lease held by the process handling
the chat's next update, attempts with back-off, and updates set aside

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "processed_at IS NULL AND set_aside_at IS NULL"


def _chat_of(channel: str, payload: dict[str, Any]) -> str:
    """The chat of an update stored before chats were recorded (as models/inbound.py)."""
    if channel == "whatsapp":
        return str(payload.get("from", ""))
    for kind in ("message", "edited_message", "callback_query", "channel_post"):
        part = payload.get(kind)
        if isinstance(part, dict):
            chat = part.get("chat") or (part.get("message") or {}).get("chat") \
                or part.get("from") or {}
            if isinstance(chat, dict) and "id" in chat:
                return str(chat["id"])
    return ""


def upgrade() -> None:
    utc = gotong.models.base.UTCDateTime(timezone=True)
    with op.batch_alter_table("inbound_update", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chat_id", sa.String(length=128), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("next_attempt_at", utc, nullable=True))
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", utc, nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("set_aside_at", utc, nullable=True))
    table = sa.table("inbound_update", sa.column("id", sa.Integer()),
                     sa.column("channel", sa.String()), sa.column("chat_id", sa.String()),
                     sa.column("payload", sa.JSON()), sa.column("processed_at", utc))
    connection = op.get_bind()
    waiting = connection.execute(
        sa.select(table.c.id, table.c.channel, table.c.payload)
        .where(table.c.processed_at.is_(None), table.c.payload.is_not(None))).all()
    for row in waiting:
        connection.execute(sa.update(table).where(table.c.id == row.id)
                           .values(chat_id=_chat_of(row.channel, row.payload)))
    op.create_index("ix_inbound_update_waiting", "inbound_update",
                    ["channel", "chat_id", "id"], unique=False,
                    postgresql_where=sa.text(WAITING), sqlite_where=sa.text(WAITING))


def downgrade() -> None:
    op.drop_index("ix_inbound_update_waiting", table_name="inbound_update")
    with op.batch_alter_table("inbound_update", schema=None) as batch_op:
        for column in ("set_aside_at", "last_error", "lease_until", "lease_owner",
                       "next_attempt_at", "attempts", "chat_id"):
            batch_op.drop_column(column)
