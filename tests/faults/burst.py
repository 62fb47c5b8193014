"""The fault tests' harness: a burst of households registering at once through `gotong
run` in a subprocess, while a test plays a fault on the process or its database.

Each household's conversation is a fixed script of typed answers (numbers and labels are
accepted at every step, so the driver never reads the bot's buttons). A chat's next update
goes out only once the platform's side has taken the previous one: the webhook answered
200 (a refused connection or a 5xx is retried after a short pause, as Telegram and Meta
do), or, by polling, the offset moved past it. Each chat's transcript (the texts the fake
API received for it, in order) is then compared with that of a run without faults: equal
once consecutive repeats are collapsed, the repeats counted as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from gotong.models.inbound import InboundUpdate
from gotong.models.outbox import UNSETTLED, OutboxMessage
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.telegram_updates import TgUser, UpdateFactory
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.fakes.whatsapp_webhooks import post_webhook as post_whatsapp
from tests.fakes.whatsapp_webhooks import text_message

GOTONG = Path(sys.executable).parent / "gotong"
CHATS = 30
NIK_KEY = "fault-test-key-" + "k" * 32
TELEGRAM_SECRET = "fault-test-secret_123"
WHATSAPP_SECRET = "fault-test-app-secret"
WHATSAPP_VERIFY = "fault-test-verify"
TELEGRAM_PATH = "/hook/telegram"
WHATSAPP_PATH = "/whatsapp/webhook"
CHAT_BASE = 8_100_000
NUMBER_BASE = 6281_2555_0000
# Request references are random: the one thing two runs may legitimately differ in. The
# bot gives one only in its last answer, once the household's request is registered.
REFERENCE = re.compile(r"\bGT-[2-9A-Z]{5}\b")
# Pause of a driver before it tries a webhook call again (gotong down, 5xx).
RETRY_PAUSE = 0.2
# Long enough to outlast SQLite's busy timeout and the pool's wait behind it.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=150)
# Waits for the program are generous: the machine is shared, and slowness is no failure.
START_TIMEOUT = 90.0
QUIET_TIMEOUT = 150.0
# A database with nothing left to do for this long, while households miss answers, is stuck.
STUCK_SECONDS = 15.0
# Repeats of up to this many messages are collapsed (a reply of two messages sent twice).
LONGEST_REPEAT = 3

FIRST_NAMES = ("Siti", "Budi", "Dewi", "Agus", "Rina", "Joko", "Lestari", "Hendra", "Wati",
               "Yusuf")
LAST_NAMES = ("Aminah", "Santoso", "Rahayu")


def answers(n: int) -> tuple[str, ...]:
    """Household n's typed answers, from the first "hello" to "Submit" (by its number)."""
    name = f"{FIRST_NAMES[n % 10]} {LAST_NAMES[n // 10 % 3]}"
    vulnerable = ("none", "1, 4", "6")[n % 3]
    return (
        "hello",                                   # the welcome and its menu
        "1",                                       # request help
        "1",                                       # yes, I agree
        name,                                      # head of the household
        f"0857-{1000 + n:04d}-{2000 + n:04d}",     # phone, typed
        f"317123450890{n + 1:04d}",                # NIK
        "Gambir",                                  # kelurahan by name
        f"Jl. Kebon Jeruk {n + 1} 03/05",          # street with RT/RW
        str(2 + n % 5),                            # people in the household
        vulnerable,
        "1, 3",                                    # needs
        "1",                                       # submit the summary
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def common_env(database_url: str, port: int) -> dict[str, str]:
    """The environment of every `gotong run` of the fault tests.

    Leases and back-off are short so that takeovers and recovery happen within a test;
    sending limits are high so that the fake API, not the limiter, sets the pace.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOTONG_")}
    environ.update({
        "GOTONG_DATABASE__URL": database_url,
        "GOTONG_PRIVACY__NIK_HASH_KEY": NIK_KEY,
        "GOTONG_WEB__PORT": str(port),
        "GOTONG_WEB__PLAYGROUND": "off",
        # Several processes at once, on this machine: metrics are tested on their own.
        "GOTONG_METRICS__PORT": "0",
        "GOTONG_INBOUND__LEASE_SECONDS": "2",
        "GOTONG_INBOUND__POLL_SECONDS": "0.5",
        "GOTONG_INBOUND__RETRY_BASE_SECONDS": "0.2",
        "GOTONG_INBOUND__RETRY_MAX_SECONDS": "2",
        # A failure the program does not count as the database's sets its update aside at
        # once, and fails the test: no fault played here is an update's own fault.
        "GOTONG_INBOUND__MAX_ATTEMPTS": "1",
        # Long enough for an answer to go out after a restart, when the dispatcher holds
        # back sending for a moment while it joins the others (a dead process counts as
        # alive for a few seconds): an answer whose lease ends first is left to the
        # dispatcher, which sends its first messages again.
        "GOTONG_NOTIFICATIONS__LEASE_SECONDS": "5",
        "GOTONG_NOTIFICATIONS__POLL_SECONDS": "0.5",
        "GOTONG_NOTIFICATIONS__RETRY_BASE_SECONDS": "0.2",
        "GOTONG_NOTIFICATIONS__RETRY_MAX_SECONDS": "2",
        "GOTONG_TELEGRAM__MESSAGES_PER_SECOND": "500",
        "GOTONG_WHATSAPP__MESSAGES_PER_SECOND": "500",
    })
    return environ


def telegram_env(fake: FakeTelegramAPI, *, webhook: bool) -> dict[str, str]:
    environ = {
        "GOTONG_TELEGRAM__TOKEN": fake.token,
        "GOTONG_TELEGRAM__API_BASE_URL": fake.base_url,
        "GOTONG_TELEGRAM__API_FILE_URL": fake.base_file_url,
        "GOTONG_TELEGRAM__MODE": "webhook" if webhook else "polling",
    }
    if webhook:
        environ["GOTONG_TELEGRAM__WEBHOOK_URL"] = f"https://bot.example.org{TELEGRAM_PATH}"
        environ["GOTONG_TELEGRAM__WEBHOOK_SECRET"] = TELEGRAM_SECRET
    return environ


def whatsapp_env(fake: FakeWhatsAppAPI) -> dict[str, str]:
    return {
        "GOTONG_WHATSAPP__PHONE_NUMBER_ID": fake.phone_number_id,
        "GOTONG_WHATSAPP__ACCESS_TOKEN": fake.access_token,
        "GOTONG_WHATSAPP__APP_SECRET": WHATSAPP_SECRET,
        "GOTONG_WHATSAPP__VERIFY_TOKEN": WHATSAPP_VERIFY,
        "GOTONG_WHATSAPP__API_BASE_URL": fake.base_url,
        "GOTONG_WHATSAPP__API_VERSION": fake.api_version,
        "GOTONG_WHATSAPP__WEBHOOK_PATH": WHATSAPP_PATH,
    }


# --- the program under test ----------------------------------------------------------


class Gotong:
    """One `gotong run` process, started again under the same name after a kill; each run
    logs to its own file."""

    def __init__(self, workdir: Path, name: str, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.name = name
        self.env = dict(env)
        self.port = int(self.env["GOTONG_WEB__PORT"])
        self.process: asyncio.subprocess.Process | None = None
        self.runs = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.runs += 1
        # A file rather than a pipe: nobody reads the output while the process runs.
        with self._log(self.runs).open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(GOTONG), "run", cwd=self.workdir, env=self.env, stdout=log,
                stderr=asyncio.subprocess.STDOUT)

    async def wait_ready(self) -> None:
        """Until its web server answers (webhooks are taken from then on)."""
        async with aiohttp.ClientSession() as session, asyncio.timeout(START_TIMEOUT):
            while True:
                assert self.running, f"{self.name} exited:\n{self.logs()}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no handler runs, leases and unsent replies are left as they are."""
        assert self.process is not None and self.running, self.logs()
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM as a service manager sends it; SIGKILL if it does not end in time."""
        if self.process is None or not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    def _log(self, run: int) -> Path:
        return self.workdir / f"{self.name}-{run}.log"

    def logs(self, tail: int = 60) -> str:
        """The last lines of each run's log (logs hold ids and kinds, no personal data)."""
        parts = []
        for run in range(1, self.runs + 1):
            lines = self._log(run).read_text(errors="replace").splitlines()
            parts.append(f"--- {self.name}, run {run} ---\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)

    def log_text(self) -> str:
        return "\n".join(self._log(run).read_text(errors="replace")
                         for run in range(1, self.runs + 1))


async def stop_all(processes: Sequence[Gotong]) -> None:
    for process in processes:
        await process.stop()


# --- the platforms -------------------------------------------------------------------


class Platform(Protocol):
    """A chat app as the driver sees it: it hands a household's text to gotong, and tells
    what the bot answered."""

    channel: str

    async def deliver(self, n: int, text: str) -> str:
        """Hand the text over until the platform's side has it for good; its id."""
        ...

    def chat_id(self, n: int) -> str:
        ...

    def transcript(self, n: int) -> list[str]:
        ...

    def messages_sent(self) -> int:
        ...


class WebhookPoster:
    """Posts to one or more `gotong run` processes in turn (a load balancer in front of
    them); a call that fails goes to the next one after a short pause."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self._turn = itertools.count()
        self.session: aiohttp.ClientSession | None = None
        # Calls that failed (refused, reset, 5xx) and were made again.
        self.retries = 0

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def post(self, call: Callable[[aiohttp.ClientSession, str],
                                        Awaitable[tuple[int, str]]]) -> None:
        assert self.session is not None, "open() first"
        while True:
            url = self.urls[next(self._turn) % len(self.urls)]
            try:
                status, _ = await call(self.session, url)
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if status == 200:
                return
            # Only gotong being away or failing may refuse: a 4xx is a bug of the test.
            assert status == 0 or status >= 500, status
            self.retries += 1
            await asyncio.sleep(RETRY_PAUSE)


class TelegramWebhook:
    channel = "telegram"

    def __init__(self, fake: FakeTelegramAPI, urls: Sequence[str]) -> None:
        self.fake = fake
        self.poster = WebhookPoster([f"{url}{TELEGRAM_PATH}" for url in urls])
        self.updates = UpdateFactory()

    def user(self, n: int) -> TgUser:
        return TgUser(id=CHAT_BASE + n, first_name=FIRST_NAMES[n % 10], language_code="en")

    async def deliver(self, n: int, text: str) -> str:
        # Built once: a retry sends the same update, with the same id, as Telegram does.
        update = self.updates.text(self.user(n), text)

        async def call(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
            async with session.post(url, json=update, headers={
                    "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}) as response:
                return response.status, await response.text()

        await self.poster.post(call)
        return str(update["update_id"])

    def chat_id(self, n: int) -> str:
        return str(CHAT_BASE + n)

    def transcript(self, n: int) -> list[str]:
        return self.fake.texts(CHAT_BASE + n)

    def messages_sent(self) -> int:
        return len(self.fake.all_messages())


class TelegramPolling(TelegramWebhook):
    """Updates queued at the fake for getUpdates; one counts as taken once the offset of
    a later call has moved past it (Telegram then forgets it)."""

    def __init__(self, fake: FakeTelegramAPI) -> None:
        super().__init__(fake, [])

    async def deliver(self, n: int, text: str) -> str:
        update = self.updates.text(self.user(n), text)
        update_id = update["update_id"]
        self.fake.push_update(update)
        # Each getUpdates may confirm it: look again after every call (the program may be
        # down for a while, between a kill and its restart).
        while True:
            calls = len(self.fake.calls_to("getUpdates"))
            if all(u["update_id"] != update_id for u in self.fake.pending_updates()):
                return str(update_id)
            await self.fake.wait_for_calls("getUpdates", calls + 1, timeout=START_TIMEOUT)


class WhatsAppWebhook:
    channel = "whatsapp"

    def __init__(self, fake: FakeWhatsAppAPI, urls: Sequence[str]) -> None:
        self.fake = fake
        self.poster = WebhookPoster([f"{url}{WHATSAPP_PATH}" for url in urls])

    def number(self, n: int) -> str:
        return str(NUMBER_BASE + n)

    async def deliver(self, n: int, text: str) -> str:
        envelope = text_message(self.number(n), text, name=FIRST_NAMES[n % 10])

        async def call(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
            return await post_whatsapp(session, url, envelope, WHATSAPP_SECRET)

        await self.poster.post(call)
        return str(envelope["entry"][0]["changes"][0]["value"]["messages"][0]["id"])

    def chat_id(self, n: int) -> str:
        return self.number(n)

    def transcript(self, n: int) -> list[str]:
        return self.fake.texts(self.number(n))

    def messages_sent(self) -> int:
        return len(self.fake.messages)


# --- the burst -----------------------------------------------------------------------


@dataclass
class Burst:
    """CHATS households registering at once, each chat's updates one after the other."""

    platform: Platform
    chats: int = CHATS
    # A person's pause between two messages: keeps updates arriving while the bot works.
    think: float = 0.05
    # The ids the platform's side took, per household, in order.
    taken: dict[int, list[str]] = field(default_factory=dict)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total(self) -> int:
        return sum(len(answers(n)) for n in range(self.chats))

    @property
    def taken_count(self) -> int:
        return sum(len(ids) for ids in self.taken.values())

    async def run(self) -> None:
        await asyncio.gather(*(self._household(n) for n in range(self.chats)))

    async def _household(self, n: int) -> None:
        ids = self.taken.setdefault(n, [])
        for text in answers(n):
            ids.append(await self.platform.deliver(n, text))
            self._progress.set()
            await asyncio.sleep(self.think)

    async def wait_taken(self, count: int, timeout: float = QUIET_TIMEOUT) -> None:  # noqa: ASYNC109
        """Until `count` updates were taken (the middle of the burst, say)."""
        async with asyncio.timeout(timeout):
            while self.taken_count < count:
                self._progress.clear()
                await self._progress.wait()


# --- transcripts ---------------------------------------------------------------------


def normalise(texts: Sequence[str]) -> list[str]:
    return [REFERENCE.sub("GT-?????", text) for text in texts]


def collapse(texts: Sequence[str]) -> tuple[list[str], int]:
    """The texts with immediate repeats removed, and how many messages were removed.

    A repeat is a run of up to LONGEST_REPEAT messages followed at once by the same run:
    what a reply of one or more messages looks like when it is sent again.
    """
    out: list[str] = []
    removed = 0
    for text in texts:
        out.append(text)
        for length in range(1, LONGEST_REPEAT + 1):
            if len(out) >= 2 * length and out[-length:] == out[-2 * length:-length]:
                del out[-length:]
                removed += length
                break
    return out, removed


def transcripts(platform: Platform, chats: int = CHATS) -> dict[int, list[str]]:
    return {n: normalise(platform.transcript(n)) for n in range(chats)}


@dataclass(frozen=True)
class Comparison:
    duplicates: dict[int, int]
    differing: dict[int, tuple[list[str], list[str]]]

    @property
    def total_duplicates(self) -> int:
        return sum(self.duplicates.values())

    def describe(self) -> str:
        lines = []
        for n, (got, expected) in sorted(self.differing.items())[:3]:
            first = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False))
                          if a != b), min(len(got), len(expected)))
            lines.append(f"household {n}: {len(got)} messages (collapsed), expected "
                         f"{len(expected)}; first difference at message {first}: "
                         f"{got[first:first + 2]!r} instead of {expected[first:first + 2]!r}")
        n, (got, expected) = min(self.differing.items())
        lines.append(f"household {n}, as heard and as expected (beginnings):")
        lines.extend(f"  {a[:40]!r:44} {b[:40]!r}"
                     for a, b in itertools.zip_longest(got, expected, fillvalue=""))
        return f"{len(self.differing)} transcripts differ\n" + "\n".join(lines)


