"""City scale: what the dispatcher, exports, webhooks, the dashboard's pages, the public
page and a broadcast cost in a city of 10,000 households and in one of a million.

The outbox of a fresh, migrated database (scratch_database.py: an SQLite file, or a new
PostgreSQL database with ``--database URL``) is filled with one pending broadcast row per
contact, first 10,000 and then ``--rows`` (1,000,000 by default), written in bulk by the
database itself (a recursive CTE on SQLite, generate_series on PostgreSQL). Beside them lie
1,000 settled rows older than the outbox keeps, and each contact has asked for aid in the
last 60 days, a quarter of them in the kelurahan of one aggregator (Jakarta Timur), whose
staff member signs in; every fifth request has a delivery, in every status. At each size:

    claim   one dispatcher claim of a batch (models/sending.claim), rolled back after each
            so that every claim finds the same queue; p50 and p95 over --claims claims
    prune   forgetting the settled rows past their keep (models/sending.prune), in
            batches of their own; the rows are put back after each so that each finds
            the same rows; p50 and p95 over 20
    export  the aggregator's requests.csv, as the dashboard and `gotong export` make it
            (models/export.py): ms to the header and to the first rows, rows a second;
            then once more with Python's allocations traced, how far they rose (MB)
    webhook what a chat app's webhook does before it answers (its update stored in the
            inbound queue, in a unit of work on the writer), p50 and p95 over
            --webhooks, alone, while that export runs again and again beside it, and
            while the public page's figures are computed again and again beside it
    pages   the dashboard's pages (queue, deliveries, reviews, statistics) as the
            aggregator's staff member and the public page (the city, the kota) with its
            figures computed for each view, over HTTP: the first view of each after a
            restart (page_..._cold: new services and web app on the same database), then
            p50 and p95 over 10 views
    broadcast  a broadcast to every contact: the count, then the rows queued in batches,
            with webhooks stored beside it all along (p50 and p95 of those)
    sending the real dispatcher sending that queue through the real Telegram channel for
            --sending seconds to a fake Bot API that refuses whatever goes beyond
            Telegram's limit (30 messages a second, one a second to a chat), Gotong
            configured with the same limit: messages a second the fake accepted (from the
            first to the last, leaving out the first second's burst, as fanout.py does),
            its share of the limit, refusals, and webhooks stored beside it all along;
            the rows sent are put back in the queue after

Each prints ``name p95_1m_ms=... ratio=<big/10k>`` (figures at the big size, ratio against
the small one); a ratio near 1 means the cost does not grow with the city, and
``webhook_export_vs_alone`` compares a webhook during the export with one alone. Then the
budgets of each figure at the big size that were not kept, and last ``city: N/M within
budget``::

    .venv/bin/python benchmarks/city.py [--rows N] [--claims C] [--webhooks W]
                                        [--sending S] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

# The project root, for the fakes and the dispatcher's harness in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allocation import TIMEZONE, bench_config
from fanout import TELEGRAM_LIMIT, send_times
from scratch_database import add_database_argument, scratch_database
from sidebyside import BenchmarkFailure, run_benchmark
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gotong.bot.process import settle_heap
from gotong.bot.services import Services, open_services
from gotong.bot.web.app import create_web_app
from gotong.bot.web.public import PUBLIC_FIGURES, compute_snapshot
from gotong.models.area import AreaLevel
from gotong.models.broadcast import BROADCAST_KEY, Audience, count_recipients, queue_broadcast
from gotong.models.dashboard import start_session
from gotong.models.db import refresh_statistics
from gotong.models.delivery import DeliveryStatus
from gotong.models.export import export_chunks
from gotong.models.figures import counted_after_load
from gotong.models.inbound import ToStore, store_batch
from gotong.models.sending import claim, prune
from tests.bot.dispatch_harness import DispatchUnderTest, dispatch_config
from tests.fakes.telegram_api import FakeTelegramAPI

SMALL = 10_000
CLAIM_BATCH = 30
# The aggregator whose requests are exported, and the kota whose requests lie beside them.
KOTA, OTHER_KOTA = "Jakarta Timur", "Jakarta Selatan"
SETTLED = 1_000
# Prunes timed at each size: enough that one hiccup of the machine is not their p95.
PRUNES = 20
# The contacts of the settled rows are numbered from above this one (above any bulk one).
OLD = 100_000_000
# The aggregator's staff member who signs in to the dashboard (above any bulk contact).
STAFF = 200_000_000
# The pages timed, signed in as that staff member; the public page with its figures
# computed afresh for each view.
PAGES = {"queue": "/dashboard", "deliveries": "/dashboard/deliveries",
         "reviews": "/dashboard/reviews", "stats": "/dashboard/stats", "public": "/public",
         "public_kota": "/public?area={kota}"}
PAGE_RUNS = 10
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEEP = timedelta(days=30)
# Seconds between two timed webhooks.
WEBHOOK_GAP = 0.01
# Telegram's limit of messages a second to one chat (fanout.py has the overall one).
CHAT_LIMIT = 1.0


def _numbers(dialect: str, start: int, stop: int) -> str:
    """A query of the integers start..stop as column n, made by the database itself."""
    if dialect == "postgresql":
        return f"SELECT n FROM generate_series({start}, {stop}) AS n"
    return (f"WITH RECURSIVE s(n) AS (SELECT {start} UNION ALL SELECT n + 1 FROM s "
            f"WHERE n < {stop}) SELECT n FROM s")


def _recent(dialect: str, n: str) -> str:
    """A time in the last 60 days (row n's day is n % 60 days ago, at n % 1440 minutes
    past midnight UTC): half of the rows fall within the pages' 30-day charts."""
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    if dialect == "postgresql":
        return (f"(TIMESTAMPTZ '{today} 00:00:00+00' - ({n} % 60) * INTERVAL '1 day' "
                f"+ ({n} % 1440) * INTERVAL '1 minute')")
    return (f"datetime('{today}', '-' || ({n} % 60) || ' days', '+' || ({n} % 1440) "
            f"|| ' minutes')")


