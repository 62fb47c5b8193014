"""outbox rows given up on say why in a word staff can read, and when

Revision ID: 0018
Revises: 0017
Create Date: 2027-01-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows given up on before keep no kind of failure: they are listed as of unknown cause,
    # with no time, and never counted in a staff digest.
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column(
            "failed_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outbox_message_failed_at", ["failed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_failed_at")
        batch_op.drop_column("failed_at")
        batch_op.drop_column("failure")
