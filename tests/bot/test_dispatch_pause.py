"""Two `gotong dispatch` processes share one outbox, and one of them is paused (SIGSTOP)
for longer than its leases while it sends. The other takes its rows over; when the paused
one resumes it sends none of them and settles none of them, and says so in its log. Only
the messages it had already put on the wire at the pause can arrive twice.

In-process, a dispatcher whose clock jumps past its leases (as after a pause) while its
rows wait for a slot finds them taken over, says so once, and sends none of them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from gotong.bot.channels.telegram import HTTP_CONNECTIONS
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.outbox import OutboxMessage, OutboxStatus
from tests.bot.dispatch_harness import (
    REFERENCE,
    DispatchUnderTest,
    add_contacts,
    dispatch_config,
    numbered_notice,
    queue,
    start_dispatch,
    statuses,
)
from tests.fakes.telegram_api import FakeTelegramAPI, SentMessage

# Measures time itself: run alone, after the other tests (make pytest).
pytestmark = pytest.mark.timing

GOTONG = Path(sys.executable).parent / "gotong"
CHATS = 60
ROWS = 300
# Deliveries (of both processes) after which the first process is paused.
PAUSE_AFTER = 60
LEASE_SECONDS = 1.5
# Well past the lease: the other process must find the rows abandoned and take them.
PAUSE_SECONDS = 3 * LEASE_SECONDS
# The overall limit, which the two processes share: low enough that the rows take several
# seconds to send, so that the pause falls mid-way.
MESSAGES_PER_SECOND = 40
SETTINGS = {"TELEGRAM__MESSAGES_PER_SECOND": MESSAGES_PER_SECOND,
            "NOTIFICATIONS__LEASE_SECONDS": LEASE_SECONDS, "NOTIFICATIONS__POLL_SECONDS": 0.5}
# The fake records a message when it arrives and answers this much later: a process
# paused just after a message arrived has a send in flight, whose answer it reads only
# once it runs again.
ANSWER_DELAY = 0.3
# What a dispatcher logs when it finds rows of its taken over by another: in general, and
# when it would have settled a row whose answer it read only after the pause.
TAKEN_OVER = "taken over by another dispatcher"
SETTLED_ELSEWHERE = TAKEN_OVER + " before this one settled them"
# No message has reached the fake for this long: the process is between bursts of sends.
QUIET_SECONDS = 0.02


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegramAPI, FakeTelegramAPI]]:
    # One fake Bot API per process (same token, other port): what each process sent is
    # known exactly, which is what the bound on duplicates is about.
    async with FakeTelegramAPI() as first, FakeTelegramAPI() as second:
        first.response_delay = second.response_delay = ANSWER_DELAY
        yield first, second


def log_of(path: Path) -> str:
    return path.read_text(errors="replace")


def reference_of(message: SentMessage) -> str:
    match = REFERENCE.search(message.text)
    assert match is not None, message.text
    return match.group(0)


def is_owned_by(owner: str | None, pid: int) -> bool:
    # A lease owner is "host:pid:random" (gotong.models.base.process_name).
    parts = (owner or "").split(":")
    return len(parts) >= 3 and parts[-2] == str(pid)


async def leased_to(services: Services, pid: int) -> set[str]:
    """References of the rows being sent under the process's lease (committed state)."""
    async with services.sessions() as session:
        result = await session.execute(
            select(OutboxMessage.params, OutboxMessage.lease_owner)
            .where(OutboxMessage.status == OutboxStatus.SENDING))
        return {params["reference"] for params, owner in result.all()
                if is_owned_by(owner, pid)}


def sqlite_is_free(path: str) -> bool:
    """Whether SQLite's write lock can be taken (no paused process sits on it)."""
    connection = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


async def rows_are_free(services: Services, pid: int) -> bool:
    """Whether the process's leased rows are free of its row locks (PostgreSQL)."""
    try:
        # Only looking: the locks taken here go with the rollback when it closes.
        async with services.engine.connect() as connection:
            await connection.execute(
                select(OutboxMessage.id)
                .where(OutboxMessage.lease_owner.like(f"%:{pid}:%"))
                .with_for_update(nowait=True))
    except DBAPIError:
        return False
    return True


async def holds_no_lock(services: Services, database_url: str, pid: int) -> bool:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return await asyncio.to_thread(sqlite_is_free, url.database or "")
    return await rows_are_free(services, pid)