def _request_status(n: str) -> str:
    """Most requests wait (submitted or verified); some are on their way, done or closed."""
    return (f"CASE {n} % 10 WHEN 0 THEN 'allocated' WHEN 1 THEN 'delivered' "
            f"WHEN 2 THEN 'rejected' WHEN 3 THEN 'verified' WHEN 4 THEN 'verified' "
            f"ELSE 'submitted' END")


def _delivery_status(n: str) -> str:
    """Every status in turn, delivered four times as often as each other."""
    statuses = [status.value for status in DeliveryStatus]
    statuses += [DeliveryStatus.DELIVERED] * 3
    whens = " ".join(f"WHEN {k} THEN '{status}'" for k, status in enumerate(statuses))
    return f"CASE ({n} / 5) % {len(statuses)} {whens} END"


async def fill(engine: AsyncEngine, start: int, stop: int, villages: Sequence[int]) -> None:
    """Contacts start..stop, each with a pending broadcast row and a request for aid from
    a kelurahan of `villages`, in turn."""
    dialect = engine.dialect.name
    numbers = _numbers(dialect, start, stop)
    created = "'2025-03-01 11:00:00'" if dialect == "sqlite" \
        else "TIMESTAMPTZ '2025-03-01 11:00:00+00'"
    false, true = ("0", "1") if dialect == "sqlite" else ("false", "true")
    asked = _recent(dialect, "n")
    async with engine.begin() as conn, counted_after_load(conn, TIMEZONE):
        # (The figures' counters are counted once the rows are in, as migration 0026
        # does: a trigger per row is dear in bulk.)
        await conn.execute(text(
            f"INSERT INTO contact (id, channel, chat_id, language, created_at) "
            f"SELECT n, 'telegram', CAST(n AS TEXT), 'id', {created} FROM ({numbers}) AS s"))
        await conn.execute(text(
            f"INSERT INTO outbox_message (contact_id, priority, essential, message_key, "
            f"params, actions, broadcast_id, status, attempts, parts_sent, next_attempt_at, "
            f"timeouts, created_at) SELECT n, 3, {false}, '{BROADCAST_KEY}', '{{}}', '[]', 1, "
            f"'pending', 0, 0, {created}, 0, {created} FROM ({numbers}) AS s"))
        places = ", ".join(f"({k}, {village})" for k, village in enumerate(villages))
        await conn.execute(text(
            f"WITH place(k, village) AS (VALUES {places}) "
            f"INSERT INTO help_request (id, reference, contact_id, status, head_name, phone, "
            f"village_id, street, rt, rw, household_size, vulnerabilities, needs, "
            f"identity_key, duplicate_reasons, served_before, queue_rank, failed_deliveries, "
            f"created_at, updated_at) "
            f"SELECT n, 'GT-' || CAST(n AS TEXT), n, {_request_status('n')}, '', '', "
            f"place.village, '', '', '', 4, '[]', '[\"food\"]', CAST(n AS TEXT), '[]', "
            f"{false}, 0, 0, {asked}, {asked} "
            f"FROM ({numbers}) AS s JOIN place ON place.k = n % {len(villages)}"))
        # A delivery for every fifth request: the aggregator's (its own kelurahan come
        # first of every four) and, for the others, the other kota's aggregator's.
        await conn.execute(text(
            f"INSERT INTO delivery (request_id, aggregator_id, category, quantity, status, "
            f"wrong_codes, locked, disputed, delivered_at, rating, created_at, updated_at) "
            f"SELECT n, CASE WHEN n % 4 = 0 THEN 1 ELSE 2 END, 'food_package', 1, "
            f"{_delivery_status('n')}, 0, {false}, "
            f"CASE WHEN n % 97 = 0 THEN {true} ELSE {false} END, "
            f"CASE WHEN {_delivery_status('n')} = 'delivered' THEN {asked} END, "
            f"CASE WHEN {_delivery_status('n')} = 'delivered' AND n % 3 = 0 THEN 4 + n % 2 "
            f"END, {asked}, {asked} FROM ({numbers}) AS s WHERE n % 5 = 0"))


