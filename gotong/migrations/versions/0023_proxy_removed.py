"""proxies taken out with the invite code that let them in

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-28 11:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proxy", schema=None) as batch_op:
        batch_op.add_column(sa.Column("removed_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proxy", schema=None) as batch_op:
        batch_op.drop_column("removed_at")
