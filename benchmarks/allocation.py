"""Allocation at scale: the staff queue and the allocation proposal over 1,000,000 households.

A database of N households (help_request rows, default 1,000,000) is generated once per
backend and kept: `data/bench-allocation-N.sqlite3`, and the PostgreSQL database
`gotong_bench_allocation_N` on the server of GOTONG_TEST_DATABASE_URL (or --postgres).  The
schema is the real one (the migrations), the areas are Jakarta's, and the data is made to
look like a busy relief operation:

* households are spread over the 267 kelurahan unevenly: each kota gets a share by its
  population, each of its kelurahan a lognormal weight within it;
* names and streets come from faker's `id_ID` locale (a pool of them, combined at random),
  phones are Indonesian mobiles (+628...), 70% gave a NIK (its hash), sizes are 1-12,
  vulnerabilities are drawn per kind; `identity_key`, `served_before` and `queue_rank` are
  computed with the application's own functions;
* requests came in evenly over the last 120 days and were reviewed a few days later: most
  are submitted or verified, some allocated, delivered, rejected or cancelled; each
  allocated or delivered one has its delivery, made about a week after verification;
* a tenth of the open requests are a second request, from the same chat, of a household
  served before: `served_before` says whether that delivery came before the request's rank
  was fixed (at submission, or at verification);
* 6% of the households waiting with an open request were served since through a later
  request (a relative's phone, the same name, address and NIK), mostly in the last two
  weeks: the allocation proposal must skip those in their cool-down.

One aggregator per kota covers it; two more cover a single kelurahan of Jakarta Timur each
(the median one by size, and the smallest).  For the aggregator of Jakarta Timur and for
the two kelurahan, the kelurahan they cover are found as the application finds them, and
these are timed, each in a fresh session, after warm-ups::

    queue limit=1      what /queue shows: queue_of(session, villages, limit=1)
    queue limit=8      queue_of(session, villages, limit=8)
    proposal limit=10  propose(session, villages, 10, now, cooldown=14 days)

Each is measured against a baseline in the same run, alternately: the same query ordered by
`queue_rank + 0` instead of `queue_rank`, so that no index gives the order (which is what
the queries would cost without `ix_help_request_queue`).  Both must return the same
households, or the benchmark stops with an error.  For each query the median and 95th
percentile in ms are printed, with ratio = ours / baseline and whether the median is under
the 100 ms target; then the query plans of one run of each query (EXPLAIN QUERY PLAN on
SQLite, EXPLAIN ANALYZE on PostgreSQL)::

    .venv/bin/python benchmarks/allocation.py [--households N] [--runs R] [--only BACKEND]
                                              [--postgres URL] [--regenerate] [--no-plans]

Without a PostgreSQL server (no URL, or it does not answer), that backend is skipped with a
message.  A database is reused only when it was generated completely (it gets its name last).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any, TypeVar

from faker import Faker
from scratch_database import postgres_server, run_admin
from sidebyside import BenchmarkFailure, run_benchmark
from sqlalchemy import (
    JSON,
    Column,
    MetaData,
    Table,
    and_,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from gotong.bot.config import Config, DatabaseConfig, I18nConfig, PrivacyConfig, TelegramConfig
from gotong.bot.services import Services, open_services, prepare_database
from gotong.models.aggregator import Aggregator, covered_areas
from gotong.models.allocation import SCAN_FACTOR, propose
from gotong.models.area import AreaDirectory
from gotong.models.base import Base
from gotong.models.contact import Contact
from gotong.models.db import create_engine, create_session_factory
from gotong.models.delivery import SERVING_STATUSES, Delivery, DeliveryStatus
from gotong.models.figures import counted_after_load
from gotong.models.help_request import (
    NEEDS,
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    REFERENCE_PREFIX,
    VULNERABILITIES,
    HelpRequest,
    identity_key,
    queue_of,
)
from gotong.models.pledge import CATEGORIES
from gotong.models.priority import queue_rank
from gotong.models.request_status import RequestStatus

PROJECT = Path(__file__).resolve().parents[1]
PG_ENV = "GOTONG_TEST_DATABASE_URL"
NIK_KEY = "benchmark-nik-hash-key-" + "k" * 32
PROVINCES = ("DKI Jakarta",)
SEED = 20250701
T = TypeVar("T")
R = TypeVar("R")

# The benchmark's "now": data is generated up to it and the queries are asked at it.
NOW = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
SPAN = timedelta(days=120)
COOLDOWN = timedelta(days=14)
PROPOSAL_SIZE = 10
TARGET_MS = 100.0
CHUNK = 10_000

NAME_POOL = 20_000
STREET_POOL = 4_000
# Population of each kota (rounded): its share of the households.
KOTA_POPULATION = {
    "Kota Jakarta Timur": 3_100_000,
    "Kota Jakarta Barat": 2_500_000,
    "Kota Jakarta Selatan": 2_300_000,
    "Kota Jakarta Utara": 1_800_000,
    "Kota Jakarta Pusat": 1_100_000,
    "Kabupaten Kepulauan Seribu": 29_000,
}
KELURAHAN_SIGMA = 0.7  # spread of the lognormal weight of a kelurahan within its kota
CASE_KOTA = "Kota Jakarta Timur"

STATUS_WEIGHTS = {
    RequestStatus.SUBMITTED: 0.43,
    RequestStatus.VERIFIED: 0.33,
    RequestStatus.ALLOCATED: 0.06,
    RequestStatus.DELIVERED: 0.12,
    RequestStatus.REJECTED: 0.05,
    RequestStatus.CANCELLED: 0.01,
}
# Share of open requests made again by a household already served (from the same chat).
REPEAT_SHARE = 0.1
# Share of households waiting with an open request that were served since through another,
# later request (a relative's phone, another posko): the cool-down's case.
SERVED_LATER_SHARE = 0.06
SIZE_WEIGHTS = (5, 10, 17, 22, 18, 11, 7, 4, 2.5, 1.5, 1, 1)  # household of 1..12
VULNERABILITY_CHANCE = {
    "elderly": 0.25, "disability": 0.08, "pregnant": 0.05, "under_five": 0.22,
    "chronic": 0.12, "lost_income": 0.35,
}
NEED_CHANCE = {"food": 0.9, "hygiene": 0.35, "medicine": 0.2, "baby": 0.15, "other": 0.05}
NEEDS_OTHER = ("selimut", "air bersih", "popok dewasa", "obat asma", "susu lansia", "tikar")
MOBILE_PREFIXES = ("11", "12", "13", "21", "22", "23", "52", "53", "77", "78", "81", "82",
                   "83", "85", "87", "88", "95", "96", "97", "98", "99")
assert set(VULNERABILITY_CHANCE) == set(VULNERABILITIES)
assert set(NEED_CHANCE) == set(NEEDS)


def log(text_: str) -> None:
    print(text_, file=sys.stderr, flush=True)


# --- the data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kelurahan:
    id: int
    name: str
    regency_id: int
    regency: str
    weight: float


def kelurahan_weights(areas: AreaDirectory, rng: random.Random) -> list[Kelurahan]:
    """Every kelurahan in scope with its share of households: its kota's population split
    by a lognormal weight per kelurahan."""
    found: list[Kelurahan] = []
    for regency in areas.regencies():
        ids = sorted(areas.villages_under([regency.id]))
        draws = [rng.lognormvariate(0.0, KELURAHAN_SIGMA) for _ in ids]
        population = KOTA_POPULATION.get(regency.name, 1_000_000)
        for village_id, draw in zip(ids, draws, strict=True):
            entry = areas.get(village_id)
            assert entry is not None
            found.append(Kelurahan(village_id, entry.name, regency.id, regency.name,
                                   population * draw / sum(draws)))
    return found


@dataclass(frozen=True)
class Household:
    """Who a request is from, as a repeated request copies it."""

    contact_id: int
    head_name: str
    phone: str
    nik_hash: str | None
    nik_last4: str | None
    village_id: int
    street: str
    rt: str
    rw: str
    identity: str


@dataclass(frozen=True)
class Served:
    """A request that got a delivery: its household may ask again."""

    request_id: int
    status: str
    household: Household
    delivered_at: datetime  # when the delivery was made (allocated)


@dataclass
class Chunk:
    contacts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Aggregators:
    """The aggregators made: one per kota, and the two kelurahan ones of the cases."""

    rows: list[dict[str, Any]]
    areas: list[dict[str, Any]]
    by_regency: dict[int, int]


class Generator:
    """Deterministic households: the same seed and N give the same rows on every backend."""

    def __init__(self, households: int, kelurahan: list[Kelurahan], seed: int = SEED) -> None:
        self.households = households
        self.rng = random.Random(seed)
        self.seed = seed
        fake = Faker("id_ID")
        fake.seed_instance(seed)
        self.names = [fake.name() for _ in range(NAME_POOL)]
        self.streets = [fake.street_name() for _ in range(STREET_POOL)]
        self.kelurahan = kelurahan
        self.village_ids = [k.id for k in kelurahan]
        self.village_cum = list(accumulate(k.weight for k in kelurahan))
        self.statuses = list(STATUS_WEIGHTS)
        self.status_cum = list(accumulate(STATUS_WEIGHTS.values()))
        self.size_cum = list(accumulate(SIZE_WEIGHTS))
        self.aggregators = self._aggregators()

    def _aggregators(self) -> Aggregators:
        rows: list[dict[str, Any]] = []
        areas: list[dict[str, Any]] = []
        by_regency: dict[int, int] = {}
        regencies = sorted({(k.regency, k.regency_id) for k in self.kelurahan})
        for name, regency_id in regencies:
            aggregator_id = len(rows) + 1
            rows.append(self._aggregator(aggregator_id, f"Posko {name}"))
            areas.append({"id": len(areas) + 1, "aggregator_id": aggregator_id,
                          "area_id": regency_id})
            by_regency[regency_id] = aggregator_id
        # The kelurahan cases: Jakarta Timur's median kelurahan by size, and its smallest.
        timur = sorted((k for k in self.kelurahan if k.regency == CASE_KOTA),
                       key=lambda k: k.weight)
        for village in (timur[len(timur) // 2], timur[0]):
            aggregator_id = len(rows) + 1
            rows.append(self._aggregator(aggregator_id, f"Posko Kelurahan {village.name}"))
            areas.append({"id": len(areas) + 1, "aggregator_id": aggregator_id,
                          "area_id": village.id})
        return Aggregators(rows, areas, by_regency)

    @staticmethod
    def _aggregator(aggregator_id: int, name: str) -> dict[str, Any]:
        return {"id": aggregator_id, "name": name,
                "posko_address": f"Jl. Posko No. {aggregator_id}",
                "posko_hours": "Senin-Sabtu 08.00-16.00", "created_at": NOW - SPAN}

    def _new_household(self, contact_id: int, request_id: int, number: int) -> Household:
        rng = self.rng
        head_name = self.names[rng.randrange(NAME_POOL)]
        prefix, line = divmod(number, 10**8)
        phone = f"+628{MOBILE_PREFIXES[prefix]}{line:08d}"
        nik_hash = nik_last4 = None
        if rng.random() < 0.7:
            nik_hash = hashlib.sha256(f"nik:{self.seed}:{request_id}".encode()).hexdigest()
            nik_last4 = f"{rng.randrange(10_000):04d}"
        village_id = self.village_ids[bisect.bisect_right(
            self.village_cum, rng.random() * self.village_cum[-1])]
        street = f"{self.streets[rng.randrange(STREET_POOL)]} No. {rng.randint(1, 150)}"
        rt, rw = f"{rng.randint(1, 15):03d}", f"{rng.randint(1, 12):03d}"
        return Household(contact_id, head_name, phone, nik_hash, nik_last4, village_id,
                         street, rt, rw, identity_key(head_name, village_id, street, rt, rw))

    def _after(self, start: datetime, mean_days: float) -> datetime:
        """Some days after `start` (exponentially), or at random before now if that is
        later than now."""
        later = start + timedelta(days=self.rng.expovariate(1 / mean_days))
        return later if later < NOW else start + (NOW - start) * self.rng.random()

    def _created(self, index: int) -> datetime:
        # Requests come in at an even pace over the span; ids follow time.
        return NOW - SPAN + SPAN * ((index + self.rng.random()) / self.households)

    def _contact(self, chunk: Chunk, household: Household, created: datetime) -> None:
        whatsapp = self.rng.random() < 0.15
        chunk.contacts.append({
            "id": household.contact_id, "channel": "whatsapp" if whatsapp else "telegram",
            "chat_id": household.phone[1:] if whatsapp else str(70_000_000
                                                                 + household.contact_id),
            "language": "id", "verified_phone": household.phone if whatsapp else None,
            "created_at": created, "opted_out_at": None, "unreachable_at": None})

    def chunks(self) -> Iterator[Chunk]:
        rng = self.rng
        n = self.households
        codes = rng.sample(range(len(REFERENCE_ALPHABET) ** REFERENCE_LENGTH), n)
        # Every contact its own phone (and so its own WhatsApp chat).
        phones = rng.sample(range(len(MOBILE_PREFIXES) * 10**8), n)
        regency_of = {k.id: k.regency_id for k in self.kelurahan}
        served: list[Served] = []  # households that may ask again, each once
        # Request index -> households to be served through that (later) request, and when.
        later: dict[int, list[tuple[Household, datetime]]] = {}
        contact_id = delivery_id = 0
        chunk = Chunk()
        for index in range(n):
            request_id = index + 1
            created = self._created(index)
            status = self.statuses[bisect.bisect_right(
                self.status_cum, rng.random() * self.status_cum[-1])]
            repeat: Served | None = None
            served_later = later.pop(index, [])
            if len(served_later) > 1:
                later.setdefault(index + 1, []).extend(served_later[1:])
            planned: datetime | None = None
            if served_later:
                # The same household (a relative's phone: another contact) asked again
                # and was served through this request while its first one still waits.
                first, planned = served_later[0]
                contact_id += 1
                prefix, line = divmod(phones[index], 10**8)
                household = dataclasses.replace(
                    first, contact_id=contact_id, phone=f"+628{MOBILE_PREFIXES[prefix]}{line:08d}")
                self._contact(chunk, household, created)
                status = (RequestStatus.ALLOCATED if planned > NOW - timedelta(days=2)
                          else RequestStatus.DELIVERED)
            else:
                if (status in (RequestStatus.SUBMITTED, RequestStatus.VERIFIED)
                        and len(served) >= 100 and rng.random() < REPEAT_SHARE):
                    # A served household asks again (from the same chat); each does once.
                    pick = rng.randrange(len(served))
                    served[pick], served[-1] = served[-1], served[pick]
                    repeat = served.pop()
                if repeat is not None:
                    household = repeat.household
                else:
                    contact_id += 1
                    household = self._new_household(contact_id, request_id, phones[index])
                    self._contact(chunk, household, created)
            size = 1 + bisect.bisect_right(self.size_cum, rng.random() * self.size_cum[-1])
            vulnerabilities = [v for v in VULNERABILITIES
                               if rng.random() < VULNERABILITY_CHANCE[v]]
            needs = [need for need in NEEDS if rng.random() < NEED_CHANCE[need]] or ["food"]
            # Staff verified (or rejected) it a few days after it came in.
            reviewed = self._after(created, 4)
            updated = created if status == RequestStatus.SUBMITTED else reviewed
            # The household counts as served if it had a delivery before the rank was fixed
            # (at submission, or at verification).
            ranked_at = reviewed if status == RequestStatus.VERIFIED else created
            served_before = repeat is not None and repeat.delivered_at <= ranked_at
            duplicate_of = None
            reasons: list[str] = []
            if repeat is not None and repeat.status == RequestStatus.ALLOCATED:
                duplicate_of = repeat.request_id
                reasons = (["nik"] if household.nik_hash else []) + ["phone", "name_address"]
            if (repeat is None and not served_later
                    and status in (RequestStatus.SUBMITTED, RequestStatus.VERIFIED)
                    and rng.random() < SERVED_LATER_SHARE):
                # Served lately through a later request (at another posko, say), after this
                # one's rank was fixed: the proposal must skip it while in its cool-down.
                when = NOW - timedelta(days=rng.expovariate(1 / 7))
                asked = when - timedelta(days=rng.expovariate(1 / 3))
                target = max(index + 1, int((asked - (NOW - SPAN)) / SPAN * n))
                if when > ranked_at + timedelta(hours=1) and target < n:
                    later.setdefault(target, []).append((household, when))
            if status in (RequestStatus.ALLOCATED, RequestStatus.DELIVERED):
                if planned is not None:
                    delivered_at = min(max(planned, created + timedelta(hours=1)), NOW)
                else:
                    # Allocated about a week after verification, as stock came in.
                    delivered_at = self._after(reviewed, 7)
                done = min(delivered_at + timedelta(hours=rng.uniform(2, 72)), NOW)
                updated = delivered_at if status == RequestStatus.ALLOCATED else done
                delivery_id += 1
                chunk.deliveries.append({
                    "id": delivery_id, "request_id": request_id,
                    "aggregator_id": self.aggregators.by_regency[
                        regency_of[household.village_id]],
                    "category": CATEGORIES[0], "quantity": 1,
                    "status": (DeliveryStatus.ALLOCATED if status == RequestStatus.ALLOCATED
                               else DeliveryStatus.DELIVERED),
                    "override_reason": None, "allocated_by": None,
                    "delivered_at": done if status == RequestStatus.DELIVERED else None,
                    "created_at": delivered_at, "updated_at": updated})
                if planned is None:
                    served.append(Served(request_id, status, household, delivered_at))
            chunk.requests.append({
                "id": request_id, "reference": REFERENCE_PREFIX + _code(codes[index]),
                "contact_id": household.contact_id, "status": status,
                "head_name": household.head_name, "phone": household.phone,
                "nik_hash": household.nik_hash, "nik_last4": household.nik_last4,
                "village_id": household.village_id, "street": household.street,
                "rt": household.rt, "rw": household.rw, "household_size": size,
                "vulnerabilities": vulnerabilities, "needs": needs,
                "needs_other": rng.choice(NEEDS_OTHER) if "other" in needs else None,
                "identity_key": household.identity, "duplicate_of_id": duplicate_of,
                "duplicate_reasons": reasons, "served_before": served_before,
                "queue_rank": queue_rank(size, vulnerabilities, created, served_before),
                "created_at": created, "updated_at": updated})
            if len(chunk.requests) == CHUNK:
                yield chunk
                chunk = Chunk()
        if chunk.requests:
            yield chunk


def _code(number: int) -> str:
    digits = []
    for _ in range(REFERENCE_LENGTH):
        number, digit = divmod(number, len(REFERENCE_ALPHABET))
        digits.append(REFERENCE_ALPHABET[digit])
    return "".join(digits)


# --- the databases ------------------------------------------------------------------------


def _table(name: str, columns: Sequence[str]) -> Table:
    """The model's table cut to the columns the rows give (the database fills the rest with
    its own defaults), so that a column a model has and the migrations do not yet have
    does not stop the load."""
    model = Base.metadata.tables[name]
    return Table(name, MetaData(), *(Column(c.name, c.type, primary_key=c.primary_key)
                                     for c in model.columns if c.name in columns))


class Loader:
    """Writes the generated rows to one backend."""

    async def rows(self, conn: AsyncConnection, table: str,
                   rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await conn.execute(insert(_table(table, list(rows[0]))), list(rows))


class PostgresLoader(Loader):
    """COPY through asyncpg: several times faster than INSERT."""

    async def rows(self, conn: AsyncConnection, table: str,
                   rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        given = _table(table, list(rows[0])).columns
        columns = [c.name for c in given]
        json_columns = {c.name for c in given if isinstance(c.type, JSON)}
        records = [tuple(json.dumps(row[c]) if c in json_columns else row[c] for c in columns)
                   for row in rows]
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(table, records=records, columns=columns)


async def generate(engine: AsyncEngine, households: int, loader: Loader,
                   sqlite: bool) -> float:
    """Migrate, load the areas, and fill the database; the seconds it took."""
    started = time.perf_counter()
    await prepare_database(engine, PROVINCES, TIMEZONE)
    async with create_session_factory(engine)() as session:
        areas = await AreaDirectory.load(session, PROVINCES)
    generator = Generator(households, kelurahan_weights(areas, random.Random(SEED)))
    aggregators = generator.aggregators
    counts: Counter[str] = Counter()
    async with engine.begin() as conn:
        if sqlite:
            # A large page cache: the random-keyed indexes (reference, phone, NIK hash,
            # identity) are written without spilling pages every few rows.
            await conn.exec_driver_sql("PRAGMA cache_size=-2000000")
        await loader.rows(conn, "aggregator", aggregators.rows)
        await loader.rows(conn, "aggregator_area", aggregators.areas)
        # The figures' counters are counted once the rows are in, as migration 0026 does.
        async with counted_after_load(conn, TIMEZONE):
            await load_households(conn, loader, generator, counts, started, households)
        if not sqlite:
            # Ids were given: move the sequences past them, as if the rows came one by one.
            for table in ("aggregator", "aggregator_area", "contact", "help_request",
                          "delivery"):
                await conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"))
    if not sqlite:
        # What autovacuum does after a load like this one, done now.
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


async def load_households(conn: AsyncConnection, loader: Loader, generator: Generator,
                          counts: Counter[str], started: float, households: int) -> None:
    for chunk in generator.chunks():
        await loader.rows(conn, "contact", chunk.contacts)
        await loader.rows(conn, "help_request", chunk.requests)
        await loader.rows(conn, "delivery", chunk.deliveries)
        counts.update(contacts=len(chunk.contacts), requests=len(chunk.requests),
                      deliveries=len(chunk.deliveries))
        if counts["requests"] % 100_000 == 0 or counts["requests"] == households:
            log(f"  {counts['requests']:,} households, {counts['deliveries']:,} deliveries "
                f"({time.perf_counter() - started:.0f} s)")


@dataclass(frozen=True)
class Prepared:
    url: str
    label: str
    generation: float | None  # seconds, or None when reused


async def prepare_sqlite(data_dir: Path, households: int, regenerate: bool) -> Prepared:
    path = data_dir / f"bench-allocation-{households}.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    if _exists(path) and not regenerate:
        return Prepared(url, str(path), None)
    partial = path.with_name(path.name + ".partial")
    _remove(path, partial)
    log(f"sqlite: generating {households:,} households in {path} ...")
    engine = create_engine(f"sqlite+aiosqlite:///{partial}")
    try:
        seconds = await generate(engine, households, Loader(), sqlite=True)
    finally:
        await engine.dispose()
    _rename(partial, path)  # only a complete database gets its name
    return Prepared(url, str(path), seconds)


def _exists(path: Path) -> bool:
    return path.exists()


def _remove(*paths: Path) -> None:
    for path in paths:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _rename(source: Path, target: Path) -> None:
    source.rename(target)


async def prepare_postgres(server_url: str, households: int, regenerate: bool) -> Prepared:
    server = postgres_server(server_url)
    name = f"gotong_bench_allocation_{households}"
    partial = f"{name}_partial"
    url = server.set(database=name).render_as_string(hide_password=False)
    label = f"{server.set(database=name).render_as_string()}"
    exists = await run_admin(server, "SELECT 1 FROM pg_database WHERE datname = :name",
                             name=name)
    if exists and not regenerate:
        return Prepared(url, label, None)
    for stale in (name, partial):
        await run_admin(server, f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
    await run_admin(server, f'CREATE DATABASE "{partial}"')
    log(f"postgresql: generating {households:,} households in database {name} ...")
    engine = create_engine(server.set(database=partial).render_as_string(hide_password=False))
    try:
        seconds = await generate(engine, households, PostgresLoader(), sqlite=False)
    finally:
        await engine.dispose()
    await run_admin(server, f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
    return Prepared(url, label, seconds)


# --- the queries --------------------------------------------------------------------------

Query = Callable[[AsyncSession], Awaitable[list[HelpRequest]]]
# The baseline orders by an expression: no index can give that order.
BASELINE_RANK = HelpRequest.queue_rank + 0


async def baseline_queue(session: AsyncSession, village_ids: set[int], limit: int
                         ) -> list[HelpRequest]:
    """queue_of, ordered without its index."""
    result = await session.scalars(
        select(HelpRequest)
        .where(HelpRequest.status == RequestStatus.SUBMITTED,
               HelpRequest.village_id.in_(list(village_ids)))
        .order_by(BASELINE_RANK.desc(), HelpRequest.id)
        .limit(limit))
    return list(result.all())


async def baseline_propose(session: AsyncSession, village_ids: set[int], limit: int,
                           now: datetime, cooldown: timedelta) -> list[HelpRequest]:
    """propose, ordered without its index (the same paging and cool-down filter)."""
    return await propose(session, village_ids, limit, now, cooldown, rank=BASELINE_RANK)


@dataclass(frozen=True)
class Measure:
    name: str
    ours: Callable[[set[int]], Query]
    baseline: Callable[[set[int]], Query]


MEASURES = (
    Measure("queue limit=1",
            lambda v: lambda s: queue_of(s, v, limit=1),
            lambda v: lambda s: baseline_queue(s, v, 1)),
    Measure("queue limit=8",
            lambda v: lambda s: queue_of(s, v, limit=8),
            lambda v: lambda s: baseline_queue(s, v, 8)),
    Measure(f"proposal limit={PROPOSAL_SIZE}",
            lambda v: lambda s: propose(s, v, PROPOSAL_SIZE, NOW, cooldown=COOLDOWN),
            lambda v: lambda s: baseline_propose(s, v, PROPOSAL_SIZE, NOW, COOLDOWN)),
)


@dataclass(frozen=True)
class Case:
    label: str
    villages: set[int]


async def find_cases(services: Services) -> list[Case]:
    """The aggregators of the cases, and the kelurahan they cover as the app finds them."""
    async with services.sessions() as session:
        aggregators = (await session.execute(
            select(Aggregator.id, Aggregator.name).order_by(Aggregator.id))).all()
        kota = [a for a in aggregators if a.name == f"Posko {CASE_KOTA}"]
        kelurahan = [a for a in aggregators if a.name.startswith("Posko Kelurahan ")]
        if len(kota) != 1 or len(kelurahan) != 2:
            raise BenchmarkFailure(f"the aggregators of the cases are missing: {aggregators}")
        covered = await covered_areas(session, [a.id for a in (*kota, *kelurahan)])
    labels = (CASE_KOTA.removeprefix("Kota ") + " (kota)",
              kelurahan[0].name.removeprefix("Posko ") + " (median)",
              kelurahan[1].name.removeprefix("Posko ") + " (smallest)")
    return [Case(label, services.areas.villages_under(covered.get(aggregator.id, [])))
            for label, aggregator in zip(labels, (*kota, *kelurahan), strict=True)]


async def timed(sessions: async_sessionmaker[AsyncSession],
                query: Callable[[AsyncSession], Awaitable[T]],
                result: Callable[[T], R]) -> tuple[float, R]:
    """One run in a fresh session: seconds, and `result` of what it returned (taken in
    the session)."""
    async with sessions() as session:
        started = time.perf_counter()
        found = await query(session)
        elapsed = time.perf_counter() - started
        return elapsed, result(found)


@dataclass(frozen=True)
class Timing:
    ours: list[float]
    baseline: list[float]


async def alternate(sessions: async_sessionmaker[AsyncSession],
                    ours: Callable[[AsyncSession], Awaitable[T]],
                    baseline: Callable[[AsyncSession], Awaitable[T]],
                    runs: int, warmups: int, result: Callable[[T], R]) -> Timing:
    """Ours and the baseline alternately, each run in a fresh session; the `result` of
    both must be equal on every run."""
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for number in range(warmups + runs):
        order = (("ours", ours), ("baseline", baseline))
        found: dict[str, R] = {}
        for name, query in order if number % 2 == 0 else order[::-1]:
            seconds, found[name] = await timed(sessions, query, result)
            if number >= warmups:
                times[name].append(seconds)
        if found["ours"] != found["baseline"]:
            raise BenchmarkFailure(f"ours found {found['ours']}, the baseline "
                                   f"{found['baseline']}")
    return Timing(times["ours"], times["baseline"])


async def measure(sessions: async_sessionmaker[AsyncSession], ours: Query, baseline: Query,
                  runs: int, warmups: int) -> Timing:
    """Ours and the baseline alternately; both must find the same households."""
    return await alternate(sessions, ours, baseline, runs, warmups,
                           lambda found: [r.id for r in found])


def median_ms(times: Sequence[float]) -> float:
    return statistics.median(times) * 1000


def p95_ms(times: Sequence[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000


# --- the plans ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def captured(engine: AsyncEngine) -> AsyncIterator[list[tuple[str, Any]]]:
    """The statements the database is sent meanwhile, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", keep)