async def seed(engine: AsyncEngine, regency: int, other: int) -> None:
    """The broadcast, the aggregator of one kota whose export is measured, and the settled
    rows to prune."""
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO broadcast (id, text, audience, recipients, created_at) "
            "VALUES (1, 'Banjir: posko dibuka', '{}', 0, CURRENT_TIMESTAMP)"))
        await conn.execute(text(
            "INSERT INTO aggregator (id, name, posko_address, posko_hours, created_at) "
            "VALUES (1, 'Posko', 'Jl. Raya 1', '', CURRENT_TIMESTAMP)"))
        await conn.execute(text(
            "INSERT INTO aggregator (id, name, posko_address, posko_hours, created_at) "
            "VALUES (2, 'Posko lain', 'Jl. Raya 2', '', CURRENT_TIMESTAMP)"))
        if engine.dialect.name == "postgresql":
            # Rows given their ids leave the sequences behind: the broadcast timed later
            # takes the next id.
            await conn.execute(text(
                "SELECT setval(pg_get_serial_sequence('broadcast', 'id'), 1)"))
        await conn.execute(text(
            "INSERT INTO aggregator_area (aggregator_id, area_id) VALUES (1, :regency), "
            "(2, :other)"), {"regency": regency, "other": other})
        await conn.execute(text(
            "INSERT INTO contact (id, channel, chat_id, language, created_at) "
            f"VALUES ({STAFF}, 'telegram', 'staff', 'en', CURRENT_TIMESTAMP)"))
        await conn.execute(text(
            "INSERT INTO staff_member (contact_id, aggregator_id, joined_at) "
            f"VALUES ({STAFF}, 1, CURRENT_TIMESTAMP)"))
    await add_settled(engine)


async def add_settled(engine: AsyncEngine) -> None:
    """Settled rows past their keep, to be pruned, of contacts of their own (ids above any
    bulk one)."""
    dialect = engine.dialect.name
    old = "'2025-01-01 00:00:00'" if dialect == "sqlite" \
        else "TIMESTAMPTZ '2025-01-01 00:00:00+00'"
    numbers = _numbers(dialect, 1, SETTLED)
    false = "0" if dialect == "sqlite" else "false"
    async with engine.begin() as conn:
        await conn.execute(text(
            f"INSERT INTO contact (id, channel, chat_id, language, created_at) "
            f"SELECT {OLD} + n, 'telegram', 'old' || CAST(n AS TEXT), 'id', {old} "
            f"FROM ({numbers}) AS s WHERE NOT EXISTS (SELECT 1 FROM contact "
            f"WHERE id = {OLD} + n)"))
        await conn.execute(text(
            f"INSERT INTO outbox_message (contact_id, priority, essential, params, actions, "
            f"status, attempts, parts_sent, next_attempt_at, timeouts, created_at, sent_at) "
            f"SELECT {OLD} + n, 1, {false}, '{{}}', '[]', 'sent', 1, 1, {old}, 0, {old}, "
            f"{old} FROM ({numbers}) AS s"))


