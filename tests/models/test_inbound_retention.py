"""How long inbound updates are kept: those handled, recorded or set aside are forgotten
once past the window in which a platform may send them again; those waiting never. And
the queue's claims read only the rows still waiting, however many others the table
holds (WhatsApp's statuses, updates recorded only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, update

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.db import refresh_statistics
from gotong.models.inbound import (
    InboundUpdate,
    claim_waiting,
    next_turn_at,
    prune_inbound,
    store_inbound,
)
from gotong.models.outbox import OutboxMessage, OutboxStatus, Purpose

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


async def _claim_statement(services: Services, now: Any) -> tuple[str, Any]:
    """The statement a claim sends to the database, as sent."""
    statements: list[tuple[str, Any]] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:
        if statement.lstrip().startswith("SELECT inbound_update.id"):
            statements.append((statement, parameters))

    sync_engine = services.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", remember)
    try:
        async with services.engine.begin() as connection:
            claimed = await claim_waiting(connection, "here", ["whatsapp"], now,
                                          timedelta(seconds=30), 16)
            await connection.rollback()
    finally:
        event.remove(sync_engine, "before_cursor_execute", remember)
    # The 16 oldest chats whose last answer is settled.
    assert [batch[0].chat_id for batch in claimed] == [_chat(n) for n in range(5, 21)]
    return statements[0]


def _chat(number: int) -> str:
    return f"62812{number:05d}"


QUEUE_AND_PEOPLE = ("inbound_update", "outbox_message", "contact")


async def test_claims_stay_cheap_while_the_statistics_say_the_queues_are_empty(
        services: Services) -> None:
    """A new database, minutes into its first burst: its statistics, gathered at start,
    still say the queues are empty, and will until the next refresh. A claim must then
    cost what is waiting, not every chat's past answers once per waiting update (which
    made each claim take seconds, and every chat wait)."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's plans do not change with its statistics this way")
    chats, history = 40, 50
    now = utcnow()
    async with services.engine.connect() as connection:
        for table in QUEUE_AND_PEOPLE:
            await connection.exec_driver_sql(f"ANALYZE {table}")
            await connection.exec_driver_sql(
                f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        await connection.commit()
    try:
        async with services.engine.begin() as connection:
            contact_ids = (await connection.scalars(
                insert(Contact).returning(Contact.id),
                [{"channel": "whatsapp", "chat_id": _chat(n), "language": "id"}
                 for n in range(chats)])).all()
        for round_ in range(history):  # each chat wrote, and was answered
            async with services.engine.begin() as connection:
                await connection.execute(insert(InboundUpdate), [
                    {"channel": "whatsapp", "external_id": f"wamid.{round_}.{n}",
                     "chat_id": _chat(n), "payload": {}, "received_at": now}
                    for n in range(chats)])
                await connection.execute(insert(OutboxMessage), [
                    {"contact_id": contact_id, "priority": int(Purpose.REPLY),
                     "essential": True, "status": OutboxStatus.PENDING}
                    for contact_id in contact_ids])
            async with services.engine.begin() as connection:
                await connection.execute(
                    update(InboundUpdate).where(InboundUpdate.processed_at.is_(None))
                    .values(processed_at=now, payload=None))
                await connection.execute(
                    update(OutboxMessage).values(status=OutboxStatus.SENT))
        async with services.engine.begin() as connection:  # every chat writes again
            await connection.execute(insert(InboundUpdate), [
                {"channel": "whatsapp", "external_id": f"wamid.now.{n}", "chat_id": _chat(n),
                 "payload": {}, "received_at": now} for n in range(chats)])
            # The first five still wait for their last answer to be sent.
            await connection.execute(insert(OutboxMessage), [
                {"contact_id": contact_id, "priority": int(Purpose.REPLY),
                 "essential": True, "status": OutboxStatus.SENDING}
                for contact_id in contact_ids[:5]])
        statement, parameters = await _claim_statement(services, now)
        async with services.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            # The plan a driver's prepared statement falls back to after five runs.
            await raw.execute("SET plan_cache_mode = force_generic_plan")
            explained = await raw.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *parameters)
            await raw.execute("RESET plan_cache_mode")
        # The engine's driver decodes JSON itself.
        plan = explained[0]["Plan"]
        pages = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
        # The history is 2,000 updates and 2,000 answers, not yet vacuumed: read a few
        # times over, as the plan chosen has it, it is 4,000 to 20,000 pages; read once per
        # waiting update for each chat, as before, it was some 190,000.
        assert pages < 60_000, pages
    finally:
        async with services.engine.connect() as connection:
            for table in QUEUE_AND_PEOPLE:
                await connection.exec_driver_sql(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
            await connection.commit()
