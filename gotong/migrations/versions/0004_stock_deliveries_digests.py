"""stock, deliveries, digests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:31:37.997053
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("essential", sa.Boolean(), nullable=False),
        sa.Column("changed_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", gotong.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_digest_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest")),
        sa.UniqueConstraint("contact_id", "topic", name=op.f("uq_digest_contact_id_topic")),
    )
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.create_index("ix_digest_changed_at", ["changed_at"], unique=False)

    op.create_table(
        "stock_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregator_id"],
            ["aggregator.id"],
            name=op.f("fk_stock_item_aggregator_id_aggregator"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_item")),
        sa.UniqueConstraint(
            "aggregator_id", "category", name=op.f("uq_stock_item_aggregator_id_category")
        ),
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("override_reason", sa.String(length=200), nullable=True),
        sa.Column("allocated_by", sa.Integer(), nullable=True),
        sa.Column("created_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregator_id"], ["aggregator.id"], name=op.f("fk_delivery_aggregator_id_aggregator")
        ),
        sa.ForeignKeyConstraint(
            ["allocated_by"],
            ["contact.id"],
            name=op.f("fk_delivery_allocated_by_contact"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["help_request.id"], name=op.f("fk_delivery_request_id_help_request")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_aggregator_created", ["aggregator_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_delivery_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_status"), ["status"], unique=False)

    op.create_table(
        "delivery_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("pledge_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["delivery.id"],
            name=op.f("fk_delivery_source_delivery_id_delivery"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pledge_id"], ["pledge.id"], name=op.f("fk_delivery_source_pledge_id_pledge")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_source")),
    )
    with op.batch_alter_table("delivery_source", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_source_delivery_id"), ["delivery_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_delivery_source_pledge_id"), ["pledge_id"], unique=False
        )

    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("served_before", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("pledge", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("allocated_quantity", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("delivered_quantity", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("pledge", schema=None) as batch_op:
        batch_op.drop_column("delivered_quantity")
        batch_op.drop_column("allocated_quantity")

    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.drop_column("served_before")

    with op.batch_alter_table("delivery_source", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_source_pledge_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_source_delivery_id"))

    op.drop_table("delivery_source")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_status"))
        batch_op.drop_index(batch_op.f("ix_delivery_request_id"))
        batch_op.drop_index("ix_delivery_aggregator_created")

    op.drop_table("delivery")
    op.drop_table("stock_item")
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_index("ix_digest_changed_at")

    op.drop_table("digest")
