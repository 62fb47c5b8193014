"""proxies who register households on their behalf, and the consent they confirmed

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-21 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _queue_indexes_descending() -> None:
    """On SQLite a batch that adds a foreign key rebuilds help_request, and the rebuild
    loses the DESC of the queue indexes (as 0005 says): create them again as meant."""
    op.drop_index("ix_help_request_queue", table_name="help_request")
    op.drop_index("ix_help_request_village_queue", table_name="help_request")
    op.create_index("ix_help_request_queue", "help_request",
                    ["status", sa.literal_column("queue_rank DESC"), "id"])
    op.create_index("ix_help_request_village_queue", "help_request",
                    ["status", "village_id", sa.literal_column("queue_rank DESC"), "id"])


def upgrade() -> None:
    op.create_table(
        "proxy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("joined_at", gotong.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("invite_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["aggregator_id"], ["aggregator.id"],
                                name=op.f("fk_proxy_aggregator_id_aggregator"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"],
                                name=op.f("fk_proxy_contact_id_contact"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invite_id"], ["invite.id"],
                                name=op.f("fk_proxy_invite_id_invite"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxy")),
        sa.UniqueConstraint("contact_id", "aggregator_id",
                            name=op.f("uq_proxy_contact_id_aggregator_id")),
    )
    with op.batch_alter_table("proxy", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proxy_aggregator_id"), ["aggregator_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_proxy_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_proxy_invite_id"), ["invite_id"], unique=False)
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proxy_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("consent_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("consent_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index(batch_op.f("ix_help_request_proxy_id"), ["proxy_id"],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_help_request_proxy_id_proxy"), "proxy",
                                    ["proxy_id"], ["id"], ondelete="SET NULL")
        batch_op.create_foreign_key(batch_op.f("fk_help_request_consent_by_contact"),
                                    "contact", ["consent_by"], ["id"], ondelete="SET NULL")
    _queue_indexes_descending()


def downgrade() -> None:
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_help_request_consent_by_contact"),
                                 type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_help_request_proxy_id_proxy"),
                                 type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_help_request_proxy_id"))
        batch_op.drop_column("consent_at")
        batch_op.drop_column("consent_by")
        batch_op.drop_column("proxy_id")
    _queue_indexes_descending()
    with op.batch_alter_table("proxy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proxy_invite_id"))
        batch_op.drop_index(batch_op.f("ix_proxy_contact_id"))
        batch_op.drop_index(batch_op.f("ix_proxy_aggregator_id"))
    op.drop_table("proxy")
