"""`gotong dispatch` killed with SIGKILL while it sends, then started again: every row is
delivered, and only the rows the dead process held (status 'sending') can arrive twice."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from gotong.bot.services import Services
from gotong.models.contact import Contact
from gotong.models.outbox import OutboxMessage, OutboxStatus
from tests.bot.dispatch_harness import (
    REFERENCE,
    add_contacts,
    numbered_notice,
    queue,
    start_dispatch,
    statuses,
)
from tests.fakes.telegram_api import FakeTelegramAPI, SentMessage

GOTONG = Path(sys.executable).parent / "gotong"
CHATS = 60
ROWS = 300
# Delivered messages (of ROWS) after which the first process is killed.
KILL_AFTER = 60
LEASE_SECONDS = 1.5
MESSAGES_PER_SECOND = 50
SETTINGS = {"TELEGRAM__MESSAGES_PER_SECOND": MESSAGES_PER_SECOND,
            "NOTIFICATIONS__LEASE_SECONDS": LEASE_SECONDS, "NOTIFICATIONS__POLL_SECONDS": 0.5}


@dataclass(frozen=True)
class Row:
    id: int
    chat_id: int
    reference: str
    status: str


@pytest.fixture
def fake(telegram_api: FakeTelegramAPI) -> FakeTelegramAPI:
    # Answers come late, after the message is delivered: a kill finds sends in flight.
    telegram_api.response_delay = 0.1
    return telegram_api


async def outbox(services: Services) -> list[Row]:
    async with services.sessions() as session:
        result = await session.execute(
            select(OutboxMessage.id, Contact.chat_id, OutboxMessage.params,
                   OutboxMessage.status)
            .join(Contact, Contact.id == OutboxMessage.contact_id)
            .order_by(OutboxMessage.id))
        return [Row(id=r.id, chat_id=int(r.chat_id), reference=r.params["reference"],
                    status=r.status) for r in result.all()]


def log_of(path: Path) -> str:
    return path.read_text(errors="replace")


def reference_of(message: SentMessage) -> str:
    match = REFERENCE.search(message.text)
    assert match is not None, message.text
    return match.group(0)


async def wait_for_deliveries(fake: FakeTelegramAPI, count: int,
                              process: asyncio.subprocess.Process, log: Path) -> None:
    async with asyncio.timeout(20):
        while len(fake.all_messages()) < count:
            assert process.returncode is None, log_of(log)
            await asyncio.sleep(0.005)


async def test_a_killed_dispatcher_resumes_without_losing_rows(
        tmp_path: Path, fake: FakeTelegramAPI, services: Services, database_url: str) -> None:
    contacts = await add_contacts(services, [7_000_000 + n for n in range(CHATS)])
    # Several rows per chat, interleaved across chats: each chat must get them in order.
    await queue(services, [numbered_notice(contacts[n % CHATS], n) for n in range(ROWS)])

    first = await start_dispatch(tmp_path, fake, database_url, "first.log", **SETTINGS)
    try:
        await wait_for_deliveries(fake, KILL_AFTER, first, tmp_path / "first.log")
    finally:
        if first.returncode is None:
            first.kill()  # SIGKILL: no handler, no cleanup, leases left as they are
        await first.wait()
    delivered_before = len(fake.all_messages())
    assert delivered_before < ROWS, "the first process finished before it was killed"

    # The dead process changes nothing any more: what it held is what it left in flight.
    at_kill = await outbox(services)
    in_flight = {row.reference for row in at_kill if row.status == OutboxStatus.SENDING}
    assert in_flight, Counter(row.status for row in at_kill)

    second = await start_dispatch(tmp_path, fake, database_url, "second.log", "--until-idle",
                                  **SETTINGS)
    try:
        await asyncio.wait_for(second.wait(), 30)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    output = log_of(tmp_path / "second.log")
    assert second.returncode == 0, output

    rows = await outbox(services)
    assert await statuses(services) == {"sent": ROWS}, output

    deliveries = Counter(reference_of(m) for m in fake.all_messages())
    missing = {row.reference for row in rows} - set(deliveries)
    assert not missing, f"never delivered: {sorted(missing)}"
    twice = {reference for reference, count in deliveries.items() if count > 1}
    duplicates = deliveries.total() - len(deliveries)
    assert twice <= in_flight, f"sent twice but not in flight at the kill: {twice - in_flight}"
    assert duplicates <= len(in_flight), (duplicates, len(in_flight))
    assert max(deliveries.values()) <= 2, deliveries.most_common(3)

    # Per chat, first deliveries follow the order of the rows.
    row_id = {row.reference: row.id for row in rows}
    first_seen: dict[int, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message in fake.all_messages():
        reference = reference_of(message)
        if reference not in seen:
            seen.add(reference)
            first_seen[message.chat_id].append(row_id[reference])
    expected: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        expected[row.chat_id].append(row.id)
    assert first_seen == expected