def compare(reference: Mapping[int, list[str]], platform: Platform,
            chats: int = CHATS) -> Comparison:
    duplicates: dict[int, int] = {}
    differing: dict[int, tuple[list[str], list[str]]] = {}
    for n, texts in transcripts(platform, chats).items():
        collapsed, removed = collapse(texts)
        if removed:
            duplicates[n] = removed
        if collapsed != reference[n]:
            differing[n] = (collapsed, reference[n])
    return Comparison(duplicates, differing)


# --- the database, as the test sees it -----------------------------------------------


@dataclass(frozen=True)
class Quiet:
    waiting: int
    unsettled: int


class Observer:
    """Reads the database under test on connections of its own (none kept open: a fault
    may cut them)."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(url, poolclass=NullPool)

    async def close(self) -> None:
        await self.engine.dispose()

    async def _read(self, query: Any) -> list[Any]:
        # A cut connection or a lock held by the fault is the fault's doing: ask again.
        for attempt in itertools.count(1):
            try:
                async with self.engine.connect() as connection:
                    return list((await connection.execute(query)).all())
            except DBAPIError:
                if attempt >= 50:
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    async def quiet(self) -> Quiet:
        """Updates still to handle, and outbox rows still to send."""
        u, m = InboundUpdate, OutboxMessage
        [[waiting]] = await self._read(
            select(func.count()).select_from(u)
            .where(u.processed_at.is_(None), u.set_aside_at.is_(None)))
        [[unsettled]] = await self._read(
            select(func.count()).select_from(m).where(m.status.in_(UNSETTLED)))
        return Quiet(int(waiting), int(unsettled))

    async def inbound(self, channel: str) -> dict[str, tuple[bool, bool, int]]:
        """Each stored update of the channel: (handled, set aside, attempts)."""
        u = InboundUpdate
        rows = await self._read(
            select(u.external_id, u.processed_at, u.set_aside_at, u.attempts)
            .where(u.channel == channel, u.chat_id != ""))
        return {r.external_id: (r.processed_at is not None, r.set_aside_at is not None,
                                r.attempts) for r in rows}

    async def unsettled_messages(self, channel: str) -> dict[str, int]:
        """Per chat, the messages of outbox rows not settled: those a dead process may have
        sent already, and that are sent again."""
        m, c = OutboxMessage, Contact
        rows = await self._read(
            select(c.chat_id, m.body).join(c, c.id == m.contact_id)
            .where(m.status.in_(UNSETTLED), c.channel == channel))
        counts: dict[str, int] = {}
        for chat_id, body in rows:
            counts[chat_id] = counts.get(chat_id, 0) + max(1, len((body or {}).get(
                "replies", ())))
        return counts

    async def requests(self) -> int:
        [[count]] = await self._read(select(func.count()).select_from(HelpRequest))
        return int(count)

    async def leased_by(self, process: Gotong) -> int:
        """Updates the process has claimed and not finished (its lease names its pid)."""
        assert process.process is not None
        u = InboundUpdate
        [[count]] = await self._read(
            select(func.count()).select_from(u)
            .where(u.processed_at.is_(None), u.set_aside_at.is_(None),
                   u.lease_owner.like(f"%:{process.process.pid}:%")))
        return int(count)


async def wait_quiet(observer: Observer, platform: Platform, processes: Sequence[Gotong],
                     chats: int = CHATS, timeout: float = QUIET_TIMEOUT) -> None:  # noqa: ASYNC109
    """Until every household heard its request registered, no update waits and no outbox
    row is left to send (re-sends of rows a dead process held included). Called once the
    burst has ended: a database that stays quiet while households are missing answers is
    stuck, and that fails at once."""
    loop = asyncio.get_running_loop()
    quiet_since: float | None = None
    problem = f"not quiet after {timeout}s"
    try:
        async with asyncio.timeout(timeout):
            while True:
                done = all(registered(platform, n) for n in range(chats))
                quiet = await observer.quiet() == Quiet(0, 0)
                if done and quiet:
                    return
                quiet_since = (quiet_since or loop.time()) if quiet else None
                if quiet_since is not None and loop.time() - quiet_since > STUCK_SECONDS:
                    problem = f"nothing left to do for {STUCK_SECONDS}s"
                    break
                for process in processes:
                    assert process.running or process.runs == 0 or _killed(process), \
                        f"{process.name} died:\n{process.logs()}"
                await asyncio.sleep(0.25)
    except TimeoutError:
        pass
    finished = sum(registered(platform, n) for n in range(chats))
    state = await observer.quiet()
    aside = sum(row[1] for row in (await observer.inbound(platform.channel)).values())
    logs = "\n".join(process.logs() for process in processes)
    raise AssertionError(f"{problem}: {finished}/{chats} households registered, {state}, "
                         f"{aside} updates set aside\n{logs}")


def registered(platform: Platform, n: int) -> bool:
    return any(REFERENCE.search(text) for text in platform.transcript(n))


def _killed(process: Gotong) -> bool:
    return process.process is not None and process.process.returncode == -signal.SIGKILL


@dataclass(frozen=True)
class Report:
    """What a fault run came to, for the test's assertions and its log."""

    taken: int
    stored: int
    duplicates: int
    retries: int

    def __str__(self) -> str:
        return (f"{self.taken} updates taken, {self.stored} stored, {self.duplicates} "
                f"duplicate messages, {self.retries} webhook calls made again")


