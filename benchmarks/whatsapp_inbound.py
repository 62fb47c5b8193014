"""WhatsApp inbound throughput: Gotong's WhatsApp channel against a bare aiohttp echo bot.

Each side is a web app on 127.0.0.1 that gets signed webhooks (``X-Hub-Signature-256``) and
answers through its own, identical :class:`~tests.fakes.whatsapp_api.FakeWhatsAppAPI`:

* echo: one route that checks the signature, parses the JSON, answers 200 at once and, in a
  task per message, marks the message read and sends one text back (the text typed, or the
  id of the button or list row tapped);
* gotong: the real :class:`~gotong.bot.channels.whatsapp.WhatsAppChannel` behind ``create_web_app``
  with its notification dispatcher, as ``gotong run`` wires them, on its own migrated
  database: an SQLite file in a temporary directory, or with ``--database`` a new database on
  that PostgreSQL server, dropped at the end (the first line printed says which).

Every chat registers a household (16 messages: texts, reply buttons and list rows, as in
``tests/bot/channels/test_whatsapp.py``).  One registration is first made message by message on
Gotong's side to learn the option id and title of every tap; every chat of a round then
replays those messages from a number of its own.  The chats of a round post at once, each
chat its messages in order (the next one only once the previous webhook was answered 200,
as WhatsApp does), and the time from the first post until every message was handled is
measured.  After a warm-up round on each side, the sides run alternately; the median round
of each is reported; then one more round is offered to Gotong at half the rate it reached, on
a steady schedule, and each message's wait for its reply is reported as p50 and p99::

    .venv/bin/python benchmarks/whatsapp_inbound.py [--messages N] [--chats C] [--rounds R]
                                                    [--database URL]

Every round is checked: the echo bot must have echoed every message, every Gotong chat must
have got all its replies, ending with the request's reference (GT-...), every message must
have been marked read, and neither fake may have refused a malformed request.  A failed check
or a message that is never handled stops the benchmark with an error instead of a result.
The rounds, their checks and the report are benchmarks/sidebyside.py's, shared with Telegram.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

# The project root, for the fakes and the harness in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sidebyside
from sidebyside import BenchmarkFailure, Settings

from gotong.bot.channels.whatsapp import HTTP_CONNECTIONS, REQUEST_TIMEOUT, WhatsAppChannel
from gotong.bot.config import Config
from gotong.bot.process import attach_dispatcher
from gotong.bot.services import Services
from gotong.bot.web.app import create_web_app
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

# Senders are Indonesian mobile numbers, digits only, as WhatsApp gives them (wa_id).
FIRST_NUMBER = 6281210_000_001


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
        "name": sidebyside.NAMES[n % len(sidebyside.NAMES)],
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
    """Every chat's messages of the round were marked read (WhatsApp marks a message read
    with every earlier one of its chat: the last one is enough), and nothing sent broke the
    API's rules."""
    read = set(fake.read_ids[before.read:])
    unread = sum(chat.posts[-1].message_id not in read for chat in batch.chats)
    if unread:
        raise BenchmarkFailure(f"{name}: the last message of {unread} of {len(batch.chats)} "
                               "chats was not marked read")
    invalid = fake.invalid_requests()
    if invalid:
        raise BenchmarkFailure(f"{name}: the Graph API refused {len(invalid)} requests, the "
                               f"first: {invalid[0].code} {invalid[0].details}")


# --- the two sides ------------------------------------------------------------------------


class EchoSide(sidebyside.EchoBase):
    """A bare aiohttp WhatsApp bot: verify, answer 200, then read receipt and one echo."""

    def __init__(self, fake: FakeWhatsAppAPI) -> None:
        super().__init__()
        self.fake = fake
        self.url = ""
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
            self.failed(exc)
        finally:
            self.done_one()

    async def _post(self, payload: JSONDict) -> None:
        assert self._http is not None
        async with self._http.post(self._messages_url,
                                   json={"messaging_product": "whatsapp", **payload}) as response:
            await response.read()
            if response.status != 200:
                raise BenchmarkFailure(f"the Graph API answered {response.status}")

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
        self.check_errors("answering messages")


def _echo_text(message: JSONDict) -> str:
    if message.get("type") == "interactive":
        interactive = message["interactive"]
        return str(interactive[interactive["type"]]["id"])
    return str(message.get("text", {}).get("body") or message.get("type"))


class GotongSide(sidebyside.GotongBase):
    """Gotong's WhatsApp channel behind its web app, with the notification dispatcher, on
    its own migrated database."""

    def __init__(self, fake: FakeWhatsAppAPI, services: Services) -> None:
        self.fake = fake
        self.channel = WhatsAppChannel(services.config.whatsapp, services.conversations,
                                       services.sessions)
        super().__init__(services, self.channel,
                         attach_dispatcher(services, None, self.channel))
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def handled(self) -> int:
        return self.channel.handled_messages

    async def start(self) -> None:
        await super().start()
        self._runner, self.url = await serve(create_web_app([self.channel.add_routes]))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await super().stop()

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
            async with asyncio.timeout(sidebyside.ROUND_TIMEOUT):
                await self.wait_handled(target)
        self.registrations.learn([m.text for m in self.fake.sent_to(number)])
        return Template(taps)

    async def verify(self, batch: Round, before: Mark) -> None:
        # Read receipts go a moment after a chat's messages are handled (one for several).
        last = {chat.posts[-1].message_id for chat in batch.chats}
        for _ in range(100):
            if last <= set(self.fake.read_ids[before.read:]):
                break
            await asyncio.sleep(0.01)
        sent = _by_chat(self.fake.messages[before.sent:])
        for chat in batch.chats:
            self.registrations.check_chat(chat.number,
                                          [m.text for m in sent.get(chat.number, [])])
        check_fake(self.name, self.fake, batch, before)
        await self.registrations.check_stored(len(batch.chats))


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
                    errors: sidebyside.ErrorCounter) -> Result:
    """Post every message of the round, wait until all are handled; the seconds it took."""
    before = Mark.of(side.fake)

    async def post() -> None:
        failures: list[str] = []
        await asyncio.gather(*(post_chat(http, side.url, chat, failures)
                               for chat in batch.chats))
        if failures:
            raise BenchmarkFailure(f"{side.name}: {len(failures)} chats stopped, the "
                                   f"first: {failures[0]}")

    timed = await sidebyside.timed_round(side, batch.messages, "messages handled", post,
                                         lambda: _verify(side, batch, before), errors)
    return Result(timed.seconds, timed.sent, len(side.fake.messages) - before.sent)


