"""the processes sending on each chat app now, which share its limits

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 22:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_presence",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("alive_until", gotong.models.base.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint("owner", "channel", name=op.f("pk_sender_presence")),
    )


def downgrade() -> None:
    op.drop_table("sender_presence")
