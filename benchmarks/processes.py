"""Scaling out: one `gotong run` process against two, on one PostgreSQL database.

Gotong runs as real `gotong run` processes (Telegram in webhook mode), as a deployment runs
it: each stores the webhook's update and answers 200 at once, and any process then claims
the next waiting update of a chat that no process holds and handles it.  A run starts P
such processes (1, then 2) on a new, migrated database (``gotong db upgrade`` into a
scratch database of scratch_database.py, dropped after the run), so that every run starts
from the same empty tables, and drives the same load at them::

    .venv/bin/python benchmarks/processes.py [--chats C] [--rounds R] [--database URL]
                                             [--no-analyze] [-v]

C chats (default 200) each register a household, the typed script of the fault tests
(tests/faults/burst.py ``answers(n)``, 12 updates), all chats at once, each chat's next
update sent as soon as the previous one was answered 200.  The webhook calls go to the
processes' ports in turn, call by call, as a round-robin load balancer in front of them
sends them: a chat's updates are stored by both processes, and handled by whichever claims
the chat, which is what the design has to cope with (even chats to one port and odd to the
other would hand each process only the chats it stored, which no balancer promises).  The
time runs from the first webhook call until every update sent is handled, read from the
database (``processed_at`` set on C x 12 rows of inbound_update), polled every 50 ms.
Before it, one household per process registers untimed, to warm the processes up (their
connections, statement caches and lazy imports).

The Bot API is the fake of the tests (``FakeTelegramAPI``), run in a process of its own
(``--serve-fake``, one per run), so that its work is not counted against Gotong's process;
it answers at once and enforces no flood limit, and Gotong's own limits are raised to the
highest allowed, so that neither sets the pace.  The load comes from this process, whose
CPU use is measured and printed with the rest.  Everything else is as deployed: default
leases, polls and pool, INFO logging (to a file per process).

The tables' statistics are kept current during a run (ANALYZE of the tables a registration
writes to, every second), as autovacuum keeps them on a server in service: test servers
often run without it, and without statistics PostgreSQL plans the claim of waiting updates
as if the tables were empty, a plan whose time grows with the square of the updates
waiting (seconds a claim with a thousand waiting), so that the run measures that plan
instead of Gotong.  ``--no-analyze`` leaves the statistics alone, to see that case.

Each run prints its processes, updates, seconds and updates a second, the webhook calls'
answer time (p50 and p99, from sending the call to its 200), and where the CPU went in the
timed window, in cores busy on average: each `gotong run` process, PostgreSQL (the run's
database's backends and the server's own processes; with the connections opened to the
database and the transactions committed there), the fake, this process (the load, the
polling and the ANALYZE), the rest of the machine (other people's work, on a shared
machine), and what was left idle.  Every run is checked, after the time is taken: each
chat has exactly one registered help request, its last message carries the request's
reference, no update was set aside and no process logged an error; a failed check or a
process that exits stops the benchmark with an error instead of a result.  The rounds
alternate which configuration goes first; the median run of each is reported, then
``scaling=`` two processes' rate over one's.  PostgreSQL, the fake and this process share
the machine's cores with Gotong: on two cores the ideal is well below 2.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

# The project root, for the fakes and the fault tests' harness in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from scratch_database import database_url, scratch_database
from sidebyside import BenchmarkFailure, run_benchmark
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.faults.burst import (
    GOTONG,
    REQUEST_TIMEOUT,
    Gotong,
    Observer,
    Quiet,
    TelegramWebhook,
    answers,
    common_env,
    free_port,
    registered,
    telegram_env,
)

DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONFIGURATIONS = (1, 2)
# Longest wait for a run's updates to be handled, and for its answers to be sent after.
RUN_TIMEOUT = 150.0
SETTLE_TIMEOUT = 60.0
POLL_SECONDS = 0.05
# How often the tables are analyzed during a run (see Poller).
ANALYZE_SECONDS = 1.0
# The tables a registration writes to, the queue's first: analyzing every table (the
# areas too) would cost ten times as much.
GROWING_TABLES = ("inbound_update", "outbox_message", "contact", "conversation",
                  "help_request", "request_event")
# No update handled for this long: the logs are read for an error that explains it.
STALLED_SECONDS = 3.0
# The fake's extra method that hands every chat's transcript to this process.
TRANSCRIPTS_METHOD = "benchmarkTranscripts"
# Gotong accepts limits up to this; far above what the run sends, so it never waits.
HIGHEST_LIMIT = "10000"
ERROR_LINE = re.compile(r" (ERROR|CRITICAL) ")
TICKS = os.sysconf("SC_CLK_TCK")


# --- the fake Bot API, in a process of its own ----------------------------------------


async def serve_fake() -> None:
    """The fake Bot API until standard input closes (the benchmark ended, or died): its
    port and token on the first line of standard output."""
    async with FakeTelegramAPI() as fake:

        async def transcripts(params: dict[str, Any]) -> dict[str, list[str]]:
            chats = {message.chat_id for message in fake.all_messages()}
            return {str(chat): fake.texts(chat) for chat in chats}

        fake.add_method(TRANSCRIPTS_METHOD, transcripts)
        print(fake.port, fake.token, flush=True)
        # A thread reads, so that the server goes on serving meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@dataclass
class RemoteFake:
    """The fake Bot API in its own process, as the harness sees it: its address and token,
    and the transcripts it recorded, fetched once the run is over."""

    process: asyncio.subprocess.Process
    port: int
    token: str
    _texts: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    async def start(cls) -> RemoteFake:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-fake", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        port, _, token = line.decode().strip().partition(" ")
        if not port.isdigit() or not token:
            raise BenchmarkFailure(f"the fake Bot API did not start: {line!r}")
        return cls(process, int(port), token)

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def fetch_transcripts(self, session: aiohttp.ClientSession) -> None:
        async with session.post(f"{self.base_url}{self.token}/{TRANSCRIPTS_METHOD}") as reply:
            body = await reply.json()
        self._texts = {int(chat): texts for chat, texts in body["result"].items()}

    def texts(self, chat_id: int) -> list[str]:
        return self._texts.get(chat_id, [])


def as_fake(remote: RemoteFake) -> FakeTelegramAPI:
    """The remote fake where the fault tests' harness takes an in-process one: it reads only
    the address, the token and the transcripts, which the remote one has too."""
    return cast(FakeTelegramAPI, remote)


# --- the load ----------------------------------------------------------------------------


class TimedWebhook(TelegramWebhook):
    """The fault tests' Telegram webhook driver (round robin over the processes, call by
    call; a refused call made again), timing each update until its 200."""

    def __init__(self, fake: RemoteFake, urls: Sequence[str]) -> None:
        super().__init__(as_fake(fake), urls)
        self.latencies: list[float] = []

    async def open(self, chats: int) -> None:
        # aiohttp's default of 100 connections would queue the calls of the chats beyond
        # that in this process, and the wait would count as the webhook's answer time.
        self.poster.session = aiohttp.ClientSession(
            timeout=REQUEST_TIMEOUT, connector=aiohttp.TCPConnector(limit=chats + 10))

    async def deliver(self, n: int, text: str) -> str:
        started = time.perf_counter()
        try:
            external_id = await super().deliver(n, text)
        except AssertionError as exc:  # the harness's way of saying a call got a 4xx
            raise BenchmarkFailure(f"a webhook call was refused: {exc}") from None
        self.latencies.append(time.perf_counter() - started)
        return external_id

    async def register(self, households: range) -> None:
        """Each household's script, all households at once, each update after the last
        one's 200."""

        async def household(n: int) -> None:
            for answer in answers(n):
                await self.deliver(n, answer)

        await asyncio.gather(*(household(n) for n in households))