# What each figure at the big size must stay within (issue 24: "City scale").
PAGE_BUDGET_MS = 150.0
FIRST_BYTE_BUDGET_MS = 200.0
# The biggest aggregator's requests.csv at 1,000,000 households, in under 5 s.
BIG_EXPORT_ROWS, EXPORT_BUDGET_S = 285_378, 5.0
# The export's memory stays flat, whatever the size of the file.
EXPORT_MEMORY_BUDGET_MB = 10.0
# A webhook beside an export or a broadcast being queued: no longer than a page may take
# to read, and far from the seconds it took when they shared SQLite's one connection.
WEBHOOK_BUDGET_MS = 50.0
BROADCAST_BUDGET_S = 10.0
# Sending with the whole city queued: this share of the platform's limit at least, and not
# one message refused.
SENDING_BUDGET = 0.97
# Claim and prune: the cost must not grow with the queue.
RATIO_BUDGET = 2.0


def verdicts(big: dict[str, tuple[float, float]], small: dict[str, tuple[float, float]]
             ) -> list[str]:
    """The budgets broken, and last `city: N/M within budget`."""
    checks = {f"{name}_ratio": big[name][1] / small[name][1] < RATIO_BUDGET
              for name in ("claim", "prune")}
    checks.update({f"page_{page}{cold}": big[f"page_{page}{cold}"][1] < PAGE_BUDGET_MS
                   for page in PAGES for cold in ("", "_cold")})
    checks["export_first_byte"] = big["export_first_byte"][0] < FIRST_BYTE_BUDGET_MS
    checks["export_285k"] = BIG_EXPORT_ROWS / big["export_rows_per_s"][0] < EXPORT_BUDGET_S
    checks["export_memory"] = big["export_memory_mb"][0] <= EXPORT_MEMORY_BUDGET_MB
    for name in ("webhook_during_export", "webhook_during_public",
                 "webhook_during_broadcast", "webhook_during_sending"):
        checks[name] = big[name][1] < WEBHOOK_BUDGET_MS
    checks["broadcast_queue"] = big["broadcast_queue"][0] / 1000 < BROADCAST_BUDGET_S
    checks["sending_rate"] = big["sending_rate"][0] / TELEGRAM_LIMIT >= SENDING_BUDGET
    checks["sending_refused"] = big["sending_refused"][0] == 0
    lines = [f"over budget: {name}" for name, kept in checks.items() if not kept]
    lines.append(f"city: {sum(checks.values())}/{len(checks)} within budget")
    return lines


