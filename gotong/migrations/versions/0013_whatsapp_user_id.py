"""whatsapp usernames: a contact's business-scoped user id beside its number, and when its
security code changed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        # A chat id may now be a business-scoped user id, longer than a number.
        batch_op.alter_column("chat_id", existing_type=sa.String(length=64),
                              type_=sa.String(length=128), existing_nullable=False)
        batch_op.add_column(sa.Column("platform_user_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column(
            "identity_changed_at", gotong.models.base.UTCDateTime(timezone=True),
            nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_contact_channel_platform_user_id"), ["channel", "platform_user_id"])


def downgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_contact_channel_platform_user_id"),
                                 type_="unique")
        batch_op.drop_column("identity_changed_at")
        batch_op.drop_column("platform_user_id")
        batch_op.alter_column("chat_id", existing_type=sa.String(length=128),
                              type_=sa.String(length=64), existing_nullable=False)
