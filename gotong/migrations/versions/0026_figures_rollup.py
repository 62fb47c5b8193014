"""the public and dashboard figures kept per kelurahan and local day as events happen:
counters, the triggers that keep them, and the time zone's offsets; counted once from the
requests and deliveries there are

Revision ID: 0026
Revises: 0025
Create Date: 2027-01-05 10:00:00.000000
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from gotong.models.figures import create_trigger_statements, drop_trigger_statements, refill

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The zone of the days when the migration is run without the configuration (plain
# `alembic upgrade`); `gotong` passes `i18n.timezone`, and a later start with another
# zone counts again.
DEFAULT_TIMEZONE = "Asia/Jakarta"


def upgrade() -> None:
    op.create_table(
        "figure_clock",
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset_minutes", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("starts_at", name=op.f("pk_figure_clock")),
    )
    op.create_table(
        "village_figures",
        sa.Column("village_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("waiting", sa.BigInteger(), nullable=False),
        sa.Column("in_delivery", sa.BigInteger(), nullable=False),
        sa.Column("helped", sa.BigInteger(), nullable=False),
        sa.Column("packages", sa.BigInteger(), nullable=False),
        sa.Column("money", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("village_id", name=op.f("pk_village_figures")),
    )
    op.create_table(
        "village_day_figures",
        sa.Column("village_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("aggregator_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("requested", sa.BigInteger(), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("village_id", "day", "aggregator_id",
                                name=op.f("pk_village_day_figures")),
    )
    op.create_index("ix_village_day_figures_day", "village_day_figures", ["day"],
                    unique=False)
    connection = op.get_bind()
    dialect = connection.dialect.name
    for statement in create_trigger_statements(dialect):
        connection.exec_driver_sql(statement)
    timezone = context.config.attributes.get("timezone", DEFAULT_TIMEZONE)
    started = time.monotonic()
    refill(connection, timezone)
    context.config.attributes["figures_refill_seconds"] = time.monotonic() - started


def downgrade() -> None:
    connection = op.get_bind()
    for statement in drop_trigger_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)
    op.drop_index("ix_village_day_figures_day", table_name="village_day_figures")
    op.drop_table("village_day_figures")
    op.drop_table("village_figures")
    op.drop_table("figure_clock")
