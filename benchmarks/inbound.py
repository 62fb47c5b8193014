"""Inbound throughput: Gotong's household dialog against a bare python-telegram-bot echo bot.

Both bots poll their own, identical :class:`~tests.fakes.telegram_api.FakeTelegramAPI` in this
process and get exactly the same update dicts: every chat registers a household (12 updates:
texts and button taps).  One registration is first made update by update on Gotong's side to
learn which of its messages each tap is made on, so that every callback query names a message
the bot really sent in that chat.  All updates of a round are then pushed at once, interleaving
the chats, and the time from the first push until every update was answered is measured.  After
a warm-up round on each side, the sides run alternately; the median round of each is reported::

    .venv/bin/python benchmarks/inbound.py [--updates N] [--chats C] [--rounds R]
                                           [--telegram-only]

Then the same for WhatsApp (``benchmarks/whatsapp_inbound.py``, which runs alone too): the
registration as signed webhooks through Gotong's web app and WhatsApp channel, beside a bare
aiohttp handler that checks the signature, answers and echoes; its rows start with
``whatsapp``.

Every round is checked: the echo bot must have echoed every update, and every Gotong chat must
have got all its replies, ending with the request's reference (GT-...).  A failed check or an
update that is never answered stops the benchmark with an error instead of a result.
"""

from __future__ import annotations

import os

# PTB 22 gives RetryAfter.retry_after as a timedelta only when asked to (and warns otherwise).
os.environ["PTB_TIMEDELTA"] = "true"

import argparse
import asyncio
import contextlib
import gc
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The project root, for the fakes in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select
from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.config import (
    Config,
    DatabaseConfig,
    PrivacyConfig,
    TelegramConfig,
    validate,
)
from gotong.bot.logs import quiet_third_party
from gotong.bot.process import attach_dispatcher
from gotong.bot.services import Services, open_services
from gotong.models.help_request import REFERENCE_PREFIX, HelpRequest
from tests.fakes.telegram_api import FakeTelegramAPI, SentMessage
from tests.fakes.telegram_updates import TgUser, UpdateFactory

JSONDict = dict[str, Any]

NIK_KEY = "benchmark-nik-hash-key-" + "k" * 32
# Longest wait for one round before it counts as failed (an update was never answered).
ROUND_TIMEOUT = 120.0
NAMES = ("Siti Aminah", "Budi Santoso", "Dewi Lestari", "Agus Salim", "Rina Wulandari",
         "Wahyu Hidayat", "Nur Aini", "Eko Prasetyo")


@dataclass(frozen=True)
class Step:
    """One update of the registration: a typed text or a tap on a button with this data."""

    kind: str  # "text" or "tap"
    value: str  # the text ({name}, {phone}, {house}, {size} filled in per chat), or the data


DIALOG: tuple[Step, ...] = (
    Step("text", "/start"),
    Step("tap", "menu|request"),
    Step("tap", "hh.consent|yes"),
    Step("text", "{name}"),
    Step("text", "{phone}"),
    Step("tap", "hh.nik|skip"),
    Step("text", "12930"),
    Step("text", "Jl. Melati No. {house} RT 03 RW 05"),
    Step("text", "{size}"),
    Step("text", "1,4"),
    Step("text", "1"),
    Step("tap", "hh.summary|submit"),
)
TAPS = sum(step.kind == "tap" for step in DIALOG)


def chat_values(user_id: int) -> dict[str, str]:
    """What one person types: a different name, phone and house number per chat."""
    return {
        "name": NAMES[user_id % len(NAMES)],
        "phone": f"0812{user_id % 10**8:08d}",
        "house": str(1 + user_id % 97),
        "size": str(2 + user_id % 6),
    }


@dataclass(frozen=True)
class TappedMessage:
    """The bot's message a tap of the dialog is made on (the same in every chat)."""

    message_id: int
    text: str
    reply_markup: JSONDict | None


@dataclass(frozen=True)
class Template:
    """What one registration looks like on Gotong's side, learned from a probe chat."""

    tapped: dict[int, TappedMessage]  # step index -> message the tap is made on
    messages_per_chat: int  # messages Gotong sends in one complete registration


