"""a phone a proxy typed for a household waits for the household to confirm it

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-28 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A table of its own rather than columns of help_request: on SQLite a new foreign
    # key there rebuilds the table (0020 says what that costs).
    op.create_table(
        "phone_confirmation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("token", sa.String(length=24), nullable=False),
        sa.Column("asked_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"],
                                name=op.f("fk_phone_confirmation_contact_id_contact"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["request_id"], ["help_request.id"],
                                name=op.f("fk_phone_confirmation_request_id_help_request"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_confirmation")),
        sa.UniqueConstraint("request_id", name=op.f("uq_phone_confirmation_request_id")),
    )
    with op.batch_alter_table("phone_confirmation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phone_confirmation_contact_id"), ["contact_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("phone_confirmation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_confirmation_contact_id"))
    op.drop_table("phone_confirmation")
