"""How long inbound updates are kept: those handled, recorded or set aside are forgotten
once past the window in which a platform may send them again; those waiting never. And
the queue's claims read only the rows still waiting, however many others the table
holds (WhatsApp's statuses, updates recorded only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.db import refresh_statistics
from gotong.models.inbound import (
    InboundUpdate,
    claim_waiting,
    next_turn_at,
    prune_inbound,
    store_inbound,
)

WEEK = timedelta(days=7)


async def test_old_updates_are_forgotten_and_waiting_ones_kept(services: Services) -> None:
    now = utcnow()
    old, recent = now - WEEK - timedelta(hours=1), now - WEEK + timedelta(hours=1)
    async with services.engine.begin() as connection:
        for number, when in enumerate([old, old, old, recent]):
            await store_inbound(connection, "telegram", f"done-{number}", "", None, when,
                                handled=True)
        await store_inbound(connection, "whatsapp", "wamid.A:read", "", None, old,
                            handled=True)
        for name in ("aside-old", "aside-recent", "waiting-old"):
            await store_inbound(connection, "telegram", name, "7", {"update_id": 1}, old)
        await connection.execute(
            update(InboundUpdate).where(InboundUpdate.external_id == "aside-old")
            .values(set_aside_at=old, last_error="KeyError"))
        await connection.execute(
            update(InboundUpdate).where(InboundUpdate.external_id == "aside-recent")
            .values(set_aside_at=recent, last_error="KeyError"))
    # In batches smaller than what is to go.
    assert await prune_inbound(services.engine, now - WEEK, batch=2) == 5
    async with services.sessions() as session:
        kept = set(await session.scalars(select(InboundUpdate.external_id)))
    assert kept == {"done-3", "aside-recent", "waiting-old"}
    assert await prune_inbound(services.engine, now - WEEK) == 0


def _plans_read_only_waiting_rows(plan: list[Any]) -> bool:
    """Whether every step of a query plan that reads inbound_update goes through the index
    of waiting rows (or looks rows up by `processed_at IS NULL`)."""
    for row in plan:
        detail = str(row[-1])
        if "inbound_update" not in detail:
            continue
        if "ix_inbound_update_waiting" in detail:
            continue
        if detail.startswith("SEARCH") and "processed_at=?" in detail:
            continue
        return False
    return True


async def test_claims_read_only_waiting_rows(services: Services) -> None:
    if services.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans depend on its statistics; the index is the same")
    now = utcnow()
    async with services.engine.begin() as connection:
        for number in range(300):
            await store_inbound(connection, "whatsapp", f"wamid.{number}:delivered", "",
                                None, now, handled=True)
            await store_inbound(connection, "telegram", f"seen-{number}", "", None, now,
                                handled=True)
        await store_inbound(connection, "telegram", "waiting", "7", {"update_id": 1}, now)
    await refresh_statistics(services.engine)
    statements: list[tuple[str, Any]] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:
        if "inbound_update" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sync_engine = services.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", remember)
    try:
        async with services.engine.begin() as connection:
            await claim_waiting(connection, "here", ["telegram", "whatsapp"], now,
                                timedelta(seconds=30), 16)
            await next_turn_at(connection, ["telegram", "whatsapp"])
            await connection.rollback()
    finally:
        event.remove(sync_engine, "before_cursor_execute", remember)
    assert len(statements) >= 2
    async with services.engine.connect() as connection:
        for statement, parameters in statements:
            plan = (await connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)).all()
            assert _plans_read_only_waiting_rows(plan), (statement, plan)
