"""WhatsApp inbound throughput: Gotong's WhatsApp channel against a bare aiohttp echo bot.

Each side is a web app on 127.0.0.1 that gets signed webhooks (``X-Hub-Signature-256``) and
answers through its own, identical :class:`~tests.fakes.whatsapp_api.FakeWhatsAppAPI`:

* echo: one route that checks the signature, parses the JSON, answers 200 at once and, in a
  task per message, marks the message read and sends one text back (the text typed, or the
  id of the button or list row tapped);
* gotong: the real :class:`~gotong.bot.channels.whatsapp.WhatsAppChannel` behind ``create_web_app``
  with its notification dispatcher, as ``gotong run`` wires them, on its own migrated SQLite
  file.

Every chat registers a household (16 messages: texts, reply buttons and list rows, as in
``tests/bot/channels/test_whatsapp.py``).  One registration is first made message by message on
Gotong's side to learn the option id and title of every tap; every chat of a round then
replays those messages from a number of its own.  The chats of a round post at once, each
chat its messages in order (the next one only once the previous webhook was answered 200,
as WhatsApp does), and the time from the first post until every message was handled is
measured.  After a warm-up round on each side, the sides run alternately; the median round
of each is reported::

    .venv/bin/python benchmarks/whatsapp_inbound.py [--messages N] [--chats C] [--rounds R]

Every round is checked: the echo bot must have echoed every message, every Gotong chat must
have got all its replies, ending with the request's reference (GT-...), every message must
have been marked read, and neither fake may have refused a malformed request.  A failed check
or a message that is never handled stops the benchmark with an error instead of a result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

# The project root, for the fakes and the harness in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from gotong.bot.channels.whatsapp import HTTP_CONNECTIONS, REQUEST_TIMEOUT, WhatsAppChannel
from gotong.bot.config import Config, DatabaseConfig, PrivacyConfig, validate
from gotong.bot.logs import quiet_third_party
from gotong.bot.process import attach_dispatcher
from gotong.bot.services import Services, open_services
from gotong.bot.web.app import create_web_app
from gotong.models.help_request import REFERENCE_PREFIX, HelpRequest
from tests.bot.channels.whatsapp_harness import APP_SECRET, WEBHOOK_PATH, whatsapp_config
from tests.fakes.whatsapp_api import FakeWhatsAppAPI, SentMessage
from tests.fakes.whatsapp_webhooks import (
    button_reply,
    list_reply,
    post_webhook,
    sign,
    text_message,
)

JSONDict = dict[str, Any]

NIK_KEY = "benchmark-nik-hash-key-" + "k" * 32
# Longest wait for one round before it counts as failed (a message was never handled).
ROUND_TIMEOUT = 120.0
NAMES = ("Siti Aminah", "Budi Santoso", "Dewi Lestari", "Agus Salim", "Rina Wulandari",
         "Wahyu Hidayat", "Nur Aini", "Eko Prasetyo")
# Senders are Indonesian mobile numbers, digits only, as WhatsApp gives them (wa_id).
FIRST_NUMBER = 6281210_000_001
# The Graph API's throughput is the fake's to enforce, and it enforces none here; the echo
# bot keeps to no limit either, so neither does Gotong (its default keeps to 80 a second).
UNLIMITED = 10_000.0


@dataclass(frozen=True)
class Step:
    """One message of the registration: a typed text, or a tap on the button or list row
    whose title contains this label."""

    kind: str  # "text" or "tap"
    value: str  # the text ({name}, {house}, {size} filled in per chat), or the label


DIALOG: tuple[Step, ...] = (
    Step("text", "halo"),
    Step("tap", "Minta bantuan"),
    Step("tap", "Ya, saya setuju"),
    Step("text", "{name}"),
    # WhatsApp vouches for the sender's number: one tap uses it (a new number per chat).
    Step("tap", "Pakai nomor ini"),
    Step("tap", "Lewati"),
    Step("tap", "Jakarta Selatan"),
    Step("tap", "Berikutnya"),
    Step("tap", "Setia Budi"),
    Step("tap", "Karet Semanggi"),
    Step("text", "Jl. Melati No. {house} RT 03 RW 05"),
    Step("text", "{size}"),
    Step("tap", "Lansia"),
    Step("tap", "Selesai"),
    Step("text", "1, 3"),
    Step("tap", "Kirim"),
)


def chat_values(number: str) -> dict[str, str]:
    """What one person types: a different name, house number and household size per chat."""
    n = int(number)
    return {
        "name": NAMES[n % len(NAMES)],
        "house": str(1 + n % 97),
        "size": str(2 + n % 6),
    }


@dataclass(frozen=True)
class Tap:
    """The option a tap of the dialog chooses (the same in every chat)."""

    option_id: str  # "context|option"
    title: str
    row: bool  # a list row, else a reply button


@dataclass(frozen=True)
class Template:
    """What one registration looks like on Gotong's side, learned from a probe chat."""

    taps: dict[int, Tap]  # step index -> option tapped
    messages_per_chat: int  # messages Gotong sends in one complete registration