async def plans(services: Services, query: Query, sqlite: bool) -> list[tuple[str, list[str]]]:
    """The plan of each SELECT one run of the query makes."""
    async with captured(services.engine) as statements, services.sessions() as session:
        await query(session)
    shown = []
    async with services.engine.connect() as conn:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            summary = _summary(statement)
            if sqlite:
                rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                   tuple(parameters))).all()
                depth: dict[int, int] = {0: 0}
                lines = []
                for row in rows:
                    node, parent, *_, detail = list[Any](row)
                    depth[node] = depth.get(parent, 0) + 1
                    lines.append("  " * depth[node] + str(detail))
            else:
                rows = (await conn.exec_driver_sql("EXPLAIN ANALYZE " + statement,
                                                   tuple(parameters))).all()
                lines = ["  " + _shorten(str(row[0])) for row in rows]
            shown.append((summary, lines))
        await conn.rollback()
    return shown


def _shorten(line: str) -> str:
    """A plan line with its long array literals ('{a,b,...}') cut to their size."""
    return re.sub(r"'\{([^}]{60,})\}'",
                  lambda m: f"'{{{m.group(1).count(',') + 1} values}}'", line)


def _summary(statement: str) -> str:
    """The statement in short: IN lists of placeholders collapsed, columns left out."""
    flat = " ".join(statement.split())
    flat = re.sub(r"SELECT .*? FROM", "SELECT ... FROM", flat, count=1)
    flat = re.sub(r"\((?:\s*(?:\?|\$\d+(?:::\w+)?)\s*,){3,}[^)]*\)", "(...)", flat)
    return flat if len(flat) < 400 else flat[:400] + " ..."


