"""numbers a proxy typed: refusals and questions per day kept by a keyed hash, contacts
made only for the question, and when (and from what number) a household confirmed

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-29 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "number_asked",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number_key", sa.String(length=64), nullable=False),
        sa.Column("window_start", gotong.models.base.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column("asks", sa.Integer(), nullable=False),
        sa.Column("declined_at", gotong.models.base.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column("declined_for", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["declined_for"], ["contact.id"],
                                name=op.f("fk_number_asked_declined_for_contact"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_number_asked")),
        sa.UniqueConstraint("number_key", name=op.f("uq_number_asked_number_key")),
    )
    # Nullable columns without a foreign key: added in place on both databases, without
    # rebuilding the tables (a city's contacts and requests).
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proxy_typed_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_confirmed_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("phone_confirmed_new", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.drop_column("phone_confirmed_new")
        batch_op.drop_column("phone_confirmed_at")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_column("proxy_typed_at")
    op.drop_table("number_asked")
