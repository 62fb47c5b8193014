"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 23:32:48.489531
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "area",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(["parent_id"], ["area.id"], name=op.f("fk_area_parent_id_area")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_area")),
    )
    with op.batch_alter_table("area", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_area_code"), ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_area_level"), ["level"], unique=False)
        batch_op.create_index(batch_op.f("ix_area_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("verified_phone", sa.String(length=20), nullable=True),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint("channel", "chat_id", name=op.f("uq_contact_channel_chat_id")),
    )
    op.create_table(
        "inbound_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_update")),
        sa.UniqueConstraint(
            "channel", "external_id", name=op.f("uq_inbound_update_channel_external_id")
        ),
    )
    with op.batch_alter_table("inbound_update", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_update_processed_at"), ["processed_at"], unique=False
        )

    op.create_table(
        "conversation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("dialog", sa.String(length=32), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("scratch", sa.JSON(), nullable=False),
        sa.Column("invalid_attempts", sa.Integer(), nullable=False),
        sa.Column("reminded_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_conversation_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation")),
        sa.UniqueConstraint("contact_id", name=op.f("uq_conversation_contact_id")),
    )
    op.create_table(
        "help_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=12), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("head_name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("nik_hash", sa.String(length=64), nullable=True),
        sa.Column("nik_last4", sa.String(length=4), nullable=True),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("rt", sa.String(length=3), nullable=False),
        sa.Column("rw", sa.String(length=3), nullable=False),
        sa.Column("household_size", sa.Integer(), nullable=False),
        sa.Column("vulnerabilities", sa.JSON(), nullable=False),
        sa.Column("needs", sa.JSON(), nullable=False),
        sa.Column("needs_other", sa.String(length=200), nullable=True),
        sa.Column("identity_key", sa.String(length=400), nullable=False),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("duplicate_reasons", sa.JSON(), nullable=False),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_help_request_contact_id_contact")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["help_request.id"],
            name=op.f("fk_help_request_duplicate_of_id_help_request"),
        ),
        sa.ForeignKeyConstraint(
            ["village_id"], ["area.id"], name=op.f("fk_help_request_village_id_area")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_request")),
        sa.UniqueConstraint("reference", name=op.f("uq_help_request_reference")),
    )
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_help_request_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_help_request_identity_key"), ["identity_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_help_request_nik_hash"), ["nik_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_help_request_phone"), ["phone"], unique=False)
        batch_op.create_index(batch_op.f("ix_help_request_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_help_request_village_id"), ["village_id"], unique=False
        )

    op.create_table(
        "request_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actor_contact_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_contact_id"],
            ["contact.id"],
            name=op.f("fk_request_event_actor_contact_id_contact"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["help_request.id"],
            name=op.f("fk_request_event_request_id_help_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_event")),
    )
    with op.batch_alter_table("request_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_event_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("request_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_event_request_id"))

    op.drop_table("request_event")
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_help_request_village_id"))
        batch_op.drop_index(batch_op.f("ix_help_request_status"))
        batch_op.drop_index(batch_op.f("ix_help_request_phone"))
        batch_op.drop_index(batch_op.f("ix_help_request_nik_hash"))
        batch_op.drop_index(batch_op.f("ix_help_request_identity_key"))
        batch_op.drop_index(batch_op.f("ix_help_request_contact_id"))

    op.drop_table("help_request")
    op.drop_table("conversation")
    with op.batch_alter_table("inbound_update", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_update_processed_at"))

    op.drop_table("inbound_update")
    op.drop_table("contact")
    with op.batch_alter_table("area", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_area_parent_id"))
        batch_op.drop_index(batch_op.f("ix_area_level"))
        batch_op.drop_index(batch_op.f("ix_area_code"))

    op.drop_table("area")