# Duplicates a fault may cause without the test being able to say how many were in flight
# (a cut connection, a full disk): each must still be a repeat of the message before it.
ANY = None


async def check_outcome(observer: Observer, platform: Platform, burst: Burst,
                        reference: Mapping[int, list[str]], processes: Sequence[Gotong],
                        *, allowed_duplicates: Mapping[str, int] | None,
                        retries: int = 0) -> Report:
    """Every household registered once, every update the platform's side took handled
    once, every transcript that of the run without faults; duplicates only in the chats,
    and no more than the messages, that were in flight at a kill (`allowed_duplicates`,
    per chat id; ANY: not bounded)."""
    await wait_quiet(observer, platform, processes, burst.chats)
    logs = "\n".join(process.logs() for process in processes)
    assert burst.taken_count == burst.total
    stored = await observer.inbound(platform.channel)
    taken = [external for ids in burst.taken.values() for external in ids]
    missing = [external for external in taken if external not in stored]
    assert not missing, f"{len(missing)} updates taken but not stored\n{logs}"
    unhandled = [external for external in taken if not stored[external][0]]
    aside = [external for external in taken if stored[external][1]]
    assert not unhandled and not aside, \
        f"{len(unhandled)} updates not handled, {len(aside)} set aside\n{logs}"
    # Nothing else was handled: no update from nowhere, none twice (ids are unique).
    assert len(stored) == len(taken), (len(stored), len(taken))
    assert await observer.requests() == burst.chats

    comparison = compare(reference, platform, burst.chats)
    assert not comparison.differing, comparison.describe() + "\n" + logs
    if allowed_duplicates is not None:
        for n, count in comparison.duplicates.items():
            limit = allowed_duplicates.get(platform.chat_id(n), 0)
            heard = "\n".join(f"  {text[:50]!r}" for text in transcripts(platform)[n])
            assert count <= limit, (f"household {n}: {count} duplicate messages, {limit} "
                                    f"were in flight at a kill; it heard:\n{heard}\n{logs}")
    return Report(taken=len(taken), stored=len(stored),
                  duplicates=comparison.total_duplicates, retries=retries)