# --- where the CPU goes ----------------------------------------------------------------


def cpu_seconds(pid: int, with_children: bool = False) -> float | None:
    """User and system CPU of a process so far (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces: the fields are counted after its closing ")".
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def machine_seconds() -> tuple[float, float]:
    """CPU seconds of all cores so far: busy, and in all."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle and iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


@dataclass
class CpuSnapshot:
    gotong: list[float]
    postgres: dict[int, float]  # live processes
    reaped: float  # PostgreSQL's processes that have ended (counted by the postmaster)
    sessions: int  # connections opened to the run's database so far
    commits: int  # transactions committed on it so far
    fake: float
    driver: float
    busy: float
    total: float


@dataclass(frozen=True)
class CpuUse:
    """Cores busy on average over the timed window, by whom; and the connections opened
    to the run's database and the transactions committed there (the benchmark's own
    left out)."""

    gotong: tuple[float, ...]
    postgres: float
    fake: float
    driver: float
    rest: float
    idle: float
    connections: int
    commits: int

    def describe(self) -> str:
        each = "+".join(f"{core:.2f}" for core in self.gotong)
        return (f"gotong {sum(self.gotong):.2f} ({each}), postgres {self.postgres:.2f} "
                f"({self.connections} connections opened, {self.commits} commits), "
                f"fake {self.fake:.2f}, driver {self.driver:.2f}, rest {self.rest:.2f}, "
                f"idle {self.idle:.2f}")