def quiet_with_answers_pending(fake: FakeTelegramAPI) -> bool:
    """Whether the process sending to this fake has sends in flight (their answers are
    still on the way) and is between bursts of sends, with connections to spare.

    A send is in flight from its last lease check on, and only those that reached the
    fake before the pause can be counted from outside. Slots are granted in bursts, and
    the sends of a burst reach the wire within a moment of their checks unless they wait
    for a free connection: paused a moment after the last arrival, with fewer answers
    pending than connections, at most a send whose burst began in that very instant can
    have passed its check unseen."""
    now = time.monotonic()
    pending = [m for m in fake.all_messages()[-2 * HTTP_CONNECTIONS:]
               if m.sent_at > now - ANSWER_DELAY]
    return (bool(pending) and QUIET_SECONDS <= now - pending[-1].sent_at <= ANSWER_DELAY / 2
            and len(pending) < HTTP_CONNECTIONS - 1)


async def pause_mid_send(process: asyncio.subprocess.Process, fake: FakeTelegramAPI,
                         services: Services, database_url: str, log: Path) -> None:
    """SIGSTOP the process while sends of its are in flight, and not while it is inside a
    database transaction: a process paused there holds SQLite's one write lock (or
    PostgreSQL row locks on the rows it leases), and the other process could take nothing
    over until it runs again, which is another case than the one tested here."""
    async with asyncio.timeout(20):
        while True:
            if quiet_with_answers_pending(fake):
                os.kill(process.pid, signal.SIGSTOP)
                if await holds_no_lock(services, database_url, process.pid):
                    return
                os.kill(process.pid, signal.SIGCONT)
            assert process.returncode is None, log_of(log)
            await asyncio.sleep(0.002)


