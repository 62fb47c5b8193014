"""figures per day: requests by the time they were made, deliveries by the time they
arrived

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 16:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_help_request_created", "help_request", ["created_at"], unique=False)
    op.create_index("ix_delivery_delivered", "delivery", ["delivered_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_delivered", table_name="delivery")
    op.drop_index("ix_help_request_created", table_name="help_request")