async def settle(engine: AsyncEngine) -> None:
    """The database as it is some minutes after a bulk load: statistics gathered, and on
    PostgreSQL the new rows vacuumed, as autovacuum does after so many inserts (until
    then, counting rows by an index must visit the table for each)."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
    await refresh_statistics(engine)


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1,
                                                   round(0.95 * (len(ordered) - 1)))]


async def timed_runs(runs: int, one: Callable[[], Awaitable[None]],
                     reset: Callable[[], Awaitable[None]] | None = None
                     ) -> tuple[float, float]:
    """p50 and p95 of `one` in ms, after a warm-up; `reset` (untimed) after each."""
    samples = []
    for run in range(runs + 1):
        started = time.perf_counter()
        await one()
        if run:
            samples.append((time.perf_counter() - started) * 1000)
        if reset is not None:
            await reset()
    return percentiles(samples)


async def measure(services: Services, claims: int, webhooks: int, kota: int,
                  sending: float) -> dict[str, tuple[float, float]]:
    engine = services.engine

    async def one_claim() -> None:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            rows, _ = await claim(conn, ["telegram"], NOW, CLAIM_BATCH, timedelta(minutes=5),
                                  "bench")
            await transaction.rollback()
        if len(rows) != CLAIM_BATCH:
            raise BenchmarkFailure(f"claimed {len(rows)} rows, not {CLAIM_BATCH}")

    async def one_prune() -> None:
        pruned = await prune(engine, NOW - KEEP)
        if pruned != SETTLED:
            raise BenchmarkFailure(f"pruned {pruned} rows, not {SETTLED}")

    return {"claim": await timed_runs(claims, one_claim),
            "prune": await timed_runs(PRUNES, one_prune, lambda: add_settled(engine)),
            **await measure_export(services),
            **await measure_webhooks(services, webhooks),
            **await measure_pages(services, kota),
            **await measure_broadcast(services),
            **await measure_sending(services, sending)}


async def store_webhook(services: Services, external_id: str) -> None:
    """What a chat app's webhook does before it answers: its update stored in the
    inbound queue, in a unit of work on the writer."""
    update = ToStore("telegram", external_id, "1", {"update_id": 1})
    async with services.engine.begin() as connection:
        await store_batch(connection, [update], NOW)


async def webhooks_while(services: Services, prefix: str, going: Callable[[], bool]
                         ) -> list[float]:
    """Webhooks stored WEBHOOK_GAP apart as long as `going()`, two at least: ms each."""
    samples: list[float] = []
    while len(samples) < 2 or going():
        begun = time.perf_counter()
        await store_webhook(services, f"{prefix}-{len(samples)}")
        samples.append((time.perf_counter() - begun) * 1000)
        await asyncio.sleep(WEBHOOK_GAP)
    return samples


async def measure_sending(services: Services, seconds: float
                          ) -> dict[str, tuple[float, float]]:
    """The dispatcher sending the queued broadcast for `seconds` at Telegram's limits, to
    a fake that refuses what goes beyond them, with webhooks stored beside it; the rows it
    sent (or holds) are put back in the queue after, for the next size."""
    async with FakeTelegramAPI() as fake:
        fake.enforce_rate_limits(per_chat_per_second=CHAT_LIMIT,
                                 overall_per_second=TELEGRAM_LIMIT)
        config = dispatch_config(services.config, fake, messages_per_second=TELEGRAM_LIMIT,
                                 chat_messages_per_second=CHAT_LIMIT)
        dispatch = DispatchUnderTest(services, config)
        await dispatch.start()
        try:
            deadline = time.perf_counter() + seconds
            samples = await webhooks_while(services, "sending",
                                           lambda: time.perf_counter() < deadline)
        finally:
            await dispatch.stop()
        sent = send_times(fake)
        refused = fake.rate_limit_violations
    # The first second's burst is sent at once, without a wait: counting it would flatter
    # the rate.
    after_burst = len(sent) - math.floor(TELEGRAM_LIMIT)
    if after_burst <= 0:
        raise BenchmarkFailure(f"the dispatcher sent {len(sent)} messages in {seconds} s")
    rate = after_burst / (sent[-1] - sent[0])
    async with services.engine.begin() as conn:
        await conn.execute(text(
            "UPDATE outbox_message SET status = 'pending', attempts = 0, parts_sent = 0, "
            "lease_owner = NULL, lease_until = NULL, sent_at = NULL, "
            "platform_message_id = NULL, next_attempt_at = created_at "
            "WHERE broadcast_id = 1 AND status != 'pending'"))
        # The dispatcher prunes as it starts: the settled rows are laid out again.
        await conn.execute(text(f"DELETE FROM outbox_message WHERE contact_id > {OLD} "
                                f"AND contact_id <= {OLD + SETTLED}"))
    await add_settled(services.engine)
    return {"sending_rate": (rate, rate), "sending_refused": (refused, refused),
            "webhook_during_sending": percentiles(samples)}


async def measure_broadcast(services: Services) -> dict[str, tuple[float, float]]:
    """A broadcast to everyone: the count the operator confirms, then the rows queued in
    batches (`gotong broadcast`), with webhooks stored beside it; its rows are deleted
    after, so that the next size starts from the same queue."""
    started = time.perf_counter()
    async with services.reads() as session:
        everyone = await count_recipients(session, Audience())
    counted = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    queueing = asyncio.create_task(queue_broadcast(services.sessions, "Banjir", Audience(),
                                                   NOW))
    samples = await webhooks_while(services, "broadcast", lambda: not queueing.done())
    broadcast = await queueing
    queued = (time.perf_counter() - started) * 1000
    if broadcast.recipients != everyone:
        raise BenchmarkFailure(f"queued {broadcast.recipients} of {everyone}")
    async with services.engine.begin() as conn:
        await conn.execute(text("DELETE FROM outbox_message WHERE broadcast_id = :id"),
                           {"id": broadcast.id})
    return {"broadcast_count": (counted, counted), "broadcast_queue": (queued, queued),
            "webhook_during_broadcast": percentiles(samples)}


async def measure_pages(services: Services, kota: int) -> dict[str, tuple[float, float]]:
    """Each page in PAGES over HTTP as the aggregator's staff member: its first view
    after a restart (new services and web app on the same database: connections, caches
    and templates cold), then p50 and p95 of the views after a first one."""
    # Signed in before the restart, as the staff member was.
    async with services.sessions() as session, session.begin():
        token = await start_session(session, STAFF, datetime.now(UTC), timedelta(hours=1))
    restarted = await open_services(services.config, migrate=False)
    try:
        cold = await view_pages(restarted, kota, token, 0)
    finally:
        await restarted.close()
    return {**{f"{name}_cold": figure for name, figure in cold.items()},
            **await view_pages(services, kota, token, PAGE_RUNS)}


async def view_pages(services: Services, kota: int, token: str, runs: int
                     ) -> dict[str, tuple[float, float]]:
    """p50 and p95 of `runs` views of each page after a first (untimed) one; with no
    runs, the first view's time."""
    app = create_web_app(services=services)
    # Every view of the public page computes its figures: the cost of an uncached view.
    app[PUBLIC_FIGURES].seconds = 0
    server = TestServer(app)
    await server.start_server()
    headers = {"Cookie": f"gotong_session={token}", "Accept-Language": "en"}
    results = {}
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            for name, path in PAGES.items():
                url = str(server.make_url(path.format(kota=kota)))

                async def view(url: str = url) -> None:
                    async with client.get(url, headers=headers,
                                          allow_redirects=False) as response:
                        await response.read()
                        if response.status != 200:
                            raise BenchmarkFailure(f"{url}: {response.status}")

                if runs:
                    results[f"page_{name}"] = await timed_runs(runs, view)
                else:
                    started = time.perf_counter()
                    await view()
                    first = (time.perf_counter() - started) * 1000
                    results[f"page_{name}"] = (first, first)
    finally:
        await server.close()
    return results


