"""contacts linked by phone: when, the secret of the "this was not me" button, and
contacts the person said were not theirs

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_linked_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("link_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("unlinked_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_column("unlinked_at")
        batch_op.drop_column("link_token")
        batch_op.drop_column("phone_linked_at")
