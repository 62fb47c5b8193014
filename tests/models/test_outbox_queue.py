"""The outbox at the size of a city: a claim reads the rows due by walking its index and
stops at the batch, whichever way they fell due; old settled rows are forgotten in small
batches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, update

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.outbox import Notice, OutboxMessage, OutboxStatus, Purpose, enqueue
from gotong.models.sending import claim, prune
from tests.bot.dispatch_harness import add_contacts
from tests.lookups import outbox

LEASE = timedelta(minutes=5)


async def add_rows(services: Services, rows: list[tuple[int, Purpose]]) -> list[int]:
    """A row for each (contact, purpose), in this order; their ids."""
    now = utcnow()
    async with services.sessions() as session, session.begin():
        added = [enqueue(session, Notice(contact_id, "menu.title", {}, purpose=purpose), now)
                 for contact_id, purpose in rows]
        await session.flush()
        return [row.id for row in added]


async def set_rows(services: Services, row_ids: list[int], **values: Any) -> None:
    async with services.engine.begin() as connection:
        await connection.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(row_ids)).values(**values))


async def test_rows_due_either_way_are_claimed_in_priority_then_id_order(
        services: Services) -> None:
    contacts = await add_contacts(services, range(960_001, 960_006))
    broadcast, expired, status, future, reminder = await add_rows(services, [
        (contacts[0], Purpose.BROADCAST), (contacts[1], Purpose.STATUS),
        (contacts[2], Purpose.STATUS), (contacts[3], Purpose.REPLY),
        (contacts[4], Purpose.REMINDER)])
    now = utcnow()
    # A row whose sender died: its lease ran out, so it is due again, among the pending
    # ones; a row waiting for a retry is not due yet.
    await set_rows(services, [expired], status=OutboxStatus.SENDING,
                   lease_until=now - timedelta(seconds=1), lease_owner="gone")
    await set_rows(services, [future], next_attempt_at=now + timedelta(minutes=1))
    async with services.engine.connect() as connection:
        async with connection.begin():
            first, _ = await claim(connection, ["telegram"], now, 2, LEASE, "here")
        async with connection.begin():
            rest, _ = await claim(connection, ["telegram"], now, 10, LEASE, "here")
    assert [row.id for row in first] == [expired, status]
    assert [row.id for row in rest] == [reminder, broadcast]


async def test_old_settled_rows_are_forgotten_in_small_batches(services: Services) -> None:
    contacts = await add_contacts(services, range(961_001, 961_010))
    rows = await add_rows(services, [(c, Purpose.STATUS) for c in contacts])
    now = utcnow()
    old = now - timedelta(days=40)
    settled = {OutboxStatus.SENT: rows[0:2], OutboxStatus.FAILED: rows[2:3],
               OutboxStatus.SKIPPED: rows[3:4], OutboxStatus.HELD: rows[4:5]}
    for status, ids in settled.items():
        await set_rows(services, ids, status=status, created_at=old)
    # Rows still to send are kept however old; settled rows only past the keep.
    await set_rows(services, rows[5:6], created_at=old)
    await set_rows(services, rows[6:7], status=OutboxStatus.SENDING, created_at=old,
                   lease_until=now + LEASE, lease_owner="here")
    await set_rows(services, rows[7:9], status=OutboxStatus.SENT)

    deletes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    event.listen(services.engine.sync_engine, "before_cursor_execute", count)
    try:
        forgotten = await prune(services.engine, now - timedelta(days=30), batch=2)
    finally:
        event.remove(services.engine.sync_engine, "before_cursor_execute", count)
    assert forgotten == 5
    # Two, two and one: each batch in its own transaction.
    assert len(deletes) == 3
    assert sorted(row.id for row in await outbox(services)) == rows[5:9]
