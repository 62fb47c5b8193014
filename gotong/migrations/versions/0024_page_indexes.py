"""indexes for the dashboard's pages at a city's size: the deliveries board by status and
last change, ratings, deliveries per day of an aggregator, requests per day of a
kelurahan

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-28 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RATED = "rating IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_aggregator_board",
                              ["aggregator_id", "status", "updated_at", "id"], unique=False)
        batch_op.create_index("ix_delivery_aggregator_rated",
                              ["aggregator_id", "updated_at", "id", "rating"], unique=False,
                              postgresql_where=sa.text(RATED), sqlite_where=sa.text(RATED))
        batch_op.create_index("ix_delivery_aggregator_delivered",
                              ["aggregator_id", "delivered_at"], unique=False)
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.create_index("ix_help_request_village_created", ["village_id", "created_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("help_request", schema=None) as batch_op:
        batch_op.drop_index("ix_help_request_village_created")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_aggregator_delivered")
        batch_op.drop_index("ix_delivery_aggregator_rated")
        batch_op.drop_index("ix_delivery_aggregator_board")