async def _verify(side: Side, batch: Round, before: Mark) -> None:
    if isinstance(side, EchoSide):
        side.verify(batch, before)
    else:
        await side.verify(batch, before)


# --- the run ------------------------------------------------------------------------------


def gotong_config(fake: FakeWhatsAppAPI, base: Config) -> Config:
    # The Graph API's throughput is the fake's to enforce, and it enforces none here; the
    # echo bot keeps to no limit either, so neither does Gotong (its default keeps to 80 a
    # second).
    return whatsapp_config(base, fake, messages_per_second=sidebyside.UNLIMITED)


async def benchmark(settings: Settings, prefix: str
                    ) -> tuple[dict[str, list[Result]], sidebyside.Latency]:
    errors = sidebyside.ErrorCounter.on_root()
    numbers = sidebyside.FreshIds(FIRST_NUMBER)

    async with contextlib.AsyncExitStack() as stack:
        echo_fake = await stack.enter_async_context(FakeWhatsAppAPI())
        gotong_fake = await stack.enter_async_context(FakeWhatsAppAPI())
        services = await sidebyside.open_gotong(
            stack, settings, lambda base: gotong_config(gotong_fake, base), prefix)
        # The people's side: one client posting to both bots (one round at a time).
        http = await stack.enter_async_context(aiohttp.ClientSession())
        echo = EchoSide(echo_fake)
        gotong = GotongSide(gotong_fake, services)
        await sidebyside.start_all(stack, echo, gotong)

        # The dialog, learned once on Gotong's side; the echo bot gets the same messages.
        template = await gotong.probe(http, str(numbers.take(1)[0]))
        settings.log(f"probe: {len(DIALOG)} messages, "
                     f"{gotong.registrations.replies_per_chat} replies per chat, taps "
                     f"{[tap.option_id for tap in template.taps.values()]}")

        def new_round(chats: int) -> Round:
            return Round(tuple(build_chat(str(number), template)
                               for number in numbers.take(chats)))

        def describe(batch: Round, result: Result) -> str:
            return (f"{batch.messages} messages in {result.seconds:.3f} s (all posted in "
                    f"{result.posted:.3f} s), {result.replies} replies")

        sides: tuple[Side, Side] = (echo, gotong)
        results = await sidebyside.alternate(
            sides, settings, new_round,
            lambda side, batch: run_round(side, http, batch, errors), describe)
        capacity = settings.size / statistics.median(r.seconds for r in results["gotong"])
        return results, await latency_round(gotong, http, new_round(settings.chats),
                                            capacity / 2)


async def latency_round(side: GotongSide, http: aiohttp.ClientSession, batch: Round,
                        rate: float) -> sidebyside.Latency:
    """The round's messages at a steady `rate`, step by step across the chats; how long
    each waited for its reply."""
    before = Mark.of(side.fake)
    target = side.handled + batch.messages
    failures: list[str] = []

    def push(chat: Chat, post: Post) -> sidebyside.Push:
        async def send() -> None:
            status, text = await post_webhook(http, side.url, post.body, None,
                                              signature=post.signature)
            if status != 200:
                failures.append(f"chat {chat.number}: the webhook answered {status}: {text}")
        return chat.number, send

    steps = max(len(chat.posts) for chat in batch.chats)
    sent = await sidebyside.paced([push(chat, chat.posts[step]) for step in range(steps)
                                   for chat in batch.chats if step < len(chat.posts)], rate)
    if failures:
        raise BenchmarkFailure(f"gotong: {len(failures)} webhooks failed, the first: "
                               f"{failures[0]}")
    async with asyncio.timeout(sidebyside.ROUND_TIMEOUT):
        await side.wait_handled(target)
    await side.verify(batch, before)
    return sidebyside.latency(rate, sent, [(m.to, m.at)
                                           for m in side.fake.messages[before.sent:]])


def main(argv: Sequence[str] | None = None, prefix: str = "") -> int:
    """Run and print the rows (each starting with `prefix`); 1 on a failed check."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    settings, _ = sidebyside.parse_settings(parser, argv, "messages", len(DIALOG))

    def finish(outcome: tuple[dict[str, list[Result]], sidebyside.Latency]) -> int:
        results, latency = outcome

        def replies(name: str) -> str:
            sent = results[name][-1].replies
            return f" ({sent} replies sent, {sent / settings.size:.2f} a message)"

        sidebyside.report(results, settings.size, "messages", prefix, replies)
        print(f"{prefix}gotong {latency.describe('messages')}")
        return 0

    return sidebyside.run_benchmark(benchmark(settings, prefix), finish)


if __name__ == "__main__":
    sys.exit(main())