@dataclass(frozen=True)
class Post:
    """One webhook call, serialised and signed beforehand so that the client does no more
    than post during a round."""

    message_id: str
    body: bytes
    signature: str


@dataclass(frozen=True)
class Chat:
    number: str
    posts: tuple[Post, ...]
    echoes: tuple[str, ...]  # what the echo bot answers to each message


@dataclass(frozen=True)
class Round:
    chats: tuple[Chat, ...]

    @property
    def messages(self) -> int:
        return sum(len(chat.posts) for chat in self.chats)


def envelope_for(number: str, step: Step, tap: Tap | None) -> tuple[JSONDict, str]:
    """The webhook of one step from this number, and what the echo bot answers to it."""
    values = chat_values(number)
    if step.kind == "text":
        text = step.value.format(**values)
        return text_message(number, text, name=values["name"]), text
    assert tap is not None
    build = list_reply if tap.row else button_reply
    return build(number, tap.option_id, tap.title, name=values["name"]), tap.option_id


def signed(envelope: JSONDict) -> Post:
    body = json.dumps(envelope).encode()
    message_id = envelope["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    return Post(message_id, body, sign(body, APP_SECRET))


def build_chat(number: str, template: Template) -> Chat:
    posts, echoes = [], []
    for index, step in enumerate(DIALOG):
        envelope, echo = envelope_for(number, step, template.taps.get(index))
        posts.append(signed(envelope))
        echoes.append(echo)
    return Chat(number, tuple(posts), tuple(echoes))


class Numbers:
    """Fresh senders for every round: nobody has registered from them before."""

    def __init__(self, first: int = FIRST_NUMBER) -> None:
        self._next = first

    def take(self, count: int) -> list[str]:
        numbers = [str(self._next + i) for i in range(count)]
        self._next += count
        return numbers


class BenchmarkFailure(RuntimeError):
    """A round did not get every answer it should have; no result is reported."""


class ErrorCounter(logging.Handler):
    """Counts records at ERROR and above (errors while handling messages, mostly)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """The app on a free port of 127.0.0.1, without an access log (as the fake API has)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


def _by_chat(messages: Sequence[SentMessage]) -> dict[str, list[SentMessage]]:
    chats: dict[str, list[SentMessage]] = defaultdict(list)
    for message in messages:
        chats[message.to].append(message)
    return chats


@dataclass(frozen=True)
class Mark:
    """How far a fake's records went before a round."""

    sent: int
    read: int

    @classmethod
    def of(cls, fake: FakeWhatsAppAPI) -> Mark:
        return cls(len(fake.messages), len(fake.read_ids))


def check_fake(name: str, fake: FakeWhatsAppAPI, batch: Round, before: Mark) -> None:
    """Every message of the round was marked read, and nothing sent broke the API's rules."""
    read = set(fake.read_ids[before.read:])
    unread = sum(post.message_id not in read for chat in batch.chats for post in chat.posts)
    if unread:
        raise BenchmarkFailure(f"{name}: {unread} of {batch.messages} messages not marked read")
    invalid = fake.invalid_requests()
    if invalid:
        raise BenchmarkFailure(f"{name}: the Graph API refused {len(invalid)} requests, the "
                               f"first: {invalid[0].code} {invalid[0].details}")


# --- the two sides ------------------------------------------------------------------------


class EchoSide:
    """A bare aiohttp WhatsApp bot: verify, answer 200, then read receipt and one echo."""

    name = "echo"

    def __init__(self, fake: FakeWhatsAppAPI) -> None:
        self.fake = fake
        self.handled = 0
        self.errors = 0
        self.url = ""
        self._target = 0
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._messages_url = fake.messages_url
        self.app = web.Application()
        self.app.router.add_post(WEBHOOK_PATH, self._webhook)

    async def start(self) -> None:
        # The same client settings as Gotong's channel (timeout, connection pool), so that
        # the two differ in what they do per message, not in how many requests fly at once.
        self._http = aiohttp.ClientSession(
            timeout=REQUEST_TIMEOUT, connector=aiohttp.TCPConnector(limit=HTTP_CONNECTIONS),
            headers={"Authorization": f"Bearer {self.fake.access_token}"})
        self._runner, self.url = await serve(self.app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header.encode(), expected.encode()):
            raise web.HTTPUnauthorized()
        try:
            payload = json.loads(body)
        except ValueError:
            raise web.HTTPBadRequest(text="not JSON") from None
        for entry in payload.get("entry", ()):
            for change in entry.get("changes", ()):
                for message in change.get("value", {}).get("messages", ()):
                    task = asyncio.create_task(self._answer(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        return web.json_response({"ok": True})

    async def _answer(self, message: JSONDict) -> None:
        try:
            await self._post({"status": "read", "message_id": message["id"]})
            await self._post({"to": message["from"], "type": "text",
                              "text": {"body": _echo_text(message)}})
        except (aiohttp.ClientError, TimeoutError, BenchmarkFailure) as exc:
            # Done with, unsuccessfully: the round ends and its check fails.
            self.errors += 1
            logging.getLogger("benchmark.echo").error("echo bot failed: %r", exc)
        finally:
            self.handled += 1
            if self.handled >= self._target:
                self._done.set()

    async def _post(self, payload: JSONDict) -> None:
        assert self._http is not None
        async with self._http.post(self._messages_url,
                                   json={"messaging_product": "whatsapp", **payload}) as response:
            await response.read()
            if response.status != 200:
                raise BenchmarkFailure(f"the Graph API answered {response.status}")

    async def wait_handled(self, target: int) -> None:
        self._target = target
        self._done.clear()
        if self.handled >= target:
            return
        await self._done.wait()

    def verify(self, batch: Round, before: Mark) -> None:
        sent = _by_chat(self.fake.messages[before.sent:])
        for chat in batch.chats:
            # Each message is answered in a task of its own: the echoes of one chat may
            # overtake each other, so only what was sent is compared, not its order.
            got = Counter(m.text for m in sent.get(chat.number, ()))
            if got != Counter(chat.echoes):
                raise BenchmarkFailure(f"echo: chat {chat.number} got {sorted(got.elements())!r}"
                                       f", expected {sorted(chat.echoes)!r}")
        check_fake(self.name, self.fake, batch, before)
        if self.errors:
            raise BenchmarkFailure(f"echo: {self.errors} errors while answering messages")


def _echo_text(message: JSONDict) -> str:
    if message.get("type") == "interactive":
        interactive = message["interactive"]
        return str(interactive[interactive["type"]]["id"])
    return str(message.get("text", {}).get("body") or message.get("type"))


class GotongSide:
    """Gotong's WhatsApp channel behind its web app, with the notification dispatcher
    (every answer is also an outbox row), on its own migrated SQLite file."""

    name = "gotong"

    def __init__(self, fake: FakeWhatsAppAPI, services: Services) -> None:
        self.fake = fake
        self.services = services
        config = services.config
        self.channel = WhatsAppChannel(config.whatsapp, services.conversations,
                                       services.sessions)
        self.dispatcher = attach_dispatcher(services, None, self.channel)
        self.url = ""
        self._stop_dispatcher = asyncio.Event()
        self._dispatching: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.template: Template | None = None
        self.registered = 0

    @property
    def handled(self) -> int:
        return self.channel.handled_messages

    async def start(self) -> None:
        await self.channel.start()
        self._dispatching = asyncio.create_task(self.dispatcher.run(self._stop_dispatcher))
        self._runner, self.url = await serve(create_web_app([self.channel.add_routes]))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.channel.stop()
        self._stop_dispatcher.set()
        if self._dispatching is not None:
            await self._dispatching

    async def wait_handled(self, target: int) -> None:
        # The channel's wait_handled gives up after a few seconds; a round may take longer.
        while True:
            try:
                await self.channel.wait_handled(target)
                return
            except TimeoutError:
                continue

    async def probe(self, http: aiohttp.ClientSession, number: str) -> Template:
        """Register one chat message by message, learning the option each tap chooses."""
        taps: dict[int, Tap] = {}
        for index, step in enumerate(DIALOG):
            tap: Tap | None = None
            if step.kind == "tap":
                tap = _find_option(self.fake.sent_to(number), step.value, index)
                taps[index] = tap
            envelope, _ = envelope_for(number, step, tap)
            post = signed(envelope)
            target = self.handled + 1
            status, text = await post_webhook(http, self.url, post.body, None,
                                              signature=post.signature)
            if status != 200:
                raise BenchmarkFailure(f"probe: the webhook answered {status}: {text}")
            async with asyncio.timeout(ROUND_TIMEOUT):
                await self.wait_handled(target)
        messages = self.fake.sent_to(number)
        if not messages or REFERENCE_PREFIX not in messages[-1].text:
            raise BenchmarkFailure(f"probe: the registration did not end with a reference: "
                                   f"{[m.text for m in messages]!r}")
        self.registered += 1
        self.template = Template(taps, len(messages))
        return self.template

    async def verify(self, batch: Round, before: Mark) -> None:
        assert self.template is not None
        sent = _by_chat(self.fake.messages[before.sent:])
        for chat in batch.chats:
            messages = sent.get(chat.number, [])
            if len(messages) != self.template.messages_per_chat or \
                    REFERENCE_PREFIX not in messages[-1].text:
                raise BenchmarkFailure(
                    f"gotong: chat {chat.number} got {len(messages)} messages "
                    f"(expected {self.template.messages_per_chat}), the last one "
                    f"{messages[-1].text if messages else None!r}"
                )
        check_fake(self.name, self.fake, batch, before)
        self.registered += len(batch.chats)
        async with self.services.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(HelpRequest))
        if stored != self.registered:
            raise BenchmarkFailure(f"gotong: {stored} requests stored, expected "
                                   f"{self.registered}")


Side = EchoSide | GotongSide


def _find_option(messages: Sequence[SentMessage], label: str, index: int) -> Tap:
    """The option whose title contains `label` on the latest message that has options."""
    shown = next((m for m in reversed(messages) if m.options()), None)
    if shown is None:
        raise BenchmarkFailure(f"probe: no message with options to tap at step {index}")
    matches = [(id_, title) for id_, title in shown.options() if label in title]
    if len(matches) != 1:
        raise BenchmarkFailure(f"probe: no single option {label!r} at step {index}; the "
                               f"message has {shown.options()!r}")
    [(option_id, title)] = matches
    return Tap(option_id, title, row=shown.interactive_type == "list")


# --- the rounds ---------------------------------------------------------------------------


async def post_chat(http: aiohttp.ClientSession, url: str, chat: Chat,
                    failures: list[str]) -> None:
    """A chat's messages in order: each once the webhook before it was answered."""
    for post in chat.posts:
        status, text = await post_webhook(http, url, post.body, None, signature=post.signature)
        if status != 200:
            failures.append(f"chat {chat.number}: the webhook answered {status}: {text}")
            return


@dataclass(frozen=True)
class Result:
    seconds: float
    posted: float  # seconds until the last webhook was answered 200
    replies: int  # messages the side sent to the chats in the round


async def run_round(side: Side, http: aiohttp.ClientSession, batch: Round,
                    errors: ErrorCounter) -> Result:
    """Post every message of the round, wait until all are handled; the seconds it took."""
    before = Mark.of(side.fake)
    errors_before = errors.count
    target = side.handled + batch.messages
    failures: list[str] = []
    gc.collect()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(ROUND_TIMEOUT):
            await asyncio.gather(*(post_chat(http, side.url, chat, failures)
                                   for chat in batch.chats))
            if failures:
                raise BenchmarkFailure(f"{side.name}: {len(failures)} chats stopped, the "
                                       f"first: {failures[0]}")
            posted = time.perf_counter() - started
            await side.wait_handled(target)
    except TimeoutError:
        raise BenchmarkFailure(f"{side.name}: only {batch.messages - target + side.handled} of "
                               f"{batch.messages} messages handled in time") from None
    elapsed = time.perf_counter() - started
    await _verify(side, batch, before)
    if errors.count != errors_before:
        raise BenchmarkFailure(f"{side.name}: {errors.count - errors_before} errors logged")
    return Result(elapsed, posted, len(side.fake.messages) - before.sent)


async def _verify(side: Side, batch: Round, before: Mark) -> None:
    if isinstance(side, EchoSide):
        side.verify(batch, before)
    else:
        await side.verify(batch, before)


# --- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    chats: int
    rounds: int
    warmup_chats: int
    verbose: bool


def gotong_config(fake: FakeWhatsAppAPI, database: Path) -> Config:
    config = whatsapp_config(
        Config(database=DatabaseConfig(url=f"sqlite+aiosqlite:///{database}"),
               privacy=PrivacyConfig(nik_hash_key=NIK_KEY)),
        fake, messages_per_second=UNLIMITED)
    validate(config)
    return config


async def benchmark(settings: Settings) -> dict[str, list[Result]]:
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    numbers = Numbers()

    def log(text: str) -> None:
        if settings.verbose:
            print(text, file=sys.stderr)

    results: dict[str, list[Result]] = {"echo": [], "gotong": []}

    with tempfile.TemporaryDirectory(prefix="gotong-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            echo_fake = await stack.enter_async_context(FakeWhatsAppAPI())
            gotong_fake = await stack.enter_async_context(FakeWhatsAppAPI())
            services = await open_services(gotong_config(gotong_fake, Path(tmp) / "g.sqlite3"),
                                           migrate=True)
            stack.push_async_callback(services.close)
            # The people's side: one client posting to both bots (one round at a time).
            http = await stack.enter_async_context(aiohttp.ClientSession())
            echo = EchoSide(echo_fake)
            gotong = GotongSide(gotong_fake, services)
            await echo.start()
            stack.push_async_callback(echo.stop)
            await gotong.start()
            stack.push_async_callback(gotong.stop)

            # The dialog, learned once on Gotong's side; the echo bot gets the same messages.
            template = await gotong.probe(http, numbers.take(1)[0])
            log(f"probe: {len(DIALOG)} messages, {template.messages_per_chat} replies per "
                f"chat, taps {[tap.option_id for tap in template.taps.values()]}")

            def new_round(chats: int) -> Round:
                return Round(tuple(build_chat(number, template)
                                   for number in numbers.take(chats)))

            warmup = new_round(settings.warmup_chats)
            for side in (echo, gotong):
                result = await run_round(side, http, warmup, errors)
                log(f"warm-up {side.name}: {warmup.messages} messages in "
                    f"{result.seconds:.3f} s (all posted in {result.posted:.3f} s), "
                    f"{result.replies} replies")

            for number in range(settings.rounds):
                batch = new_round(settings.chats)
                order: tuple[Side, ...] = (echo, gotong) if number % 2 == 0 else (gotong, echo)
                for side in order:
                    result = await run_round(side, http, batch, errors)
                    results[side.name].append(result)
                    log(f"round {number + 1} {side.name}: {batch.messages} messages in "
                        f"{result.seconds:.3f} s (all posted in {result.posted:.3f} s), "
                        f"{result.replies} replies")
    return results


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=None,
                        help=f"messages per measured round (rounded down to whole "
                             f"registrations of {len(DIALOG)} messages; default chats x "
                             f"{len(DIALOG)})")
    parser.add_argument("--chats", type=int, default=40,
                        help="chats registering at once in a measured round (default 40)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measured rounds of each side (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every round on standard error")
    args = parser.parse_args(argv)
    chats = args.chats if args.messages is None else args.messages // len(DIALOG)
    if chats < 1:
        parser.error(f"at least one chat ({len(DIALOG)} messages) is needed")
    if args.rounds < 1:
        parser.error("at least one round is needed")
    settings = Settings(chats=chats, rounds=args.rounds,
                        warmup_chats=max(1, min(chats, 10)), verbose=args.verbose)
    return settings, chats * len(DIALOG)


def main(argv: Sequence[str] | None = None, prefix: str = "") -> int:
    """Run and print the rows (each starting with `prefix`); 1 on a failed check."""
    settings, messages = parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_third_party()
    try:
        results = asyncio.run(benchmark(settings))
    except BenchmarkFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    rates = {}
    for name in ("echo", "gotong"):
        seconds = statistics.median(r.seconds for r in results[name])
        replies = results[name][-1].replies
        rates[name] = messages / seconds
        print(f"{prefix}{name}: {messages} messages in {seconds:.3f} s = "
              f"{rates[name]:.1f} messages/s ({replies} replies sent, "
              f"{replies / messages:.2f} a message)")
    print(f"{prefix}ratio={rates['gotong'] / rates['echo']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