# --- the run ------------------------------------------------------------------------------


# The zone of the days the figures are counted in: the configuration's default.
TIMEZONE = I18nConfig().timezone


def bench_config(url: str) -> Config:
    return Config(database=DatabaseConfig(url=url), privacy=PrivacyConfig(nik_hash_key=NIK_KEY),
                  telegram=TelegramConfig(token="123456:BENCHMARK"))


async def counts(services: Services, cases: Sequence[Case]) -> list[str]:
    """What is in the database: rows, statuses, deliveries, repeats; per case too."""
    lines = []
    async with services.sessions() as session:
        statuses = dict((await session.execute(
            select(HelpRequest.status, func.count()).group_by(HelpRequest.status))).all())
        total = sum(statuses.values())
        contacts = await session.scalar(select(func.count()).select_from(Contact))
        deliveries = await session.scalar(select(func.count()).select_from(Delivery))
        recent = await session.scalar(
            select(func.count()).select_from(Delivery)
            .where(Delivery.created_at >= NOW - COOLDOWN,
                   Delivery.status.in_(SERVING_STATUSES)))
        served_before = await session.scalar(select(func.count()).select_from(HelpRequest)
                                             .where(HelpRequest.served_before))
        other = aliased(HelpRequest)
        cooling = await session.scalar(
            select(func.count(func.distinct(HelpRequest.id)))
            .select_from(Delivery)
            .join(other, other.id == Delivery.request_id)
            .join(HelpRequest, and_(HelpRequest.identity_key == other.identity_key,
                                    HelpRequest.id != other.id))
            .where(Delivery.created_at >= NOW - COOLDOWN,
                   Delivery.status.in_(SERVING_STATUSES),
                   HelpRequest.status == RequestStatus.VERIFIED))
        lines.append(f"rows: help_request {total:,} ("
                     + ", ".join(f"{s} {n:,}" for s, n in sorted(
                         statuses.items(), key=lambda item: -item[1])) + ")")
        lines.append(f"      contact {contacts:,}, delivery {deliveries:,} ({recent:,} within the "
                     f"{COOLDOWN.days}-day cool-down); {served_before:,} requests served_before; "
                     f"{cooling:,} verified households in their cool-down")
        for case in cases:
            per = dict((await session.execute(
                select(HelpRequest.status, func.count())
                .where(HelpRequest.village_id.in_(list(case.villages)))
                .group_by(HelpRequest.status))).all())
            lines.append(f"case {case.label}: {len(case.villages)} kelurahan, "
                         f"{sum(per.values()):,} households, "
                         f"{per.get(RequestStatus.SUBMITTED, 0):,} submitted, "
                         f"{per.get(RequestStatus.VERIFIED, 0):,} verified")
    return lines


