"""Outbound throughput: Gotong's outbox dispatcher against the fake Bot API's flood limits.

Each run fills the outbox of a fresh, migrated SQLite file with N notices, one to each of N
chats (so the per-chat limit of one message a second never binds), then starts the real
dispatcher sending through the real Telegram channel (python-telegram-bot) to a
:class:`~tests.fakes.telegram_api.FakeTelegramAPI` that refuses with 429 whatever exceeds an
overall limit of L messages a second.  Gotong is configured with the same limit.  The time
from the dispatcher's start until no row is pending or being sent any more is measured::

    .venv/bin/python benchmarks/fanout.py [--limit L] [--messages N] [--real-messages M]

Two runs are made: a large one at L (default 200/s, N = 15 s worth) and a short one at
Telegram's real 30 messages a second.  The rate is measured from the first to the last
message the fake accepted, leaving out the first window's burst (which costs no wait), so
it is the rate at which the limit binds.  Each run prints one line::

    limit=200/s n=3000: 195.1 messages/s ratio=0.98 violations=0 (sent=3000 failed=0; ...)

Every run is checked: each chat must have got exactly its own notice, every row must be
sent, and the fake must not have refused a single message.  The exit status is 1 when any
run fails a check.
"""

from __future__ import annotations

import os

# PTB 22 gives RetryAfter.retry_after as a timedelta only when asked to (and warns otherwise).
os.environ["PTB_TIMEDELTA"] = "true"

import argparse
import contextlib
import gc
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The project root, for the fakes and harness in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sidebyside import run_benchmark

from gotong.bot.config import (
    Config,
    DatabaseConfig,
    PrivacyConfig,
    TelegramConfig,
    validate,
)
from gotong.bot.services import open_services
from tests.bot.dispatch_harness import (
    REFERENCE,
    DispatchUnderTest,
    add_contacts,
    dispatch_config,
    numbered_notice,
    queue,
    wait_settled,
)
from tests.fakes.telegram_api import FakeTelegramAPI

NIK_KEY = "benchmark-nik-hash-key-" + "k" * 32
# Telegram's documented limit for messages to different chats.
TELEGRAM_LIMIT = 30.0
# Seconds of sending at the limit in the large run, by default.
DEFAULT_SECONDS = 15
# The first chat id; chats are numbered from here.
FIRST_CHAT = 20_000_001
# Extra seconds a run may take beyond N / L before it counts as failed.
SETTLE_SLACK = 30.0


@dataclass(frozen=True)
class RunResult:
    limit: float
    messages: int
    seconds: float
    sent: int
    failed: int
    violations: int
    problems: tuple[str, ...]
    # Seconds from the first to the last message the fake accepted.
    send_span: float

    @property
    def rate(self) -> float:
        """Messages a second once the limit binds: the first window's burst costs no wait,
        so it is left out (counting it would flatter the ratio by L/N)."""
        after_burst = self.sent - math.floor(self.limit)
        return after_burst / self.send_span if self.send_span > 0 and after_burst > 0 else 0.0

    @property
    def overall_rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.limit

    @property
    def ok(self) -> bool:
        return not self.problems and self.violations == 0 and self.sent == self.messages

    def line(self) -> str:
        return (f"limit={self.limit:g}/s n={self.messages}: {self.rate:.1f} messages/s "
                f"ratio={self.ratio:.2f} violations={self.violations} "
                f"(sent={self.sent} failed={self.failed}; {self.overall_rate:.1f}/s over "
                f"{self.seconds:.1f} s from start to settled)")


def gotong_config(fake: FakeTelegramAPI, database: Path, limit: float) -> Config:
    config = Config(
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{database}"),
        privacy=PrivacyConfig(nik_hash_key=NIK_KEY),
        telegram=TelegramConfig(token=fake.token, api_base_url=fake.base_url,
                                api_file_url=fake.base_file_url),
    )
    config = dispatch_config(config, fake, messages_per_second=limit,
                             chat_messages_per_second=1.0)
    validate(config)
    return config