class Poller:
    """The benchmark's own connection to the run's database, in autocommit: each read
    sees what is committed by then and holds nothing.  Each statement is a transaction of
    its own: they are counted, to be taken off the database's commits.

    It also keeps the tables' statistics current while the load runs (`analyze_every`
    seconds; None: never), as autovacuum does on a server in service: the server these
    benchmarks run on may have it off, as test servers often do, and without statistics
    PostgreSQL plans the claim of waiting updates for empty tables, and that plan's time
    grows with the square of the updates waiting.
    """

    def __init__(self, connection: AsyncConnection, analyze_every: float | None) -> None:
        self.connection = connection
        self.statements = 0
        self.analyze_every = analyze_every
        self._analyzed_at = -math.inf
        self.analyzing = 0.0  # seconds spent analyzing

    async def analyze(self, force: bool = False) -> None:
        if self.analyze_every is None:
            return
        now = time.monotonic()
        if force or now - self._analyzed_at >= self.analyze_every:
            await self.rows(f"ANALYZE {', '.join(GROWING_TABLES)}")
            self._analyzed_at = time.monotonic()
            self.analyzing += self._analyzed_at - now

    async def rows(self, statement: str) -> list[Any]:
        self.statements += 1
        result = await self.connection.execute(text(statement))
        return list(result) if result.returns_rows else []


class CpuMeter:
    """Snapshots of the CPU of every process taking part in a run, from /proc.

    PostgreSQL's share is its backends on the run's database (found in pg_stat_activity
    at both ends of the window), its own processes (WAL writer, checkpointer), which serve
    the run's writes, and the backends that ended within the window, which the postmaster
    counts once it has reaped them: those of any database, so that on a server others use
    too it is an upper bound.  The backend that polls for the run counts as the driver's.
    """

    def __init__(self, gotongs: Sequence[Gotong], fake: RemoteFake,
                 poller: Poller) -> None:
        self.gotongs = gotongs
        self.fake = fake
        self.poller = poller
        self.poller_pid = 0
        self.postmaster_pid = 0

    async def _postgres_pids(self) -> list[int]:
        rows = await self.poller.rows(
            "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() OR "
            "datname IS NULL) AND pid <> pg_backend_pid()")
        return [int(pid) for (pid,) in rows]

    async def snapshot(self, previous: CpuSnapshot | None = None) -> CpuSnapshot:
        if not self.poller_pid:
            [(self.poller_pid,)] = await self.poller.rows("SELECT pg_backend_pid()")
            self.postmaster_pid = parent_of(self.poller_pid)
        pids = set(await self._postgres_pids()) | {self.postmaster_pid}
        if previous is not None:
            pids |= set(previous.postgres)
        postgres = {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}
        reaped = (cpu_seconds(self.postmaster_pid, with_children=True) or 0.0) \
            - postgres.get(self.postmaster_pid, 0.0)
        # The statistics of a backend reach the shared counters a moment later: a clear
        # snapshot reads them as they are now.
        await self.poller.rows("SELECT pg_stat_clear_snapshot()")
        [(sessions, commits)] = await self.poller.rows(
            "SELECT sessions, xact_commit FROM pg_stat_database "
            "WHERE datname = current_database()")
        gotong = [(cpu_seconds(g.process.pid) if g.process else None) or 0.0
                  for g in self.gotongs]
        driver = (cpu_seconds(os.getpid()) or 0.0) \
            + (cpu_seconds(self.poller_pid) or 0.0)
        busy, total = machine_seconds()
        return CpuSnapshot(gotong, postgres, reaped, int(sessions),
                           int(commits) - self.poller.statements,
                           cpu_seconds(self.fake.process.pid) or 0.0, driver, busy, total)

    @staticmethod
    def use(start: CpuSnapshot, end: CpuSnapshot, seconds: float) -> CpuUse:
        gotong = tuple((b - a) / seconds for a, b in zip(start.gotong, end.gotong, strict=True))
        live = sum(cpu - start.postgres.get(pid, 0.0) for pid, cpu in end.postgres.items())
        # A backend that ended in the window is in the reaped total with its whole life:
        # what it had used before the window is taken off.
        before = sum(cpu for pid, cpu in start.postgres.items() if pid not in end.postgres)
        postgres = (live + end.reaped - start.reaped - before) / seconds
        fake = (end.fake - start.fake) / seconds
        driver = (end.driver - start.driver) / seconds
        busy = (end.busy - start.busy) / seconds
        cores = (end.total - start.total) / seconds
        rest = max(0.0, busy - sum(gotong) - postgres - fake - driver)
        return CpuUse(gotong, postgres, fake, driver, rest, max(0.0, cores - busy),
                      end.sessions - start.sessions, end.commits - start.commits)