async def skipped_for_cooldown(services: Services, case: Case) -> tuple[int, int]:
    """How many verified households ahead of the last one proposed were left out (all for
    their cool-down), and how many were read to find them."""
    async with services.sessions() as session:
        proposed = [r.id for r in await propose(session, case.villages, PROPOSAL_SIZE, NOW,
                                                cooldown=COOLDOWN)]
        ahead = (await session.scalars(
            select(HelpRequest.id)
            .where(HelpRequest.status == RequestStatus.VERIFIED,
                   HelpRequest.village_id.in_(list(case.villages)))
            .order_by(HelpRequest.queue_rank.desc(), HelpRequest.id)
            .limit(PROPOSAL_SIZE * SCAN_FACTOR * 10))).all()
    if not proposed:
        return 0, 0
    upto = list(ahead[:ahead.index(proposed[-1]) + 1]) if proposed[-1] in ahead else list(ahead)
    return len([i for i in upto if i not in proposed]), len(upto)


async def bench_backend(name: str, prepared: Prepared, households: int, runs: int,
                        warmups: int, show_plans: bool) -> None:
    sqlite = name == "sqlite"
    # A reused database is brought up to the current schema, as a deploy does.
    services = await open_services(bench_config(prepared.url), migrate=True)
    try:
        cases = await find_cases(services)
        print(f"== {name}: {prepared.label}")
        if prepared.generation is None:
            print(f"reused: {households:,} households generated by an earlier run")
        else:
            print(f"generated {households:,} households in {prepared.generation:.1f} s")
        for line in await counts(services, cases):
            print(line)
        for case in cases:
            print(f"-- {case.label}")
            for m in MEASURES:
                timing = await measure(services.sessions, m.ours(case.villages),
                                       m.baseline(case.villages), runs, warmups)
                ours, base = median_ms(timing.ours), median_ms(timing.baseline)
                print(f"  {m.name:<18} ours median {ours:8.2f} ms p95 {p95_ms(timing.ours):8.2f}"
                      f" ms | baseline median {base:8.2f} ms p95 "
                      f"{p95_ms(timing.baseline):8.2f} ms | ratio={ours / base:.3f} | "
                      f"under {TARGET_MS:g} ms: {'yes' if ours < TARGET_MS else 'NO'}",
                      flush=True)
            skipped, read = await skipped_for_cooldown(services, case)
            print(f"  the proposal left out {skipped} household(s) in their cool-down among "
                  f"the first {read} verified")
        if show_plans:
            for case in cases:
                for m in (MEASURES[0], MEASURES[2]):
                    print(f"-- plan: {case.label}, {m.name}")
                    for summary, lines in await plans(services, m.ours(case.villages), sqlite):
                        print(f"  {summary}")
                        for line in lines:
                            print(f"  {line}")
    finally:
        await services.close()


