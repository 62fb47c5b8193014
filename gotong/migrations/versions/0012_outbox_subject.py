"""notices name what they are about, so that one whose subject has moved on is not sent

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows written before have no subject and are sent as they were.
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("still", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("subject_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("subject_assignment", sa.String(length=6),
                                      nullable=True))
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.add_column(sa.Column("still", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("subject_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_column("subject_ids")
        batch_op.drop_column("still")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_column("subject_assignment")
        batch_op.drop_column("subject_ids")
        batch_op.drop_column("still")
