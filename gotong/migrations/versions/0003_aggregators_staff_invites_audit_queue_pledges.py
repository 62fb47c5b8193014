"""aggregators staff invites audit queue pledges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 03:14:24.212041
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aggregator",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("posko_address", sa.String(length=300), nullable=False),
        sa.Column("posko_hours", sa.String(length=120), nullable=False),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregator")),
    )
    op.create_table(
        "aggregator_area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregator_id"],
            ["aggregator.id"],
            name=op.f("fk_aggregator_area_aggregator_id_aggregator"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["area_id"], ["area.id"], name=op.f("fk_aggregator_area_area_id_area")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregator_area")),
        sa.UniqueConstraint(
            "aggregator_id", "area_id", name=op.f("uq_aggregator_area_aggregator_id_area_id")
        ),
    )
    with op.batch_alter_table("aggregator_area", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_aggregator_area_aggregator_id"), ["aggregator_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_aggregator_area_area_id"), ["area_id"], unique=False)

    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("aggregator_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregator_id"],
            ["aggregator.id"],
            name=op.f("fk_audit_entry_aggregator_id_aggregator"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_audit_entry_contact_id_contact"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_at"), ["at"], unique=False)
        batch_op.create_index(
            "ix_audit_entry_contact_action_at", ["contact_id", "action", "at"], unique=False
        )

    op.create_table(
        "invite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("uses_left", sa.Integer(), nullable=False),
        sa.Column("expires_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregator_id"],
            ["aggregator.id"],
            name=op.f("fk_invite_aggregator_id_aggregator"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_invite_code_hash")),
    )
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invite_aggregator_id"), ["aggregator_id"], unique=False
        )

    op.create_table(
        "pledge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("organisation", sa.Boolean(), nullable=False),
        sa.Column("donor_name", sa.String(length=120), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("received_quantity", sa.BigInteger(), nullable=True),
        sa.Column("target_area_id", sa.Integer(), nullable=True),
        sa.Column("handover", sa.String(length=8), nullable=False),
        sa.Column("pickup_address", sa.String(length=300), nullable=True),
        sa.Column("pickup_window", sa.String(length=120), nullable=True),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregator_id"], ["aggregator.id"], name=op.f("fk_pledge_aggregator_id_aggregator")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_pledge_contact_id_contact")
        ),
        sa.ForeignKeyConstraint(
            ["target_area_id"], ["area.id"], name=op.f("fk_pledge_target_area_id_area")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pledge")),
        sa.UniqueConstraint("code", name=op.f("uq_pledge_code")),
    )
    with op.batch_alter_table("pledge", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pledge_aggregator_id"), ["aggregator_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_pledge_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pledge_status"), ["status"], unique=False)

    op.create_table(
        "staff_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("joined_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregator_id"],
            ["aggregator.id"],
            name=op.f("fk_staff_member_aggregator_id_aggregator"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_staff_member_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_member")),
        sa.UniqueConstraint(
            "contact_id", "aggregator_id", name=op.f("uq_staff_member_contact_id_aggregator_id")
        ),
    )
    with op.batch_alter_table("staff_member", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_member_aggregator_id"), ["aggregator_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_staff_member_contact_id"), ["contact_id"], unique=False
        )

    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("queue_rank", sa.Double(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_help_request_queue",
            ["status", sa.literal_column("queue_rank DESC"), "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.drop_index("ix_help_request_queue")
        batch_op.drop_column("queue_rank")

    with op.batch_alter_table("staff_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_member_contact_id"))
        batch_op.drop_index(batch_op.f("ix_staff_member_aggregator_id"))

    op.drop_table("staff_member")
    with op.batch_alter_table("pledge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pledge_status"))
        batch_op.drop_index(batch_op.f("ix_pledge_contact_id"))
        batch_op.drop_index(batch_op.f("ix_pledge_aggregator_id"))

    op.drop_table("pledge")
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_aggregator_id"))

    op.drop_table("invite")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entry_contact_action_at")
        batch_op.drop_index(batch_op.f("ix_audit_entry_at"))

    op.drop_table("audit_entry")
    with op.batch_alter_table("aggregator_area", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aggregator_area_area_id"))
        batch_op.drop_index(batch_op.f("ix_aggregator_area_aggregator_id"))

    op.drop_table("aggregator_area")
    op.drop_table("aggregator")