@dataclass(frozen=True)
class Settings:
    households: int
    runs: int
    warmups: int
    backends: tuple[str, ...]
    postgres: str | None
    data_dir: Path
    regenerate: bool
    plans: bool


async def prepared_backends(backends: Sequence[str], postgres: str | None, data_dir: Path,
                            households: int, regenerate: bool
                            ) -> AsyncIterator[tuple[str, Prepared]]:
    """Each backend asked for with its data ready (generated on first use); PostgreSQL is
    skipped, with a line saying why, when no server is given or it does not answer."""
    for backend in backends:
        if backend == "sqlite":
            yield backend, await prepare_sqlite(data_dir, households, regenerate)
            continue
        if not postgres:
            print(f"== postgresql: skipped ({PG_ENV} is not set and no --postgres given)")
            continue
        try:
            await run_admin(postgres_server(postgres), "SELECT 1")
        except Exception as exc:
            print(f"== postgresql: skipped (the server does not answer: "
                  f"{type(exc).__name__})")
            continue
        yield backend, await prepare_postgres(postgres, households, regenerate)


async def benchmark(settings: Settings) -> None:
    async for backend, prepared in prepared_backends(
            settings.backends, settings.postgres, settings.data_dir, settings.households,
            settings.regenerate):
        await bench_backend(backend, prepared, settings.households, settings.runs,
                            settings.warmups, settings.plans)


