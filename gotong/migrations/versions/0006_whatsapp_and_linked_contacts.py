"""whatsapp: the 24-hour window, delivery statuses, one person on two apps

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_inbound_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_contact_person_id"), ["person_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_contact_verified_phone"), ["verified_phone"], unique=False
        )

    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_message_platform_message_id", ["platform_message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_platform_message_id")

    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_verified_phone"))
        batch_op.drop_index(batch_op.f("ix_contact_person_id"))
        batch_op.drop_column("person_id")
        batch_op.drop_column("last_inbound_at")