class Scenario:
    """A burst against one or more `gotong run` processes, with a test's fault played in
    the middle: `start`, then the fault, then `finish`; everything is stopped on exit."""

    def __init__(self, database_url: str, platform: Platform, processes: Sequence[Gotong],
                 poster: WebhookPoster | None, *, think: float = 0.2) -> None:
        self.observer = Observer(database_url)
        self.platform = platform
        self.processes = list(processes)
        self.poster = poster
        self.burst = Burst(platform, think=think)
        self._driving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Scenario:
        if self.poster is not None:
            await self.poster.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._driving is not None:
            self._driving.cancel()
            await asyncio.gather(self._driving, return_exceptions=True)
        await stop_all(self.processes)
        if self.poster is not None:
            await self.poster.close()
        await self.observer.close()

    async def start(self) -> None:
        for process in self.processes:
            await process.start()
        for process in self.processes:
            await process.wait_ready()
        self._driving = asyncio.create_task(self.burst.run())

    async def wait_taken(self, fraction: float) -> int:
        """Until that part of the burst's updates was taken; how many were."""
        await self.burst.wait_taken(int(self.burst.total * fraction))
        return self.burst.taken_count

    async def finish(self, reference: Mapping[int, list[str]], *,
                     allowed_duplicates: Mapping[str, int] | None) -> Report:
        assert self._driving is not None, "start() first"
        try:
            await asyncio.wait_for(asyncio.shield(self._driving), QUIET_TIMEOUT)
        except TimeoutError:
            logs = "\n".join(process.logs() for process in self.processes)
            raise AssertionError(f"the burst did not end: {self.burst.taken_count} of "
                                 f"{self.burst.total} updates taken\n{logs}") from None
        return await check_outcome(self.observer, self.platform, self.burst, reference,
                                   self.processes, allowed_duplicates=allowed_duplicates,
                                   retries=self.poster.retries if self.poster else 0)


