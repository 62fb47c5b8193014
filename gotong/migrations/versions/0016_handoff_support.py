"""support conversations between a person and an aggregator's staff, and their messages

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-15 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_CLOSED = "status <> 'closed'"


def upgrade() -> None:
    utc = gotong.models.base.UTCDateTime(timezone=True)
    op.create_table(
        "support_conversation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=12), nullable=True),
        sa.Column("opened_at", utc, nullable=False),
        sa.Column("last_message_at", utc, nullable=True),
        sa.Column("taken_by", sa.Integer(), nullable=True),
        sa.Column("taken_at", utc, nullable=True),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.Column("closed_at", utc, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("alerted_at", utc, nullable=True),
        sa.ForeignKeyConstraint(["aggregator_id"], ["aggregator.id"],
                                name=op.f("fk_support_conversation_aggregator_id_aggregator"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["area_id"], ["area.id"],
                                name=op.f("fk_support_conversation_area_id_area")),
        sa.ForeignKeyConstraint(["closed_by"], ["contact.id"],
                                name=op.f("fk_support_conversation_closed_by_contact"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"],
                                name=op.f("fk_support_conversation_contact_id_contact"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["taken_by"], ["contact.id"],
                                name=op.f("fk_support_conversation_taken_by_contact"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_conversation")),
    )
    with op.batch_alter_table("support_conversation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_conversation_contact_id"),
                              ["contact_id"], unique=False)
        batch_op.create_index("ix_support_conversation_inbox",
                              ["aggregator_id", "status", "opened_at"], unique=False)
    op.create_index("ix_support_conversation_one_open", "support_conversation",
                    ["contact_id"], unique=True, postgresql_where=sa.text(NOT_CLOSED),
                    sqlite_where=sa.text(NOT_CLOSED))
    op.create_table(
        "support_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("staff_contact_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.String(length=1000), nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["support_conversation.id"],
            name=op.f("fk_support_message_conversation_id_support_conversation"),
            ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_contact_id"], ["contact.id"],
                                name=op.f("fk_support_message_staff_contact_id_contact"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_message")),
    )
    with op.batch_alter_table("support_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_message_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_support_message_conversation_id"),
                              ["conversation_id"], unique=False)


def downgrade() -> None:
    op.drop_table("support_message")
    op.drop_index("ix_support_conversation_one_open", table_name="support_conversation")
    op.drop_table("support_conversation")