def check_chats(fake: FakeTelegramAPI, expected: dict[int, int]) -> list[str]:
    """Each chat got exactly one message, carrying its own notice's number."""
    problems: list[str] = []
    messages = fake.all_messages()
    if len(messages) != len(expected):
        problems.append(f"the fake got {len(messages)} messages, expected {len(expected)}")
    per_chat = Counter(m.chat_id for m in messages)
    repeated = [chat for chat, count in per_chat.items() if count > 1]
    if repeated:
        problems.append(f"{len(repeated)} chats got more than one message, e.g. {repeated[0]}")
    missing = [chat for chat in expected if chat not in per_chat]
    if missing:
        problems.append(f"{len(missing)} chats got nothing, e.g. {missing[0]}")
    wrong = 0
    for message in messages:
        found = REFERENCE.search(message.text)
        if found is None or expected.get(message.chat_id) != int(found.group(1)):
            wrong += 1
    if wrong:
        problems.append(f"{wrong} messages went to the wrong chat or lost their number")
    return problems


def send_times(fake: FakeTelegramAPI) -> list[float]:
    """When the fake got each message sent, in order."""
    return [t for (method, _), t in zip(fake.calls, fake.call_times, strict=True)
            if method.lower() == "sendmessage"]


def send_span(fake: FakeTelegramAPI) -> float:
    times = send_times(fake)
    return times[-1] - times[0] if len(times) > 1 else 0.0


async def run_once(limit: float, messages: int) -> RunResult:
    """Fill the outbox with `messages` notices to as many chats and send them at `limit`."""
    with tempfile.TemporaryDirectory(prefix="gotong-fanout-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            fake = await stack.enter_async_context(FakeTelegramAPI())
            fake.enforce_rate_limits(per_chat_per_second=1.0, overall_per_second=limit)
            config = gotong_config(fake, Path(tmp) / "fanout.sqlite3", limit)
            services = await open_services(config, migrate=True)
            stack.push_async_callback(services.close)

            chats = [FIRST_CHAT + i for i in range(messages)]
            contacts = await add_contacts(services, chats)
            await queue(services, [numbered_notice(contact, number)
                                   for number, contact in enumerate(contacts, start=1)])
            expected = {chat: number for number, chat in enumerate(chats, start=1)}

            dut = DispatchUnderTest(services, config)
            problems: list[str] = []
            gc.collect()
            try:
                started = time.perf_counter()
                await dut.start()
                try:
                    counts = await wait_settled(services, messages / limit + SETTLE_SLACK)
                except TimeoutError:
                    counts = {}
                    problems.append("the outbox did not settle in time")
                seconds = time.perf_counter() - started
            finally:
                await dut.stop()

            problems += check_chats(fake, expected)
            sent = counts.get("sent", 0)
            failed = sum(n for status, n in counts.items() if status != "sent")
            if sent != messages:
                problems.append(f"{messages - sent} rows not sent: {counts}")
            result = RunResult(limit, messages, seconds, sent, failed,
                               fake.rate_limit_violations, tuple(problems), send_span(fake))
            return result


async def benchmark(runs: Sequence[tuple[float, int]], verbose: bool) -> list[RunResult]:
    results = []
    for limit, messages in runs:
        result = await run_once(limit, messages)
        print(result.line(), flush=True)
        if verbose:
            print(f"  {result.send_span:.3f} s from the first to the last message accepted",
                  file=sys.stderr, flush=True)
        for problem in result.problems:
            print(f"  check failed: {problem}", file=sys.stderr)
        results.append(result)
    return results


def parse_args(argv: Sequence[str] | None) -> tuple[list[tuple[float, int]], bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--limit", type=float, default=200.0,
                        help="overall messages a second of the large run (default 200)")
    parser.add_argument("--messages", type=int, default=None,
                        help=f"notices of the large run (default {DEFAULT_SECONDS} s worth "
                             f"at the limit)")
    parser.add_argument("--real-messages", type=int, default=300,
                        help=f"notices of the run at Telegram's {TELEGRAM_LIMIT:g}/s "
                             f"(default 300; 0 skips it)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show timings of each run on standard error")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("the limit must be at least one message a second")
    messages = args.messages if args.messages is not None \
        else int(args.limit * DEFAULT_SECONDS)
    if messages < 1 or args.real_messages < 0:
        parser.error("message counts must be positive")
    runs = [(args.limit, messages)]
    if args.real_messages:
        runs.append((TELEGRAM_LIMIT, args.real_messages))
    return runs, args.verbose


def main(argv: Sequence[str] | None = None) -> int:
    runs, verbose = parse_args(argv)
    return run_benchmark(benchmark(runs, verbose),
                         lambda results: 0 if all(result.ok for result in results) else 1)


if __name__ == "__main__":
    sys.exit(main())