@dataclass(frozen=True)
class Round:
    """The updates of one round, in push order, and the chats they belong to."""

    users: tuple[TgUser, ...]
    updates: tuple[JSONDict, ...]

    def expected_echoes(self, user: TgUser) -> list[str]:
        """What the echo bot sends in this chat: each text, and the data of each tap."""
        texts = []
        for update in self.updates:
            query = update.get("callback_query")
            if query is not None and query["from"]["id"] == user.id:
                texts.append(query["data"])
            message = update.get("message")
            if message is not None and message["chat"]["id"] == user.id:
                texts.append(message["text"])
        return texts


def update_for(factory: UpdateFactory, user: TgUser, step: Step,
               tapped: TappedMessage | None) -> JSONDict:
    if step.kind == "text":
        return factory.text(user, step.value.format(**chat_values(user.id)))
    assert tapped is not None
    return factory.callback(user, step.value, tapped.message_id, tapped.text,
                            tapped.reply_markup)


def build_round(factory: UpdateFactory, template: Template, users: Sequence[TgUser]) -> Round:
    """All chats' registrations, step by step across the chats (update ids increase in push
    order, as Telegram's do), so that every chat has an update in flight at once."""
    updates = [
        update_for(factory, user, step, template.tapped.get(index))
        for index, step in enumerate(DIALOG)
        for user in users
    ]
    return Round(tuple(users), tuple(updates))


class BenchmarkFailure(RuntimeError):
    """A round did not get every answer it should have; no result is reported."""


