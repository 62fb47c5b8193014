"""dashboard: one-time sign-in links and browser sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_dashboard_link_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dashboard_link_token_hash")),
    )
    with op.batch_alter_table("dashboard_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_link_contact_id"), ["contact_id"], unique=False
        )

    op.create_table(
        "dashboard_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "last_seen_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("expires_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_dashboard_session_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dashboard_session_token_hash")),
    )
    with op.batch_alter_table("dashboard_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_session_contact_id"), ["contact_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_session_contact_id"))
    op.drop_table("dashboard_session")
    with op.batch_alter_table("dashboard_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_link_contact_id"))
    op.drop_table("dashboard_link")