async def measure_webhooks(services: Services, runs: int) -> dict[str, tuple[float, float]]:
    """p50 and p95 of storing a webhook's update, alone, with the aggregator's export
    running beside it, and with the public page's figures being computed beside it
    (each started again whenever it ends, until the last webhook)."""
    numbers = itertools.count()

    async def one_webhook() -> None:
        await store_webhook(services, f"bench-{next(numbers)}")

    async def gap() -> None:
        # Webhooks arrive apart, not back to back: each finds the reads somewhere else.
        await asyncio.sleep(WEBHOOK_GAP)

    async def export() -> None:
        async for _ in export_chunks(services.reads, services.areas, "requests", 1):
            pass

    async def public_figures() -> None:
        await compute_snapshot(services)

    async def beside(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
        running = asyncio.create_task(_again(work))
        try:
            # Under way: the webhooks meet it in full flow.
            await asyncio.sleep(WEBHOOK_GAP)
            return await timed_runs(runs, one_webhook, gap)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    return {"webhook": await timed_runs(runs, one_webhook, gap),
            "webhook_during_export": await beside(export),
            "webhook_during_public": await beside(public_figures)}


async def _again(work: Callable[[], Awaitable[None]]) -> None:
    while True:
        await work()


async def measure_export(services: Services) -> dict[str, tuple[float, float]]:
    """One export of the aggregator's requests: ms to the header and to the first rows,
    and rows a second over the whole file; then another, untimed, with Python's
    allocations traced: how far they rose above what they were before (MB)."""
    started = time.perf_counter()
    marks: list[float] = []
    rows = 0
    async for chunk in export_chunks(services.reads, services.areas, "requests", 1):
        if len(marks) < 2:
            marks.append((time.perf_counter() - started) * 1000)
        rows += chunk.count("\n")
    elapsed = time.perf_counter() - started
    rate = (rows - 1) / elapsed
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async for _ in export_chunks(services.reads, services.areas, "requests", 1):
            pass
        grew = (tracemalloc.get_traced_memory()[1] - before) / 1_000_000
    finally:
        tracemalloc.stop()
    return {"export_first_byte": (marks[0], marks[0]),
            "export_first_rows": (marks[-1], marks[-1]), "export_rows_per_s": (rate, rate),
            "export_rows": (rows - 1, rows - 1), "export_memory_mb": (grew, grew)}


async def benchmark(rows: int, claims: int, webhooks: int, sending: float, url: str | None
                    ) -> list[str]:
    lines = []
    async with scratch_database(url) as database:
        print(database.header, flush=True)
        services = await open_services(bench_config(database.url), migrate=True)
        # As `gotong run` does after start-up.
        settle_heap()
        try:
            [regency] = services.areas.named(AreaLevel.REGENCY, KOTA)
            [other] = services.areas.named(AreaLevel.REGENCY, OTHER_KOTA)
            # A quarter of the requests are the aggregator's, spread over its kelurahan.
            own = sorted(services.areas.villages_under([regency.id]))
            elsewhere = sorted(services.areas.villages_under([other.id]))
            villages = [village for pair in zip(own, elsewhere, elsewhere, elsewhere,
                                                strict=False) for village in pair]
            await seed(services.engine, regency.id, other.id)
            results = {}
            done = 0
            for size in (SMALL, rows):
                started = time.perf_counter()
                await fill(services.engine, done + 1, size, villages)
                done = size
                await settle(services.engine)
                print(f"filled {size} rows in {time.perf_counter() - started:.1f} s",
                      flush=True)
                results[size] = await measure(services, claims, webhooks, regency.id,
                                              sending)
                for name, (p50, p95) in results[size].items():
                    print(f"  n={size} {name} p50={p50:.1f} p95={p95:.1f}", flush=True)
        finally:
            await services.close()
    small, big = results[SMALL], results[rows]
    label = "1m" if rows == 1_000_000 else f"{rows}"
    for name in ("claim", "prune", "webhook", "webhook_during_export",
                 "webhook_during_public", "webhook_during_broadcast",
                 "webhook_during_sending", *(f"page_{page}" for page in PAGES),
                 *(f"page_{page}_cold" for page in PAGES),
                 "broadcast_count", "broadcast_queue"):
        lines.append(f"{name} p50_{label}_ms={big[name][0]:.1f} p95_{label}_ms="
                     f"{big[name][1]:.1f} ratio={big[name][1] / small[name][1]:.2f}")
    # A webhook during an export against one alone, at the big size: near 1 when the
    # export never holds the writer.
    lines.append(f"webhook_export_vs_alone p95_{label}_ms={big['webhook_during_export'][1]:.1f}"
                 f" ratio={big['webhook_during_export'][1] / big['webhook'][1]:.2f}")
    export = {name: big[f"export_{name}"][0] for name in ("first_byte", "first_rows",
                                                          "rows_per_s")}
    lines.append(f"export first_byte_ms={export['first_byte']:.1f} "
                 f"first_rows_ms={export['first_rows']:.1f} "
                 f"rows_per_s={export['rows_per_s']:.0f} "
                 f"memory_mb=+{big['export_memory_mb'][0]:.1f} "
                 f"ratio={export['first_rows'] / small['export_first_rows'][0]:.2f}")
    rate = big["sending_rate"][0]
    lines.append(f"sending messages_per_s_{label}={rate:.1f} of {TELEGRAM_LIMIT:g} "
                 f"share={rate / TELEGRAM_LIMIT:.2f} refused={big['sending_refused'][0]:.0f} "
                 f"ratio={rate / small['sending_rate'][0]:.2f}")
    lines.extend(verdicts(big, small))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="pending rows of the big queue (default 1,000,000)")
    parser.add_argument("--claims", type=int, default=50, help="claims timed at each size")
    parser.add_argument("--webhooks", type=int, default=100,
                        help="webhooks timed at each size, alone and during an export")
    parser.add_argument("--sending", type=float, default=10.0,
                        help="seconds of sending timed at each size (default 10)")
    add_database_argument(parser)
    args = parser.parse_args(argv)
    if args.rows <= SMALL:
        parser.error(f"--rows must be more than {SMALL}")

    def show(lines: list[str]) -> int:
        for line in lines:
            print(line)
        return 0

    return run_benchmark(benchmark(args.rows, args.claims, args.webhooks, args.sending,
                                   args.database), show)


if __name__ == "__main__":
    sys.exit(main())