def add_data_arguments(parser: argparse.ArgumentParser, *, households_help: str, runs: int,
                       warmups: int) -> None:
    """The options of every benchmark on this data: how much, how often, where."""
    parser.add_argument("--households", type=int, default=1_000_000, help=households_help)
    parser.add_argument("--runs", type=int, default=runs,
                        help=f"measured runs of each query (default {runs})")
    parser.add_argument("--warmups", type=int, default=warmups,
                        help=f"runs before measuring (default {warmups})")
    parser.add_argument("--only", choices=("sqlite", "postgresql"),
                        help="one backend only (default both)")
    parser.add_argument("--postgres", default=os.environ.get(PG_ENV),
                        help=f"the PostgreSQL server, as a database URL (default ${PG_ENV})")
    parser.add_argument("--data-dir", type=Path, default=PROJECT / "data",
                        help="where the SQLite file is kept (default data/)")
    parser.add_argument("--regenerate", action="store_true",
                        help="generate the data again even when it was kept")


def checked_backends(parser: argparse.ArgumentParser, args: argparse.Namespace
                     ) -> tuple[str, ...]:
    """The backends asked for, once the data options are checked."""
    if args.households < 1000:
        parser.error("at least 1000 households are needed")
    if args.runs < 1 or args.warmups < 0:
        parser.error("at least one run is needed")
    return (args.only,) if args.only else ("sqlite", "postgresql")


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_data_arguments(parser, runs=30, warmups=3, households_help=(
        "households (help requests) to generate (default 1,000,000)"))
    parser.add_argument("--no-plans", dest="plans", action="store_false",
                        help="do not print the query plans")
    args = parser.parse_args(argv)
    backends = checked_backends(parser, args)
    return Settings(args.households, args.runs, args.warmups, backends, args.postgres,
                    args.data_dir, args.regenerate, args.plans)


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(benchmark(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
