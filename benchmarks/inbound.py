"""Inbound throughput: Gotong's household dialog against a bare python-telegram-bot echo bot.

Both bots poll their own, identical :class:`~tests.fakes.telegram_api.FakeTelegramAPI` in this
process and get exactly the same update dicts: every chat registers a household (12 updates:
texts and button taps).  One registration is first made update by update on Gotong's side to
learn which of its messages each tap is made on, so that every callback query names a message
the bot really sent in that chat.  All updates of a round are then pushed at once, interleaving
the chats, and the time from the first push until every update was answered is measured.  After
a warm-up round on each side, the sides run alternately; the median round of each is reported.
Then one more round is offered to Gotong at half the rate it reached, update by update on a
steady schedule, and the time from each update to the first reply in its chat is reported as
p50 and p99 (the latency a person sees when the bot is busy but not overloaded)::

    .venv/bin/python benchmarks/inbound.py [--updates N] [--chats C] [--rounds R]
                                           [--database URL] [--telegram-only]

Gotong runs on a database made for the run: an SQLite file in a temporary directory, or with
``--database`` a new database on that PostgreSQL server, dropped at the end; the first line
printed says which.

Then the same for WhatsApp (``benchmarks/whatsapp_inbound.py``, which runs alone too): the
registration as signed webhooks through Gotong's web app and WhatsApp channel, beside a bare
aiohttp handler that checks the signature, answers and echoes; its rows start with
``whatsapp``.

Every round is checked: the echo bot must have echoed every update, and every Gotong chat must
have got all its replies, ending with the request's reference (GT-...).  A failed check or an
update that is never answered stops the benchmark with an error instead of a result.  The
rounds, their checks and the report are benchmarks/sidebyside.py's, shared with WhatsApp.
"""

from __future__ import annotations

import os

# PTB 22 gives RetryAfter.retry_after as a timedelta only when asked to (and warns otherwise).
os.environ["PTB_TIMEDELTA"] = "true"

import argparse
import asyncio
import contextlib
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# The project root, for the fakes in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sidebyside
from sidebyside import BenchmarkFailure, RoundTime, Settings
from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.channels.telegram_payload import inspect_update
from gotong.bot.config import Config, TelegramConfig
from gotong.bot.process import attach_dispatcher
from gotong.bot.services import Services
from tests.fakes.telegram_api import FakeTelegramAPI, SentMessage
from tests.fakes.telegram_updates import TgUser, UpdateFactory

JSONDict = dict[str, Any]

# Telegram user ids of the chats, numbered from here (one for each registration).
FIRST_USER_ID = 10_000_001


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
        "name": sidebyside.NAMES[user_id % len(sidebyside.NAMES)],
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


# --- the two sides ------------------------------------------------------------------------


class EchoSide(sidebyside.EchoBase):
    """A bare python-telegram-bot: default settings, sequential processing, polling."""

    def __init__(self, fake: FakeTelegramAPI) -> None:
        super().__init__()
        self.fake = fake
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

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text)
        self.done_one()

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None and update.effective_chat
        await query.answer()
        await context.bot.send_message(update.effective_chat.id, query.data)
        self.done_one()

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.failed(context.error)
        self.done_one()

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
        self.check_errors("handling updates")


class GotongSide(sidebyside.GotongBase):
    """Gotong's TelegramChannel in polling mode with its notification dispatcher, on its own
    migrated database."""

    def __init__(self, fake: FakeTelegramAPI, services: Services) -> None:
        self.fake = fake
        self.channel = TelegramChannel(services.config.telegram, services.conversations,
                                       services.sessions)
        super().__init__(services, self.channel, attach_dispatcher(services, self.channel))

    @property
    def handled(self) -> int:
        return self.channel.handled_updates

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
            async with asyncio.timeout(sidebyside.ROUND_TIMEOUT):
                await self.wait_handled(target)
        self.registrations.learn([m.text for m in self.fake.messages(user.id)])
        return Template(tapped)

    async def verify(self, batch: Round, answers_before: int) -> None:
        for user in batch.users:
            self.registrations.check_chat(user.id, [m.text for m in self.fake.messages(user.id)])
        answered = len(self.fake.callback_answers) - answers_before
        if answered != TAPS * len(batch.users):
            raise BenchmarkFailure(f"gotong: {answered} taps answered, expected "
                                   f"{TAPS * len(batch.users)}")
        await self.registrations.check_stored(len(batch.users))


Side = EchoSide | GotongSide


def _last_with_buttons(messages: Sequence[SentMessage]) -> SentMessage:
    for message in reversed(messages):
        if message.buttons():
            return message
    raise BenchmarkFailure("probe: no message with buttons to tap")


