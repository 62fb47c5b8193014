"""Two bots side by side: the same rounds on each, alternately, and the ratio of their medians.

The inbound benchmarks (inbound.py for Telegram, whatsapp_inbound.py for WhatsApp) measure a
bare echo bot, the baseline, and Gotong on exactly the same rounds of registrations: one
warm-up round on each side, then measured rounds in which the sides take turns going first,
so that neither always runs on the warmer machine.  A round is timed from its first message
until the side has handled every one (``timed_round``), then checked; a round that times out,
fails its check or logs an error stops the benchmark with ``BenchmarkFailure`` instead of a
result.  Each side's median round is reported as a rate, then ``ratio=`` ours / baseline.

Gotong runs on a database of its own for the run (scratch_database.py): a temporary SQLite
file, or a new PostgreSQL database with ``--database URL``; the header line says which.

The other benchmarks (fanout.py, allocation.py, public_figures.py) time other things, in
their own ways, but are started and fail the same way (``run_benchmark``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from scratch_database import add_database_argument, scratch_database
from sqlalchemy import func, select

from gotong.bot.config import Config, DatabaseConfig, PrivacyConfig, validate
from gotong.bot.logs import quiet_third_party
from gotong.bot.services import Services, open_services
from gotong.models.help_request import REFERENCE_PREFIX, HelpRequest

NIK_KEY = "benchmark-nik-hash-key-" + "k" * 32
# Longest wait for one round before it counts as failed (a message was never handled).
ROUND_TIMEOUT = 120.0
# Messages a second: no flood limit worth the name (the fakes enforce none here).
UNLIMITED = 10_000.0
NAMES = ("Siti Aminah", "Budi Santoso", "Dewi Lestari", "Agus Salim", "Rina Wulandari",
         "Wahyu Hidayat", "Nur Aini", "Eko Prasetyo")

T = TypeVar("T")
B = TypeVar("B")


class BenchmarkFailure(RuntimeError):
    """A check failed; no result is reported."""


class ErrorCounter(logging.Handler):
    """Counts records at ERROR and above (errors while handling messages, mostly)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    @classmethod
    def on_root(cls) -> ErrorCounter:
        """A counter of every logger's errors."""
        counter = cls()
        logging.getLogger().addHandler(counter)
        return counter


class Side(Protocol):
    """A bot under measurement: how many messages it has handled in all, and a wait for a
    total."""

    @property
    def name(self) -> str: ...

    @property
    def handled(self) -> int: ...

    async def wait_handled(self, target: int) -> None: ...


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Timed(Protocol):
    @property
    def seconds(self) -> float: ...


R = TypeVar("R", bound=Timed)
S = TypeVar("S", bound=Side)


class FreshIds:
    """Numbers not used before in this run: a new chat for every registration, so that
    nobody has registered in it before."""

    def __init__(self, first: int) -> None:
        self._next = first

    def take(self, count: int) -> range:
        ids = range(self._next, self._next + count)
        self._next += count
        return ids


class Registrations:
    """What Gotong's side must show for the registrations made on it: every chat all its
    replies, the last one with the request's reference, and a stored request for each."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.made = 0
        self.replies_per_chat = 0

    def learn(self, texts: Sequence[str]) -> None:
        """The probe's registration, made message by message: what every other one gets."""
        if not texts or REFERENCE_PREFIX not in texts[-1]:
            raise BenchmarkFailure(f"probe: the registration did not end with a reference: "
                                   f"{list(texts)!r}")
        self.made += 1
        self.replies_per_chat = len(texts)

    def check_chat(self, chat: object, texts: Sequence[str]) -> None:
        if len(texts) != self.replies_per_chat or REFERENCE_PREFIX not in texts[-1]:
            raise BenchmarkFailure(
                f"gotong: chat {chat} got {len(texts)} messages (expected "
                f"{self.replies_per_chat}), the last one {texts[-1] if texts else None!r}")

    async def check_stored(self, chats: int) -> None:
        """`chats` more registrations were made: each must be a stored request."""
        self.made += chats
        async with self.services.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(HelpRequest))
        if stored != self.made:
            raise BenchmarkFailure(f"gotong: {stored} requests stored, expected {self.made}")


class EchoBase:
    """What the echo bots share: the count of messages done with (answered, or failed at),
    a wait until it reaches a round's total, and the errors met on the way."""

    name = "echo"

    def __init__(self) -> None:
        self.errors = 0
        self._handled = 0
        self._target = 0
        self._done = asyncio.Event()

    @property
    def handled(self) -> int:
        return self._handled

    def done_one(self) -> None:
        self._handled += 1
        if self._handled >= self._target:
            self._done.set()

    def failed(self, error: object) -> None:
        """One message went wrong; it still counts as done with, so that the round ends
        (and its check fails) instead of waiting for it until the timeout."""
        self.errors += 1
        logging.getLogger("benchmark.echo").error("echo bot failed: %r", error)

    async def wait_handled(self, target: int) -> None:
        self._target = target
        self._done.clear()
        if self._handled >= target:
            return
        await self._done.wait()

    def check_errors(self, doing: str) -> None:
        if self.errors:
            raise BenchmarkFailure(f"echo: {self.errors} errors while {doing}")


