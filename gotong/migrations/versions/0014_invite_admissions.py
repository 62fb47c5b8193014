"""who each invite code let in, and invite codes revoked

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("volunteer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invite_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_volunteer_invite_id"), ["invite_id"],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_volunteer_invite_id_invite"), "invite",
                                    ["invite_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("volunteer", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_volunteer_invite_id_invite"),
                                 type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_volunteer_invite_id"))
        batch_op.drop_column("invite_id")
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