async def run_round(side: Side, batch: Round, errors: sidebyside.ErrorCounter) -> RoundTime:
    """Push every update of the round, wait until all are answered; the seconds it took."""
    answers_before = len(side.fake.callback_answers)

    async def push() -> None:
        for update in batch.updates:
            side.fake.push_update(update)

    return await sidebyside.timed_round(side, len(batch.updates), "updates answered", push,
                                        lambda: side.verify(batch, answers_before), errors)


# --- the run ------------------------------------------------------------------------------


def new_users(ids: sidebyside.FreshIds, count: int) -> tuple[TgUser, ...]:
    return tuple(TgUser(id=user_id, first_name="Warga", language_code="id")
                 for user_id in ids.take(count))


def gotong_config(fake: FakeTelegramAPI, base: Config) -> Config:
    return replace(base, telegram=TelegramConfig(
        token=fake.token, api_base_url=fake.base_url, api_file_url=fake.base_file_url,
        # The fake Bot API has no flood limit here, and the echo bot keeps to none: neither
        # does Gotong (its default keeps to Telegram's 30 messages a second).
        messages_per_second=sidebyside.UNLIMITED))


async def benchmark(settings: Settings
                    ) -> tuple[dict[str, list[RoundTime]], sidebyside.Latency]:
    errors = sidebyside.ErrorCounter.on_root()
    factory = UpdateFactory()
    ids = sidebyside.FreshIds(FIRST_USER_ID)

    async with contextlib.AsyncExitStack() as stack:
        echo_fake = await stack.enter_async_context(FakeTelegramAPI())
        gotong_fake = await stack.enter_async_context(FakeTelegramAPI())
        services = await sidebyside.open_gotong(
            stack, settings, lambda base: gotong_config(gotong_fake, base))
        echo = EchoSide(echo_fake)
        gotong = GotongSide(gotong_fake, services)
        await sidebyside.start_all(stack, echo, gotong)

        # The dialog, learned once on Gotong's side; the echo bot gets the same updates.
        template = await gotong.probe(factory, new_users(ids, 1)[0])
        settings.log(f"probe: {len(DIALOG)} updates, "
                     f"{gotong.registrations.replies_per_chat} replies per chat, taps on "
                     f"messages {[m.message_id for m in template.tapped.values()]}")

        def describe(batch: Round, result: RoundTime) -> str:
            return f"{len(batch.updates)} updates in {result.seconds:.3f} s"

        sides: tuple[Side, Side] = (echo, gotong)
        times = await sidebyside.alternate(
            sides, settings,
            lambda chats: build_round(factory, template, new_users(ids, chats)),
            lambda side, batch: run_round(side, batch, errors), describe)
        capacity = settings.size / statistics.median(t.seconds for t in times["gotong"])
        batch = build_round(factory, template, new_users(ids, settings.chats))
        return times, await latency_round(gotong, batch, capacity / 2)


async def latency_round(side: GotongSide, batch: Round, rate: float) -> sidebyside.Latency:
    """The round's updates at a steady `rate`; how long each waited for its reply."""
    calls_before = len(side.fake.calls)
    answers_before = len(side.fake.callback_answers)
    target = side.handled + len(batch.updates)

    def push(update: JSONDict) -> sidebyside.Push:
        async def send() -> None:
            side.fake.push_update(update)
        return inspect_update(update).chat_id, send

    sent = await sidebyside.paced([push(update) for update in batch.updates], rate)
    async with asyncio.timeout(sidebyside.ROUND_TIMEOUT):
        await side.wait_handled(target)
    await side.verify(batch, answers_before)
    replies = [(str(params.get("chat_id")), at)
               for (method, params), at in zip(side.fake.calls[calls_before:],
                                               side.fake.call_times[calls_before:],
                                               strict=True)
               if method in ("sendMessage", "editMessageText")]
    return sidebyside.latency(rate, sent, replies)


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, bool]:
    """The settings, and whether the WhatsApp row is wanted too."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--telegram-only", action="store_true",
                        help="leave out the WhatsApp row")
    settings, args = sidebyside.parse_settings(parser, argv, "updates", len(DIALOG))
    return settings, not args.telegram_only


def main(argv: Sequence[str] | None = None) -> int:
    settings, whatsapp = parse_args(argv)

    def finish(result: tuple[dict[str, list[RoundTime]], sidebyside.Latency]) -> int:
        times, latency = result
        sidebyside.report(times, settings.size, "updates")
        print(f"gotong {latency.describe('updates')}")
        if not whatsapp:
            return 0
        # The WhatsApp row: the same registration as signed webhooks, beside a bare aiohttp
        # handler (benchmarks/whatsapp_inbound.py, which also runs alone).
        import whatsapp_inbound

        return whatsapp_inbound.main(sidebyside.forwarded(settings), prefix="whatsapp ")

    return sidebyside.run_benchmark(benchmark(settings), finish)


if __name__ == "__main__":
    sys.exit(main())
