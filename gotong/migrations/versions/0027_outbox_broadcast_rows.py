"""outbox rows cheap enough for a broadcast to a city: no foreign keys to contact and
broadcast, and the indexes that only settled, answered or failed rows need made partial

Revision ID: 0027
Revises: 0026
Create Date: 2027-01-05 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLED = "status NOT IN ('pending', 'sending')"
ANSWERED = "platform_message_id IS NOT NULL"
FAILED = "failed_at IS NOT NULL"
PARTIAL = (("ix_outbox_message_created", "created_at", SETTLED),
           ("ix_outbox_message_platform_message_id", "platform_message_id", ANSWERED),
           ("ix_outbox_message_failed_at", "failed_at", FAILED))


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_constraint("fk_outbox_message_contact_id_contact", type_="foreignkey")
        batch_op.drop_constraint("fk_outbox_message_broadcast_id_broadcast",
                                 type_="foreignkey")
        for name, column, where in PARTIAL:
            batch_op.drop_index(name)
            batch_op.create_index(name, [column], unique=False,
                                  postgresql_where=sa.text(where),
                                  sqlite_where=sa.text(where))


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        for name, column, _ in PARTIAL:
            batch_op.drop_index(name)
            batch_op.create_index(name, [column], unique=False)
        batch_op.create_foreign_key("fk_outbox_message_broadcast_id_broadcast", "broadcast",
                                    ["broadcast_id"], ["id"], ondelete="CASCADE")
        batch_op.create_foreign_key("fk_outbox_message_contact_id_contact", "contact",
                                    ["contact_id"], ["id"], ondelete="CASCADE")