# --- the run without faults ----------------------------------------------------------


# The reference runs log everything of ours (DEBUG), each in one of the two formats: the
# log scans (tests/faults/test_log_privacy.py) read them.
REFERENCE_LOG_FORMATS = {"telegram": "text", "whatsapp": "json"}


async def reference_run(kind: str, workdir: Path, database_url: str) -> dict[int, list[str]]:
    """The transcripts of a burst that meets no fault, by Telegram webhook ("telegram")
    or WhatsApp webhook ("whatsapp"); polling renders as the webhook does."""
    port = free_port()
    logging = {"GOTONG_LOGGING__LEVEL": "DEBUG",
               "GOTONG_LOGGING__FORMAT": REFERENCE_LOG_FORMATS[kind]}
    async with contextlib.AsyncExitStack() as stack:
        platform: TelegramWebhook | WhatsAppWebhook
        if kind == "telegram":
            telegram = await stack.enter_async_context(FakeTelegramAPI())
            env = {**common_env(database_url, port), **telegram_env(telegram, webhook=True),
                   **logging}
            platform = TelegramWebhook(telegram, [f"http://127.0.0.1:{port}"])
        else:
            whatsapp = await stack.enter_async_context(FakeWhatsAppAPI())
            env = {**common_env(database_url, port), **whatsapp_env(whatsapp), **logging}
            platform = WhatsAppWebhook(whatsapp, [f"http://127.0.0.1:{port}"])
        gotong = Gotong(workdir, f"reference-{kind}", env)
        observer = Observer(database_url)
        stack.push_async_callback(observer.close)
        await platform.poster.open()
        stack.push_async_callback(platform.poster.close)
        stack.push_async_callback(gotong.stop)
        await gotong.start()
        await gotong.wait_ready()
        burst = Burst(platform)
        await burst.run()
        await wait_quiet(observer, platform, [gotong])
        result = transcripts(platform)
        for n, texts in result.items():
            collapsed, removed = collapse(texts)
            assert not removed and collapsed == texts, (n, texts)
            assert "GT-?????" in texts[-1], (n, texts[-3:])
        return result