async def test_a_paused_dispatcher_sends_nothing_another_took_over(
        tmp_path: Path, fakes: tuple[FakeTelegramAPI, FakeTelegramAPI], services: Services,
        database_url: str) -> None:
    fake_a, fake_b = fakes
    contacts = await add_contacts(services, [8_000_000 + n for n in range(CHATS)])
    # Several rows per chat, interleaved across chats, like a broadcast and its follow-ups.
    await queue(services, [numbered_notice(contacts[n % CHATS], n) for n in range(ROWS)])

    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = await start_dispatch(tmp_path, fake_a, database_url, "a.log", **SETTINGS)
    b: asyncio.subprocess.Process | None = None
    try:
        # The second starts once the first is sending, so that they share the load.
        async with asyncio.timeout(20):
            while not fake_a.all_messages():
                assert a.returncode is None, log_of(log_a)
                await asyncio.sleep(0.01)
        b = await start_dispatch(tmp_path, fake_b, database_url, "b.log", **SETTINGS)
        async with asyncio.timeout(20):
            while len(fake_a.all_messages()) + len(fake_b.all_messages()) < PAUSE_AFTER \
                    or not fake_b.all_messages():
                assert a.returncode is None, log_of(log_a)
                assert b.returncode is None, log_of(log_b)
                await asyncio.sleep(0.01)

        await pause_mid_send(a, fake_a, services, database_url, log_a)
        held_at_pause = await leased_to(services, a.pid)
        assert held_at_pause, await statuses(services)
        await asyncio.sleep(PAUSE_SECONDS)
        # The other process takes over every row the paused one leased (it may be busy
        # with its own: this is a wait, not a deadline).
        async with asyncio.timeout(20):
            while await leased_to(services, a.pid):
                assert b.returncode is None, log_of(log_b)
                await asyncio.sleep(0.1)
        # What the paused process had put on the wire has reached the fake by now; it
        # sends nothing while paused.
        in_flight = held_at_pause & {reference_of(m) for m in fake_a.all_messages()}
        assert in_flight, "no send was in flight at the pause"
        os.kill(a.pid, signal.SIGCONT)
        resumed_at = time.monotonic()

        async with asyncio.timeout(40):
            while (counts := await statuses(services)) != {"sent": ROWS}:
                assert a.returncode is None, log_of(log_a)
                assert b.returncode is None, log_of(log_b)
                assert not counts.get("failed"), counts
                await asyncio.sleep(0.2)
    finally:
        for process in (a, b):
            if process is not None and process.returncode is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        for process in (a, b):
            if process is not None:
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    output_a = log_of(log_a)
    assert a.returncode == 0, output_a
    assert b.returncode == 0, log_of(log_b)

    messages = sorted(fake_a.all_messages() + fake_b.all_messages(), key=lambda m: m.sent_at)
    deliveries = Counter(reference_of(m) for m in messages)
    async with services.sessions() as session:
        result = await session.execute(
            select(OutboxMessage.id, OutboxMessage.params, Contact.chat_id)
            .join(Contact, Contact.id == OutboxMessage.contact_id)
            .order_by(OutboxMessage.id))
        rows = [(row_id, params["reference"], int(chat_id))
                for row_id, params, chat_id in result.all()]
    missing = {reference for _, reference, _ in rows} - set(deliveries)
    assert not missing, f"never delivered: {sorted(missing)}"
    # Only a row the paused process held can arrive twice (once from it, once from the
    # process that took it over), and only if its send was in flight at the pause: it
    # had reached the fake by then, or it is the one send that may have passed its last
    # lease check in the instant before the pause (see quiet_with_answers_pending).
    twice = {reference for reference, count in deliveries.items() if count > 1}
    assert twice <= held_at_pause, sorted(twice - held_at_pause)
    unseen = twice - in_flight
    # Who sent each copy, and when, in seconds after the paused process resumed.
    by_a = {id(m) for m in fake_a.all_messages()}
    copies = {reference: [("paused" if id(m) in by_a else "other",
                           round(m.sent_at - resumed_at, 3))
                          for m in messages if reference_of(m) == reference]
              for reference in sorted(unseen)}
    assert len(unseen) <= 1, f"sent twice but not in flight at the pause: {copies}"
    assert deliveries.total() - len(deliveries) <= len(in_flight) + 1
    assert max(deliveries.values()) <= 2, deliveries.most_common(3)
    # The paused process found its rows taken over and says so; the answers to its sends
    # in flight, which it read after the pause, were not written over the other's.
    assert TAKEN_OVER in output_a, output_a
    assert SETTLED_ELSEWHERE in output_a, output_a

    # Per chat, first deliveries follow the order of the rows.
    row_id = {reference: row for row, reference, _ in rows}
    first_seen: dict[int, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message in messages:
        reference = reference_of(message)
        if reference not in seen:
            seen.add(reference)
            first_seen[message.chat_id].append(row_id[reference])
    expected: dict[int, list[int]] = defaultdict(list)
    for row, _, chat in rows:
        expected[chat].append(row)
    assert first_seen == expected


async def test_a_held_up_dispatcher_reports_rows_taken_over_once_and_sends_none(
        config: Config, services: Services, fake: FakeTelegramAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gotong.bot.dispatcher")
    chats = [8_100_000 + n for n in range(6)]
    contacts = await add_contacts(services, chats)
    await queue(services, [numbered_notice(c, n) for n, c in enumerate(contacts)])
    # The dispatcher's clock, moved forward to stand for a pause of the process.
    ahead = timedelta(0)

    def clock() -> datetime:
        return utcnow() + ahead

    # One message a second, and the first refused with "retry after 3": the other rows
    # are claimed and wait for a slot meanwhile.
    fake.fail_next("sendMessage", error_code=429, retry_after=3,
                   description="Too Many Requests: retry after 3")
    cfg = dispatch_config(config, fake, messages_per_second=1, lease_seconds=10)
    dispatch = DispatchUnderTest(services, cfg, clock=clock)
    await dispatch.start()
    try:
        async with asyncio.timeout(10):
            while await statuses(services) != {"pending": 1, "sending": 5}:  # noqa: ASYNC110 - the database signals nothing
                await asyncio.sleep(0.02)
        # Another process takes the waiting rows over, as it may once their leases
        # have run out; for this dispatcher they ran out during its "pause".
        async with services.engine.begin() as connection:
            await connection.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.SENDING)
                .values(lease_owner="another", lease_until=utcnow() + timedelta(hours=1)))
        ahead = timedelta(seconds=11)
        async with asyncio.timeout(10):
            while TAKEN_OVER not in caplog.text:  # noqa: ASYNC110 - log records signal nothing
                await asyncio.sleep(0.02)
        # The loop steps many times a second while rows wait: long enough to repeat it.
        await asyncio.sleep(0.5)
    finally:
        await dispatch.stop()
    sent = {reference_of(m) for m in fake.all_messages()}
    reports = [r.getMessage() for r in caplog.records if TAKEN_OVER in r.getMessage()]
    assert len(reports) == 1 and reports[0].startswith("5 "), reports
    # None of the rows taken over went out; only the refused one may have, again (its
    # retry fell due by the moved clock, and went once the "retry after" had passed).
    assert sent <= {"GT-000000"}, sent
