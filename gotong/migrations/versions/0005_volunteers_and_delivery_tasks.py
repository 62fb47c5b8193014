"""volunteers and delivery tasks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 05:16:02.940914
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "volunteer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("travel", sa.String(length=10), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["aggregator_id"],
            ["aggregator.id"],
            name=op.f("fk_volunteer_aggregator_id_aggregator"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_volunteer_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["contact.id"],
            name=op.f("fk_volunteer_decided_by_contact"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volunteer")),
        sa.UniqueConstraint(
            "contact_id", "aggregator_id", name=op.f("uq_volunteer_contact_id_aggregator_id")
        ),
    )
    with op.batch_alter_table("volunteer", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_volunteer_aggregator_id"), ["aggregator_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_volunteer_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_volunteer_status"), ["status"], unique=False)

    op.create_table(
        "volunteer_area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("volunteer_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"], ["area.id"], name=op.f("fk_volunteer_area_area_id_area")
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["volunteer.id"],
            name=op.f("fk_volunteer_area_volunteer_id_volunteer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volunteer_area")),
        sa.UniqueConstraint(
            "volunteer_id", "area_id", name=op.f("uq_volunteer_area_volunteer_id_area_id")
        ),
    )
    with op.batch_alter_table("volunteer_area", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_volunteer_area_area_id"), ["area_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_volunteer_area_volunteer_id"), ["volunteer_id"], unique=False
        )

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("volunteer_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("code", sa.String(length=6), nullable=True))
        batch_op.add_column(
            sa.Column("wrong_codes", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("locked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("failure_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("disputed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("proof_media_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("proof_latitude", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("proof_longitude", sa.Double(), nullable=True))
        batch_op.add_column(
            sa.Column("delivered_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rating_comment", sa.String(length=300), nullable=True))
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=12),
            type_=sa.String(length=20),
            existing_nullable=False,
        )
        batch_op.create_index(
            batch_op.f("ix_delivery_volunteer_id"), ["volunteer_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_delivery_volunteer_id_volunteer"),
            "volunteer",
            ["volunteer_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pre_approved", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_deliveries", sa.Integer(), server_default="0", nullable=False)
        )

    # On SQLite, 0004 rebuilt help_request to add a column, and the rebuild lost the DESC
    # of the queue index: create it again as it is meant to be.
    op.drop_index("ix_help_request_queue", table_name="help_request")
    op.create_index(
        "ix_help_request_queue",
        "help_request",
        ["status", sa.literal_column("queue_rank DESC"), "id"],
    )
    op.create_index(
        "ix_help_request_village_queue",
        "help_request",
        ["status", "village_id", sa.literal_column("queue_rank DESC"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_help_request_village_queue", table_name="help_request")
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.drop_column("failed_deliveries")
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_column("pre_approved")

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_delivery_volunteer_id_volunteer"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_delivery_volunteer_id"))
        batch_op.drop_column("rating_comment")
        batch_op.drop_column("rating")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("proof_longitude")
        batch_op.drop_column("proof_latitude")
        batch_op.drop_column("proof_media_id")
        batch_op.drop_column("disputed")
        batch_op.drop_column("failure_reason")
        batch_op.drop_column("locked")
        batch_op.drop_column("wrong_codes")
        batch_op.drop_column("code")
        batch_op.drop_column("volunteer_id")
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=20),
            type_=sa.String(length=12),
            existing_nullable=False,
        )

    with op.batch_alter_table("volunteer_area", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_volunteer_area_volunteer_id"))
        batch_op.drop_index(batch_op.f("ix_volunteer_area_area_id"))

    op.drop_table("volunteer_area")
    with op.batch_alter_table("volunteer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_volunteer_status"))
        batch_op.drop_index(batch_op.f("ix_volunteer_contact_id"))
        batch_op.drop_index(batch_op.f("ix_volunteer_aggregator_id"))

    op.drop_table("volunteer")