class Channel(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def wait_handled(self, count: int) -> None: ...


class Dispatching(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class GotongBase:
    """What Gotong's sides share: a channel with the notification dispatcher, as `gotong
    run` wires them (every answer is also an outbox row), and the registrations to check."""

    name = "gotong"

    def __init__(self, services: Services, channel: Channel, dispatcher: Dispatching) -> None:
        self.registrations = Registrations(services)
        self._channel = channel
        self._dispatcher = dispatcher
        self._stop_dispatcher = asyncio.Event()
        self._dispatching: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._channel.start()
        self._dispatching = asyncio.create_task(self._dispatcher.run(self._stop_dispatcher))

    async def stop(self) -> None:
        await self._channel.stop()
        self._stop_dispatcher.set()
        if self._dispatching is not None:
            await self._dispatching

    async def wait_handled(self, target: int) -> None:
        # The channel's wait gives up after a few seconds, and a large round takes longer:
        # it is asked again until the round's own timeout ends the wait.
        while True:
            try:
                await self._channel.wait_handled(target)
                return
            except TimeoutError:
                continue


@dataclass(frozen=True)
class RoundTime:
    seconds: float  # from the first message until the side had handled the round
    sent: float  # from the first message until the last one was sent


async def timed_round(side: Side, size: int, what: str, send: Callable[[], Awaitable[None]],
                      check: Callable[[], Awaitable[None]], errors: ErrorCounter) -> RoundTime:
    """Send a round of `size` messages to `side`, wait until it has handled them all, and
    check what it answered.  `what` says what became of them, in the error when some did
    not in time ("updates answered")."""
    errors_before = errors.count
    target = side.handled + size
    gc.collect()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(ROUND_TIMEOUT):
            await send()
            sent = time.perf_counter() - started
            await side.wait_handled(target)
    except TimeoutError:
        raise BenchmarkFailure(f"{side.name}: only {size - target + side.handled} of {size} "
                               f"{what} in time") from None
    elapsed = time.perf_counter() - started
    await check()
    if errors.count != errors_before:
        raise BenchmarkFailure(f"{side.name}: {errors.count - errors_before} errors logged")
    return RoundTime(elapsed, sent)


# --- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    chats: int  # registering at once in a measured round
    per_chat: int  # messages of one registration
    rounds: int
    warmup_chats: int
    verbose: bool
    database: str | None  # a PostgreSQL server's URL; None for a temporary SQLite file

    @property
    def size(self) -> int:
        """Messages of a measured round."""
        return self.chats * self.per_chat

    def log(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stderr)


def parse_settings(parser: argparse.ArgumentParser, argv: Sequence[str] | None, unit: str,
                   per_chat: int) -> tuple[Settings, argparse.Namespace]:
    """The options every inbound benchmark has, added to `parser`'s own; `unit` names what
    the chats send ("updates", "messages"), `per_chat` how many make a registration."""
    parser.add_argument(f"--{unit}", type=int, default=None,
                        help=f"{unit} per measured round (rounded down to whole "
                             f"registrations of {per_chat} {unit}; default chats x "
                             f"{per_chat})")
    parser.add_argument("--chats", type=int, default=40,
                        help="chats registering at once in a measured round (default 40)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measured rounds of each side (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every round on standard error")
    add_database_argument(parser)
    args = parser.parse_args(argv)
    total: int | None = getattr(args, unit)
    chats = args.chats if total is None else total // per_chat
    if chats < 1:
        parser.error(f"at least one chat ({per_chat} {unit}) is needed")
    if args.rounds < 1:
        parser.error("at least one round is needed")
    settings = Settings(chats=chats, per_chat=per_chat, rounds=args.rounds,
                        warmup_chats=max(1, min(chats, 10)), verbose=args.verbose,
                        database=args.database)
    return settings, args


def forwarded(settings: Settings) -> list[str]:
    """The options that run another inbound benchmark on the same settings."""
    args = ["--chats", str(settings.chats), "--rounds", str(settings.rounds)]
    if settings.database is not None:
        args += ["--database", settings.database]
    return args


async def open_gotong(stack: contextlib.AsyncExitStack, settings: Settings,
                      configure: Callable[[Config], Config], prefix: str = "") -> Services:
    """Gotong's services on a new database, migrated and with the areas loaded, both gone
    when `stack` closes; the header says which database it is.  `configure` adds the
    channel's settings to the database's."""
    database = await stack.enter_async_context(scratch_database(settings.database))
    print(f"{prefix}{database.header}", flush=True)
    config = configure(Config(database=DatabaseConfig(url=database.url),
                              privacy=PrivacyConfig(nik_hash_key=NIK_KEY)))
    validate(config)
    services = await open_services(config, migrate=True)
    stack.push_async_callback(services.close)
    return services


async def start_all(stack: contextlib.AsyncExitStack, *sides: Startable) -> None:
    """Start each side, to be stopped when `stack` closes (the last started first)."""
    for side in sides:
        await side.start()
        stack.push_async_callback(side.stop)


async def alternate(sides: tuple[S, S], settings: Settings,
                    new_round: Callable[[int], B],
                    run: Callable[[S, B], Awaitable[R]],
                    describe: Callable[[B, R], str]) -> dict[str, list[R]]:
    """A warm-up round on each side, then the measured rounds, the sides taking turns to go
    first; every round has chats of its own (`new_round(chats)`), the same on both sides.
    The measured results of each side, by name, the baseline first."""
    warmup = new_round(settings.warmup_chats)
    for side in sides:
        result = await run(side, warmup)
        settings.log(f"warm-up {side.name}: {describe(warmup, result)}")
    results: dict[str, list[R]] = {side.name: [] for side in sides}
    for number in range(settings.rounds):
        batch = new_round(settings.chats)
        for side in sides if number % 2 == 0 else sides[::-1]:
            result = await run(side, batch)
            results[side.name].append(result)
            settings.log(f"round {number + 1} {side.name}: {describe(batch, result)}")
    return results


def report(results: Mapping[str, Sequence[Timed]], size: int, unit: str, prefix: str = "",
           detail: Callable[[str], str] | None = None) -> None:
    """Each side's median round as a rate (`detail(name)` after it), then the ratio of
    ours (the second side) to the baseline (the first)."""
    rates: dict[str, float] = {}
    for name, rounds in results.items():
        seconds = statistics.median(r.seconds for r in rounds)
        rates[name] = size / seconds
        print(f"{prefix}{name}: {size} {unit} in {seconds:.3f} s = {rates[name]:.1f} "
              f"{unit}/s{detail(name) if detail else ''}")
    baseline, ours = rates.values()
    print(f"{prefix}ratio={ours / baseline:.2f}")


@dataclass(frozen=True)
class Latency:
    """Reply latency of a round offered at a steady rate below capacity."""

    rate: float  # messages offered a second
    p50: float  # seconds from a message to the first reply in its chat
    p99: float
    unanswered: int  # messages whose chat got no reply before its next message

    def describe(self, unit: str) -> str:
        missed = f", {self.unanswered} without a reply" if self.unanswered else ""
        return (f"latency at {self.rate:.0f} {unit}/s (half the capacity): "
                f"p50={self.p50 * 1000:.0f} ms p99={self.p99 * 1000:.0f} ms{missed}")


Push = tuple[str, Callable[[], Awaitable[None]]]


async def paced(pushes: Sequence[Push], rate: float) -> list[tuple[str, float]]:
    """Send each message at its time on a steady schedule of `rate` a second (a chat's
    next one never before the one before it was taken); each chat and when it was sent."""
    started = time.perf_counter()
    sent: list[tuple[str, float]] = []
    previous: dict[str, asyncio.Task[None]] = {}
    tasks: list[asyncio.Task[None]] = []

    async def one(chat: str, send: Callable[[], Awaitable[None]],
                  before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await before
        sent.append((chat, time.monotonic()))
        await send()

    for index, (chat, send) in enumerate(pushes):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(chat, send, previous.get(chat)))
        previous[chat] = task
        tasks.append(task)
    await asyncio.gather(*tasks)
    return sent


def latency(rate: float, sent: Sequence[tuple[str, float]],
            replies: Sequence[tuple[str, float]]) -> Latency:
    """Each message's wait for the first reply in its chat after it (and before the chat's
    next message); percentiles over the round."""
    by_chat: dict[str, list[float]] = {}
    for chat, at in sorted(replies, key=lambda reply: reply[1]):
        by_chat.setdefault(chat, []).append(at)
    pushes: dict[str, list[float]] = {}
    for chat, at in sent:
        pushes.setdefault(chat, []).append(at)
    waits: list[float] = []
    unanswered = 0
    for chat, times in pushes.items():
        times.sort()
        answers = by_chat.get(chat, [])
        for index, at in enumerate(times):
            until = times[index + 1] if index + 1 < len(times) else float("inf")
            first = next((reply for reply in answers if at <= reply < until), None)
            if first is None:
                unanswered += 1
            else:
                waits.append(first - at)
    if not waits:
        raise BenchmarkFailure("no message of the latency round got a reply")
    cuts = statistics.quantiles(waits, n=100, method="inclusive")
    return Latency(rate, statistics.median(waits), cuts[98], unanswered)


def run_benchmark(work: Coroutine[Any, Any, T],
                  then: Callable[[T], int] | None = None) -> int:
    """Run `work` with the benchmarks' logging, then `then` on its result; the exit status
    (1, the reason on standard error, when a check failed)."""
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_third_party()
    try:
        result = asyncio.run(work)
    except BenchmarkFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    return then(result) if then is not None else 0