class ErrorCounter(logging.Handler):
    """Counts records at ERROR and above (errors while handling updates, mostly)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


# --- the two sides ------------------------------------------------------------------------


class EchoSide:
    """A bare python-telegram-bot: default settings, sequential processing, polling."""

    name = "echo"

    def __init__(self, fake: FakeTelegramAPI) -> None:
        self.fake = fake
        self.handled = 0
        self.errors = 0
        self._target = 0
        self._done = asyncio.Event()
        self.application = (
            Application.builder()
            .token(fake.token)
            .base_url(fake.base_url)
            .base_file_url(fake.base_file_url)
            .build()
        )
        self.application.add_handler(MessageHandler(filters.TEXT, self._on_text))
        self.application.add_handler(CallbackQueryHandler(self._on_callback))
        self.application.add_error_handler(self._on_error)

    async def start(self) -> None:
        app = self.application
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling()

    async def stop(self) -> None:
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

    def _count(self) -> None:
        self.handled += 1
        if self.handled >= self._target:
            self._done.set()

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text)
        self._count()

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None and update.effective_chat
        await query.answer()
        await context.bot.send_message(update.effective_chat.id, query.data)
        self._count()

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Done with, unsuccessfully: the round ends and its check fails.
        self.errors += 1
        logging.getLogger("benchmark.echo").error("echo bot failed: %r", context.error)
        self._count()

    async def wait_handled(self, target: int) -> None:
        self._target = target
        self._done.clear()
        if self.handled >= target:
            return
        async with asyncio.timeout(ROUND_TIMEOUT):
            await self._done.wait()

    async def verify(self, batch: Round, answers_before: int) -> None:
        for user in batch.users:
            got = [m.text for m in self.fake.messages(user.id)]
            expected = batch.expected_echoes(user)
            if got != expected:
                raise BenchmarkFailure(f"echo: chat {user.id} got {got!r}, expected {expected!r}")
        answered = len(self.fake.callback_answers) - answers_before
        if answered != TAPS * len(batch.users):
            raise BenchmarkFailure(f"echo: {answered} taps answered, expected "
                                   f"{TAPS * len(batch.users)}")
        if self.errors:
            raise BenchmarkFailure(f"echo: {self.errors} errors while handling updates")


class GotongSide:
    """Gotong's TelegramChannel in polling mode with its notification dispatcher, as
    `gotong run` wires them (every answer is also an outbox row), on its own migrated
    SQLite file."""

    name = "gotong"

    def __init__(self, fake: FakeTelegramAPI, services: Services) -> None:
        self.fake = fake
        self.services = services
        self.channel = TelegramChannel(services.config.telegram, services.conversations,
                                       services.sessions)
        self.dispatcher = attach_dispatcher(services, self.channel)
        self._stop_dispatcher = asyncio.Event()
        self._dispatching: asyncio.Task[None] | None = None
        self.template: Template | None = None
        self.registered = 0

    @property
    def handled(self) -> int:
        return self.channel.handled_updates

    async def start(self) -> None:
        await self.channel.start()
        self._dispatching = asyncio.create_task(self.dispatcher.run(self._stop_dispatcher))

    async def stop(self) -> None:
        await self.channel.stop()
        self._stop_dispatcher.set()
        if self._dispatching is not None:
            await self._dispatching

    async def wait_handled(self, target: int) -> None:
        # wait_handled gives up after a few seconds; large rounds may take longer.
        deadline = time.monotonic() + ROUND_TIMEOUT
        while True:
            try:
                await self.channel.wait_handled(target)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    async def probe(self, factory: UpdateFactory, user: TgUser) -> Template:
        """Register one chat update by update, learning the messages the taps are made on."""
        tapped: dict[int, TappedMessage] = {}
        for index, step in enumerate(DIALOG):
            message: TappedMessage | None = None
            if step.kind == "tap":
                shown = _last_with_buttons(self.fake.messages(user.id))
                data = [d for _, d in shown.buttons()]
                if step.value not in data:
                    raise BenchmarkFailure(f"probe: no button {step.value!r} at step {index}; "
                                           f"the keyboard has {data!r}")
                message = TappedMessage(shown.message_id, shown.text, shown.reply_markup)
                tapped[index] = message
            target = self.handled + 1
            self.fake.push_update(update_for(factory, user, step, message))
            await self.wait_handled(target)
        messages = self.fake.messages(user.id)
        if REFERENCE_PREFIX not in messages[-1].text:
            raise BenchmarkFailure(f"probe: the registration did not end with a reference: "
                                   f"{[m.text for m in messages]!r}")
        self.registered += 1
        self.template = Template(tapped, len(messages))
        return self.template

    async def verify(self, batch: Round, answers_before: int) -> None:
        assert self.template is not None
        for user in batch.users:
            messages = self.fake.messages(user.id)
            if len(messages) != self.template.messages_per_chat or \
                    REFERENCE_PREFIX not in messages[-1].text:
                raise BenchmarkFailure(
                    f"gotong: chat {user.id} got {len(messages)} messages "
                    f"(expected {self.template.messages_per_chat}), the last one "
                    f"{messages[-1].text if messages else None!r}"
                )
        answered = len(self.fake.callback_answers) - answers_before
        if answered != TAPS * len(batch.users):
            raise BenchmarkFailure(f"gotong: {answered} taps answered, expected "
                                   f"{TAPS * len(batch.users)}")
        self.registered += len(batch.users)
        async with self.services.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(HelpRequest))
        if stored != self.registered:
            raise BenchmarkFailure(f"gotong: {stored} requests stored, expected "
                                   f"{self.registered}")


Side = EchoSide | GotongSide


def _last_with_buttons(messages: Sequence[SentMessage]) -> SentMessage:
    for message in reversed(messages):
        if message.buttons():
            return message
    raise BenchmarkFailure("probe: no message with buttons to tap")


async def run_round(side: Side, batch: Round, errors: ErrorCounter) -> float:
    """Push every update of the round, wait until all are answered; the seconds it took."""
    answers_before = len(side.fake.callback_answers)
    errors_before = errors.count
    target = side.handled + len(batch.updates)
    gc.collect()
    started = time.perf_counter()
    for update in batch.updates:
        side.fake.push_update(update)
    try:
        await side.wait_handled(target)
    except TimeoutError:
        raise BenchmarkFailure(f"{side.name}: only {len(batch.updates) - target + side.handled}"
                               f" of {len(batch.updates)} updates answered in time") from None
    elapsed = time.perf_counter() - started
    await side.verify(batch, answers_before)
    if errors.count != errors_before:
        raise BenchmarkFailure(f"{side.name}: {errors.count - errors_before} errors logged")
    return elapsed


# --- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    chats: int
    rounds: int
    warmup_chats: int
    verbose: bool
    # Also measure the WhatsApp channel (benchmarks/whatsapp_inbound.py).
    whatsapp: bool = True


class UserIds:
    """Fresh chats for every round: nobody has registered in them before."""

    def __init__(self, first: int = 10_000_001) -> None:
        self._next = first

    def take(self, count: int) -> tuple[TgUser, ...]:
        users = tuple(TgUser(id=self._next + i, first_name="Warga", language_code="id")
                      for i in range(count))
        self._next += count
        return users


UNLIMITED = 10_000.0


def gotong_config(fake: FakeTelegramAPI, database: Path) -> Config:
    config = Config(
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{database}"),
        privacy=PrivacyConfig(nik_hash_key=NIK_KEY),
        # The fake Bot API has no flood limit here, and the echo bot keeps to none: neither
        # does Gotong (its default keeps to Telegram's 30 messages a second).
        telegram=TelegramConfig(token=fake.token, api_base_url=fake.base_url,
                                api_file_url=fake.base_file_url,
                                messages_per_second=UNLIMITED),
    )
    validate(config)
    return config


async def benchmark(settings: Settings) -> dict[str, list[float]]:
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    factory = UpdateFactory()
    ids = UserIds()

    def log(text: str) -> None:
        if settings.verbose:
            print(text, file=sys.stderr)

    times: dict[str, list[float]] = {"echo": [], "gotong": []}

    with tempfile.TemporaryDirectory(prefix="gotong-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            echo_fake = await stack.enter_async_context(FakeTelegramAPI())
            gotong_fake = await stack.enter_async_context(FakeTelegramAPI())
            services = await open_services(gotong_config(gotong_fake, Path(tmp) / "g.sqlite3"),
                                           migrate=True)
            stack.push_async_callback(services.close)
            echo = EchoSide(echo_fake)
            gotong = GotongSide(gotong_fake, services)
            await echo.start()
            stack.push_async_callback(echo.stop)
            await gotong.start()
            stack.push_async_callback(gotong.stop)

            # The dialog, learned once on Gotong's side; the echo bot gets the same updates.
            probe_user = ids.take(1)[0]
            template = await gotong.probe(factory, probe_user)
            log(f"probe: {len(DIALOG)} updates, {template.messages_per_chat} replies per chat,"
                f" taps on messages {[m.message_id for m in template.tapped.values()]}")

            warmup = build_round(factory, template, ids.take(settings.warmup_chats))
            for side in (echo, gotong):
                seconds = await run_round(side, warmup, errors)
                log(f"warm-up {side.name}: {len(warmup.updates)} updates in {seconds:.3f} s")

            for number in range(settings.rounds):
                batch = build_round(factory, template, ids.take(settings.chats))
                order: tuple[Side, ...] = (echo, gotong) if number % 2 == 0 else (gotong, echo)
                for side in order:
                    seconds = await run_round(side, batch, errors)
                    times[side.name].append(seconds)
                    log(f"round {number + 1} {side.name}: {len(batch.updates)} updates in "
                        f"{seconds:.3f} s")
    return times


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--updates", type=int, default=None,
                        help=f"updates per measured round (rounded down to whole "
                             f"registrations of {len(DIALOG)} updates; default chats x "
                             f"{len(DIALOG)})")
    parser.add_argument("--chats", type=int, default=40,
                        help="chats registering at once in a measured round (default 40)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measured rounds of each side (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every round on standard error")
    parser.add_argument("--telegram-only", action="store_true",
                        help="leave out the WhatsApp row")
    args = parser.parse_args(argv)
    chats = args.chats if args.updates is None else args.updates // len(DIALOG)
    if chats < 1:
        parser.error(f"at least one chat ({len(DIALOG)} updates) is needed")
    if args.rounds < 1:
        parser.error("at least one round is needed")
    settings = Settings(chats=chats, rounds=args.rounds,
                        warmup_chats=max(1, min(chats, 10)), verbose=args.verbose,
                        whatsapp=not args.telegram_only)
    return settings, chats * len(DIALOG)


def main(argv: Sequence[str] | None = None) -> int:
    settings, updates = parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_third_party()
    try:
        times = asyncio.run(benchmark(settings))
    except BenchmarkFailure as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    rates = {}
    for name in ("echo", "gotong"):
        seconds = statistics.median(times[name])
        rates[name] = updates / seconds
        print(f"{name}: {updates} updates in {seconds:.3f} s = {rates[name]:.1f} updates/s")
    print(f"ratio={rates['gotong'] / rates['echo']:.2f}")
    if not settings.whatsapp:
        return 0
    # The WhatsApp row: the same registration as signed webhooks, beside a bare aiohttp
    # handler (benchmarks/whatsapp_inbound.py, which also runs alone).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import whatsapp_inbound

    return whatsapp_inbound.main(["--chats", str(settings.chats),
                                  "--rounds", str(settings.rounds)], prefix="whatsapp ")


if __name__ == "__main__":
    sys.exit(main())
