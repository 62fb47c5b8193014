"""aggregators disabled by the operator, and the playground's demo aggregators marked

Revision ID: 0019
Revises: 0018
Create Date: 2027-01-05 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gotong.models.base

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The name the playground's demo aggregator always had (models/demo.py): a database that
# holds it from before demo rows were marked gets it marked.
DEMO_NAME = "Posko Contoh (demo)"


def upgrade() -> None:
    with op.batch_alter_table("aggregator", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at",
                                      gotong.models.base.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("demo", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    aggregator = sa.table("aggregator", sa.column("name", sa.String),
                          sa.column("demo", sa.Boolean))
    op.execute(aggregator.update().where(aggregator.c.name == DEMO_NAME)
               .values(demo=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("aggregator", schema=None) as batch_op:
        batch_op.drop_column("demo")
        batch_op.drop_column("disabled_at")