# --- one run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    chats: int
    rounds: int
    server: str
    verbose: bool
    analyze_every: float | None

    def log(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunResult:
    processes: int
    updates: int
    seconds: float
    p50: float
    p99: float
    retries: int
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    def line(self) -> str:
        return (f"processes={self.processes} updates={self.updates} "
                f"seconds={self.seconds:.2f} updates/s={self.rate:.1f} "
                f"webhook p50={self.p50 * 1000:.1f} ms p99={self.p99 * 1000:.1f} ms "
                f"retries={self.retries}; cores busy: {self.cpu.describe()}")


def gotong_env(database: str, port: int, fake: RemoteFake) -> dict[str, str]:
    """The environment of one `gotong run` of the benchmark."""
    env = common_env(database, port)
    # The fault tests shorten leases, polls and retries so that a takeover happens within a
    # test; a measurement wants what a deployment runs with, the defaults.
    for key in [k for k in env if k.startswith(("GOTONG_INBOUND__",
                                                "GOTONG_NOTIFICATIONS__"))]:
        del env[key]
    env.update(telegram_env(as_fake(fake), webhook=True))
    env.update({
        "GOTONG_TELEGRAM__MESSAGES_PER_SECOND": HIGHEST_LIMIT,
        "GOTONG_TELEGRAM__CHAT_MESSAGES_PER_SECOND": HIGHEST_LIMIT,
    })
    return env


async def upgrade(workdir: Path, env: dict[str, str]) -> None:
    """`gotong db upgrade`, as an operator runs it before starting the processes."""
    process = await asyncio.create_subprocess_exec(
        str(GOTONG), "db", "upgrade", cwd=workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise BenchmarkFailure(f"gotong db upgrade failed:\n{output.decode(errors='replace')}")


def logs_of(gotongs: Sequence[Gotong]) -> str:
    return "\n".join(g.logs(tail=20) for g in gotongs)


async def counts(poller: Poller) -> tuple[int, int]:
    """Updates handled, and set aside."""
    [(handled, aside)] = await poller.rows(
        "SELECT count(*) FILTER (WHERE processed_at IS NOT NULL), "
        "count(*) FILTER (WHERE set_aside_at IS NOT NULL) FROM inbound_update")
    return int(handled), int(aside)


def errors_logged(gotongs: Sequence[Gotong]) -> list[str]:
    return [line for g in gotongs for line in g.log_text().splitlines()
            if ERROR_LINE.search(line)]


async def wait_handled(poller: Poller, target: int, gotongs: Sequence[Gotong],
                       driving: asyncio.Task[None] | None = None) -> None:
    """Until `target` updates are handled (and the load, if any, was all answered 200)."""
    progress_at, last = time.monotonic(), -1
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            while True:
                await poller.analyze()
                handled, aside = await counts(poller)
                if aside:
                    raise BenchmarkFailure(f"{aside} updates set aside\n{logs_of(gotongs)}")
                if handled > target:
                    raise BenchmarkFailure(f"{handled} updates handled, {target} were sent")
                if driving is not None and driving.done():
                    driving.result()  # the load's own failure, if it failed
                if handled == target and (driving is None or driving.done()):
                    return
                for g in gotongs:
                    if not g.running:
                        raise BenchmarkFailure(f"{g.name} exited\n{logs_of(gotongs)}")
                if handled != last:
                    progress_at, last = time.monotonic(), handled
                elif time.monotonic() - progress_at > STALLED_SECONDS and \
                        (errors := errors_logged(gotongs)):
                    # Stuck on an error that will not go away: no use waiting for the
                    # timeout. The logs are read only then, to keep the driver's CPU low.
                    raise BenchmarkFailure(f"no progress at {handled} of {target} updates, "
                                           f"{len(errors)} errors logged, e.g. {errors[-1]}")
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        handled, _ = await counts(poller)
        raise BenchmarkFailure(f"only {handled} of {target} updates handled in "
                               f"{RUN_TIMEOUT:.0f} s\n{logs_of(gotongs)}") from None


async def check(database: str, platform: TimedWebhook, fake: RemoteFake,
                gotongs: Sequence[Gotong], households: range) -> None:
    """Every household registered once, heard its reference, and no process logged an
    error."""
    async with contextlib.AsyncExitStack() as stack:
        engine = create_async_engine(database)
        stack.push_async_callback(engine.dispose)
        async with engine.connect() as connection:
            rows = await connection.execute(text(
                "SELECT c.chat_id, count(*) FROM help_request h "
                "JOIN contact c ON c.id = h.contact_id GROUP BY c.chat_id"))
            requests = {chat: int(count) for chat, count in rows}
        wrong = [n for n in households if requests.get(platform.chat_id(n)) != 1]
        if wrong or len(requests) != len(households):
            raise BenchmarkFailure(
                f"{len(wrong)} chats without exactly one help request (e.g. household "
                f"{wrong[:1]}), {len(requests)} chats with one, {len(households)} expected")
        # The last answers may still be on their way out when the last update is handled.
        observer = Observer(database)
        stack.push_async_callback(observer.close)
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                while True:
                    if (state := await observer.quiet()) == Quiet(0, 0):
                        break
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise BenchmarkFailure(f"not settled {SETTLE_TIMEOUT:.0f} s after the last "
                                   f"update was handled: {state}") from None
        assert platform.poster.session is not None
        await fake.fetch_transcripts(platform.poster.session)
        unheard = [n for n in households if not registered(platform, n)]
        if unheard:
            n = unheard[0]
            raise BenchmarkFailure(f"{len(unheard)} chats never got their reference, e.g. "
                                   f"household {n}: {platform.transcript(n)[-2:]!r}")
    if errors := errors_logged(gotongs):
        raise BenchmarkFailure(f"{len(errors)} errors logged, e.g. {errors[0]}")


async def one_run(settings: Settings, processes: int, workdir: Path, number: int) -> RunResult:
    """`processes` gotong run processes on a new database, and the load timed on them."""
    async with contextlib.AsyncExitStack() as stack:
        database = (await stack.enter_async_context(scratch_database(settings.server))).url
        fake = await RemoteFake.start()
        stack.push_async_callback(fake.stop)
        await upgrade(workdir, gotong_env(database, free_port(), fake))
        gotongs = [Gotong(workdir, f"run{number}-gotong{i + 1}",
                          gotong_env(database, free_port(), fake)) for i in range(processes)]
        for g in gotongs:
            stack.push_async_callback(g.stop)
            await g.start()
        try:
            for g in gotongs:
                await g.wait_ready()
        except AssertionError as exc:
            raise BenchmarkFailure(str(exc)) from None

        platform = TimedWebhook(fake, [g.url for g in gotongs])
        await platform.open(settings.chats)
        stack.push_async_callback(platform.poster.close)
        engine = create_async_engine(database, pool_size=1, max_overflow=0,
                                     isolation_level="AUTOCOMMIT")
        stack.push_async_callback(engine.dispose)
        poller = Poller(await stack.enter_async_context(engine.connect()),
                        settings.analyze_every)
        meter = CpuMeter(gotongs, fake, poller)

        # Untimed, to warm the processes up. The households are numbered after the timed
        # ones, so that every registration is a new household.
        timed = range(settings.chats)
        warmup = range(settings.chats, settings.chats + processes)
        settings.log(f"run {number}: {processes} processes ready, warming up")
        await platform.register(warmup)
        warmup_updates = sum(len(answers(n)) for n in warmup)
        await wait_handled(poller, warmup_updates, gotongs)
        await poller.analyze(force=True)
        poller.analyzing = 0.0
        platform.latencies.clear()
        retries_before = platform.poster.retries

        updates = sum(len(answers(n)) for n in timed)
        start = await meter.snapshot()
        started = time.perf_counter()
        driving = asyncio.create_task(platform.register(timed))
        try:
            await wait_handled(poller, warmup_updates + updates, gotongs, driving)
        finally:
            if not driving.done():
                driving.cancel()
        seconds = time.perf_counter() - started
        cpu = CpuMeter.use(start, await meter.snapshot(start), seconds)
        settings.log(f"run {number}: handled in {seconds:.2f} s ({poller.analyzing:.2f} s "
                     f"of it analyzing), checking")

        await check(database, platform, fake, gotongs, range(settings.chats + processes))
        quantiles = statistics.quantiles(platform.latencies, n=100)
        return RunResult(processes, updates, seconds, quantiles[49], quantiles[98],
                         platform.poster.retries - retries_before, cpu)


async def benchmark(settings: Settings) -> dict[int, list[RunResult]]:
    # Stopped from outside, the runs still stop their processes and drop their databases.
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    try:
        return await all_runs(settings)
    except asyncio.CancelledError:
        raise BenchmarkFailure("interrupted") from None


async def all_runs(settings: Settings) -> dict[int, list[RunResult]]:
    per_chat = len(answers(0))
    print(f"database: a new PostgreSQL database on {settings.server} for every run, "
          f"dropped after it; {settings.chats} chats x {per_chat} updates, webhook calls "
          f"round robin over the processes", flush=True)
    results: dict[int, list[RunResult]] = {p: [] for p in CONFIGURATIONS}
    with tempfile.TemporaryDirectory(prefix="gotong-processes-") as tmp:
        number = 0
        for round_ in range(settings.rounds):
            # Each configuration goes first in every other round, so that neither always
            # meets the machine in the same state.
            for processes in CONFIGURATIONS if round_ % 2 == 0 else CONFIGURATIONS[::-1]:
                number += 1
                result = await one_run(settings, processes, Path(tmp), number)
                print(result.line(), flush=True)
                results[processes].append(result)
    return results


def report(results: dict[int, list[RunResult]]) -> int:
    rates: dict[int, float] = {}
    for processes, runs in results.items():
        rates[processes] = statistics.median(run.rate for run in runs)
        p50 = statistics.median(run.p50 for run in runs)
        p99 = statistics.median(run.p99 for run in runs)
        print(f"median of {len(runs)}: processes={processes} updates/s="
              f"{rates[processes]:.1f} webhook p50={p50 * 1000:.1f} ms "
              f"p99={p99 * 1000:.1f} ms")
    one, two = CONFIGURATIONS
    print(f"scaling={rates[two] / rates[one]:.2f}")
    return 0


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chats", type=positive, default=200,
                        help="chats registering at once in a run (default 200)")
    parser.add_argument("--rounds", type=positive, default=3,
                        help="runs of each configuration; the median is reported (default 3)")
    parser.add_argument("--database", metavar="URL", type=database_url, default=DEFAULT_SERVER,
                        help="the PostgreSQL server each run's new database is made on "
                             f"(default {DEFAULT_SERVER})")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say on standard error what each run is doing")
    parser.add_argument("--no-analyze", action="store_true",
                        help="leave the tables' statistics alone (none, on a server "
                             "without autovacuum)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        asyncio.run(serve_fake())
        return 0
    settings = Settings(args.chats, args.rounds, args.database, args.verbose,
                        None if args.no_analyze else ANALYZE_SECONDS)
    return run_benchmark(benchmark(settings), report)


if __name__ == "__main__":
    sys.exit(main())
