"""The Telegram channel, on python-telegram-bot.

A thin adapter: it turns a PTB `Update` into an `Incoming`, hands it to the
conversations, and renders each `Reply` as a Telegram message with an inline keyboard
(or a reply keyboard asking for the phone). The Application has no Updater: in webhook
mode our aiohttp app owns HTTP, and in polling mode the channel asks for updates itself.
Either way each update is stored in the inbound queue (models/inbound.py) before Telegram
is answered or the polling offset moves past it, and handled from there in order per
chat, by this process or another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application

from gotong.bot.channels.delivery import (
    Delivered,
    DeliveryError,
    Done,
    OutcomeUnknown,
    Pace,
    ReplyOutbox,
    RetryLater,
    Undeliverable,
    Unreachable,
    send_reply,
    split_text,
)
from gotong.bot.channels.http import AiohttpRequest
from gotong.bot.channels.inbound import InboundQueue, InboundSettings, retry_delay
from gotong.bot.channels.telegram_bot import LeanBot
from gotong.bot.channels.telegram_payload import (
    Inspected,
    Malformed,
    Route,
    inspect_update,
    log_malformed,
    redact_library_logs,
)
from gotong.bot.channels.webhook import parse_json, same_secret
from gotong.bot.config import TelegramConfig
from gotong.bot.metrics import WEBHOOK_REFUSALS
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.models.db import hold_advisory_lock
from gotong.models.inbound import QueuedUpdate, Stored
from gotong.models.outbox import Claimed

log = logging.getLogger(__name__)

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram/webhook"
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
# my_chat_member: the bot was added to a group (it leaves), or a person blocked it.
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
HTTP_CONNECTIONS = 8
# Seconds a getUpdates call waits for updates (long polling).
POLL_TIMEOUT = 10
# Parsed updates kept for their handler in this process.
PARSED_KEPT = 10_000
# The advisory lock of the process polling a bot: this plus the bot's id.
POLL_LOCK_BASE = 0x60_7060_0000_0000
# Labels this short fit two to a row on a phone.
SHORT_LABEL = 18
# A group is told once that the bot works in private chats only: its updates within this
# many seconds (those sent before the bot left) are not answered again.
GROUP_QUIET_SECONDS = 600.0
# Groups remembered as told, at most.
GROUPS_KEPT = 1000


class PollingTaken(RuntimeError):
    """Another process already polls this bot (PostgreSQL knows: it holds the lock)."""


def to_incoming(update: Update) -> Incoming | None:
    """The channel-agnostic form of an update, or None for updates we do not handle."""
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None or chat.type != "private" or user.is_bot:
        return None
    base: dict[str, Any] = {
        "channel": CHANNEL, "chat_id": str(chat.id), "language_hint": user.language_code,
        "external_id": str(update.update_id),
    }
    query = update.callback_query
    if query is not None:
        context, separator, option = (query.data or "").partition("|")
        if not separator:
            context, option = "", ""
        return Incoming(kind=Kind.CHOICE, context=context, option=option, **base)
    message = update.message
    if message is None:
        return None
    if message.text is not None:
        text = message.text
        if text.startswith("/"):
            word, _, args = text[1:].partition(" ")
            command = word.split("@", 1)[0].lower()
            return Incoming(kind=Kind.COMMAND, command=command, args=args.strip(),
                            text=text, **base)
        return Incoming(kind=Kind.TEXT, text=text, **base)
    if message.contact is not None:
        return Incoming(kind=Kind.CONTACT, phone=message.contact.phone_number,
                        phone_is_own=message.contact.user_id == user.id, **base)
    if message.location is not None:
        return Incoming(kind=Kind.LOCATION, latitude=message.location.latitude,
                        longitude=message.location.longitude, **base)
    if message.photo:
        return Incoming(kind=Kind.PHOTO, media_id=message.photo[-1].file_id,
                        text=message.caption or "", **base)
    if message.sticker is not None:
        return Incoming(kind=Kind.STICKER, **base)
    if message.voice is not None or message.audio is not None or message.video_note is not None:
        return Incoming(kind=Kind.VOICE, **base)
    return Incoming(kind=Kind.OTHER, **base)


def _button_label(option: Option, multi: bool) -> str:
    label = f"{option.number}. {option.label}" if option.number is not None else option.label
    if multi:
        label = ("✅ " if option.selected else "▫️ ") + label
    return label


def _button(reply: Reply, option: Option, multi: bool = False) -> InlineKeyboardButton:
    data = f"{reply.context}|{option.id}"
    if len(data.encode()) > MAX_CALLBACK_DATA:
        raise ValueError(f"callback data over {MAX_CALLBACK_DATA} bytes: {reply.context}")
    return InlineKeyboardButton(_button_label(option, multi), callback_data=data)


def render_markup(reply: Reply) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | \
        ReplyKeyboardRemove | None:
    if reply.hint in (Hint.CONTACT, Hint.LOCATION):
        label = reply.contact_label or ""
        button = KeyboardButton(label, request_contact=True) if reply.hint == Hint.CONTACT \
            else KeyboardButton(label, request_location=True)
        return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
    if reply.options or reply.controls:
        multi = reply.hint == Hint.MULTI
        buttons = [_button(reply, o, multi) for o in reply.options]
        short = all(len(b.text) <= SHORT_LABEL for b in buttons)
        width = 2 if short else 1
        rows = [buttons[i : i + width] for i in range(0, len(buttons), width)]
        controls = [_button(reply, c) for c in reply.controls]
        rows.extend(controls[i : i + 3] for i in range(0, len(controls), 3))
        return InlineKeyboardMarkup(rows)
    if reply.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


def _reason(exc: TelegramError) -> str:
    """An error's text fit for logs and the outbox: a URL in it would carry the token."""
    return _URL.sub("<url>", str(exc))[:80]


_URL = re.compile(r"\S+://\S+")


def _delivery_error(exc: TelegramError, sent: int) -> DeliveryError:
    """What a Bot API error means for the message."""
    if isinstance(exc, RetryAfter):
        delay = exc.retry_after
        seconds = delay if isinstance(delay, int | float) else delay.total_seconds()
        return RetryLater("flood control (429)", sent, retry_after=float(seconds))
    if isinstance(exc, Forbidden):
        return Unreachable("blocked by the person (403)", sent)
    if isinstance(exc, BadRequest):
        if "chat not found" in str(exc).lower():
            return Unreachable("chat not found (400)", sent)
        return Undeliverable("refused by Telegram (400)", sent, _reason(exc))
    if isinstance(exc, TimedOut):
        return OutcomeUnknown("no answer in time: may have arrived", sent)
    if isinstance(exc, NetworkError):
        return RetryLater("network or server error", sent, _reason(exc))
    return RetryLater(f"telegram error: {type(exc).__name__}", sent)


class TelegramChannel:
    channel = CHANNEL

    def __init__(
        self,
        config: TelegramConfig,
        conversations: Conversations,
        sessions: async_sessionmaker[AsyncSession],
        *,
        webhook: bool | None = None,
        outbox: ReplyOutbox | None = None,
        inbound: InboundSettings | None = None,
    ) -> None:
        self.config = config
        self._conversations = conversations
        self._sessions = sessions
        self.webhook = config.mode == "webhook" if webhook is None else webhook
        # Where replies are settled; without it a reply that fails to send is dropped.
        self.outbox = outbox
        self.bot = LeanBot(
            config.token, base_url=config.api_base_url, base_file_url=config.api_file_url,
            # A small pool of kept-alive connections serves many chats; Telegram's limits
            # allow only about 30 messages a second anyway.
            request=AiohttpRequest(HTTP_CONNECTIONS), get_updates_request=AiohttpRequest(1))
        self.application = Application.builder().bot(self.bot).updater(None).build()
        redact_library_logs()
        settings = inbound or InboundSettings()
        self.inbound = InboundQueue(conversations.engine,
                                    replace(settings, concurrent_chats=config.max_concurrent_chats),
                                    clock=conversations.now, owner=conversations.owner)
        self.inbound.register(CHANNEL, self.handle_stored)
        self._retry = settings
        self._stop = asyncio.Event()
        # Updates this process parsed when they came, for their handler.
        self._parsed: OrderedDict[str, Update] = OrderedDict()
        # Groups told lately that the bot works in private chats only: when, and whether
        # it has left them since. This process's memory is enough: a chat's waiting
        # updates are claimed together, so the burst of a group that added the bot is
        # handled here (one written to in two processes at once may hear it twice).
        self._groups: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._worker: asyncio.Task[None] | None = None
        self._polling: asyncio.Task[None] | None = None
        # Releases the lock that makes this the bot's one polling process.
        self._poll_lock: Callable[[], Awaitable[None]] | None = None

    # --- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect, publish the command menus, and start taking updates."""
        app = self.application
        await app.initialize()
        await self.set_commands()
        self._stop.clear()
        self._worker = asyncio.create_task(self.inbound.run(self._stop))
        if self.webhook:
            await app.bot.set_webhook(
                self.config.webhook_url, secret_token=self.config.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            # Telegram gives each update to one getUpdates call: a second poller would
            # take updates from the first, so polling is for one process only.
            self._poll_lock = await hold_advisory_lock(self._conversations.engine,
                                                       POLL_LOCK_BASE + app.bot.id)
            if self._poll_lock is None:
                raise PollingTaken(
                    "another gotong process is polling this bot; polling serves one "
                    "process only: run several processes behind a webhook "
                    "(telegram.mode = \"webhook\")")
            await app.bot.delete_webhook()
            self._polling = asyncio.create_task(self._poll())
        log.info("telegram channel started (%s)", "webhook" if self.webhook else "polling")

    async def open_for_sending(self) -> None:
        """Connect for sending only (a dispatcher process): no updates are taken."""
        await self.application.initialize()

    async def api_problem(self) -> str | None:
        return await self.bot.watch.problem()

    async def stop(self) -> None:
        self._stop.set()
        if self._polling is not None:
            # Cut the long poll short: a batch not stored yet was not confirmed either, so
            # Telegram sends it again.
            self._polling.cancel()
            await asyncio.gather(self._polling, return_exceptions=True)
            self._polling = None
        if self._poll_lock is not None:
            await self._poll_lock()
            self._poll_lock = None
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        await self.application.shutdown()

    @property
    def handled_updates(self) -> int:
        """Updates handled (or set aside) by this process so far."""
        return self.inbound.finished

    async def wait_handled(self, count: int) -> None:
        """Wait until `count` updates have been handled (replies sent) in all."""
        await self.inbound.wait_finished(count)

    async def set_commands(self) -> None:
        bot = self.bot
        for language in self._conversations.catalog.languages:
            commands = [BotCommand(name, text)
                        for name, text in self._conversations.command_menu(language)]
            await bot.set_my_commands(commands, language_code=language)
        default = self._conversations.command_menu("id")
        await bot.set_my_commands([BotCommand(name, text) for name, text in default])

    # --- webhook --------------------------------------------------------------------

    def secret_matches(self, given: str | None) -> bool:
        return same_secret(given, self.config.webhook_secret)

    async def accept_webhook(self, payload: dict[str, Any]) -> bool:
        """Store a verified webhook update in its chat's queue (or, one no one answers, as
        seen only); False for a replay, and for a malformed update, which is not stored.

        The update is committed before Telegram gets its 200, so that a crash between
        the two loses nothing; any process then handles it in its chat's order.
        """
        try:
            seen = inspect_update(payload)
            # Only a person's updates are read by the library (and kept read, for their
            # handler); a group's are answered from the payload.
            update = self._parse(payload) if seen.route is Route.PERSON else None
        except Malformed as exc:
            log_malformed(exc)
            return False
        stored = await self._store(seen, payload)
        if stored is Stored.NEW and update is not None:
            self._remember(str(seen.update_id), update)
        return stored is Stored.NEW

    def _parse(self, payload: dict[str, Any]) -> Update:
        try:
            return Update.de_json(payload, self.bot)
        except Exception as exc:
            # A shape the inspection does not look into (it reads only what Gotong uses).
            raise Malformed(f"unreadable by the library ({type(exc).__name__})",
                            payload.get("update_id")) from None

    async def _store(self, seen: Inspected, payload: dict[str, Any]) -> Stored:
        """Store an inspected update: in its chat's queue, or as seen only."""
        if seen.route is Route.RECORD:
            log.debug("telegram update %d recorded only: %s", seen.update_id, seen.what)
            return await self.inbound.accept(CHANNEL, str(seen.update_id), "", payload,
                                              kind=seen.route.name.lower(),
                                              seen_only=True)
        return await self.inbound.accept(CHANNEL, str(seen.update_id), seen.chat_id, payload,
                                         kind=seen.route.name.lower())

    async def _accept_polled(self, payload: object) -> Stored | None:
        """Store a polled update; a malformed one as its bare id, seen only, so that the
        next poll's offset confirms it and a replay of it is a no-op. (Whether the library
        can read it is found when it is handled: one it cannot is set aside.)"""
        try:
            seen = inspect_update(payload)
        except Malformed as exc:
            log_malformed(exc)
            if exc.update_id is None:
                return None
            return await self.inbound.accept(CHANNEL, str(exc.update_id), "",
                                             {"update_id": exc.update_id}, seen_only=True,
                                             kind="malformed")
        assert isinstance(payload, dict)  # inspect_update reads only dicts
        return await self._store(seen, payload)

    def _remember(self, external_id: str, update: Update) -> None:
        """Keep a parsed update for its handler, if this process handles it soon."""
        self._parsed[external_id] = update
        while len(self._parsed) > PARSED_KEPT:
            self._parsed.popitem(last=False)

    async def _poll(self) -> None:
        """Ask Telegram for updates and store each batch before asking for the next: the
        next call's offset confirms the batch for good, so it must be stored first."""
        offset: int | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                payloads = await self.bot.get_update_payloads(offset, POLL_TIMEOUT,
                                                              ALLOWED_UPDATES)
                # Stored together, in one transaction, as Telegram sent them (each is
                # parsed when it is handled); a malformed one is left, and confirmed.
                await asyncio.gather(*(self._accept_polled(payload) for payload in payloads))
                ids = [payload["update_id"] for payload in payloads
                       if isinstance(payload, dict) and isinstance(payload.get("update_id"),
                                                                   int)]
                if ids:
                    offset = max(ids) + 1
                failures = 0
                continue
            except Conflict:
                log.error("another process is polling this bot: polling serves one "
                          "process only (run several behind a webhook)")
            except Exception as exc:
                # Telegram, the network or the database is away: the same updates come
                # again, since the offset did not move past them.
                log.warning("polling telegram failed: %s", type(exc).__name__)
            failures += 1
            delay = retry_delay(failures, self._retry.retry_base, self._retry.retry_max)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay.total_seconds())

    def add_routes(self, app: web.Application) -> None:
        """The webhook Telegram posts to, in webhook mode."""
        if self.webhook:
            app[TELEGRAM_CHANNEL] = self
            app.router.add_post(webhook_path(self.config.webhook_url), telegram_webhook)

    # --- handling -------------------------------------------------------------------

    async def handle_stored(self, queued: QueuedUpdate) -> bool:
        """Handle an update of the inbound queue and send the reply."""
        try:
            # Inspected again: it may have been stored by an older version, unchecked.
            seen = inspect_update(queued.payload)
        except Malformed as exc:
            log_malformed(exc)
            await self.inbound.finish_alone(queued)
            return True
        if seen.route is not Route.PERSON:
            self._parsed.pop(queued.external_id, None)
            if seen.route is Route.GROUP:
                return await self._leave_group(queued, seen)
            await self.inbound.finish_alone(queued)
            return True
        update = self._parsed.pop(queued.external_id, None) \
            or Update.de_json(queued.payload, self.bot)
        query = update.callback_query
        if query is not None:
            try:
                await query.answer()
            except TelegramError as exc:
                log.warning("could not answer a callback query: %s", type(exc).__name__)
        incoming = to_incoming(update)
        if incoming is None:
            await self.inbound.finish_alone(queued)
            return True
        message = query.message if query is not None else None
        edit_id = message.message_id if isinstance(message, Message) else None
        outbox = self.outbox
        handled = await self._conversations.handle_update(
            incoming, keep_reply=outbox is not None, edit_message_id=edit_id, queued=queued)
        return await send_reply(self, outbox, incoming.chat_id, handled.replies,
                                handled.reply_id, handled.contact_id,
                                edit_message_id=edit_id, lease=handled.reply_lease)

    async def _leave_group(self, queued: QueuedUpdate, seen: Inspected) -> bool:
        """Tell a group once that the bot works in private chats only, and leave it."""
        # Finished first: the group is told at most once for this update, and only while
        # this process holds its chat.
        await self.inbound.finish_alone(queued)
        now = time.monotonic()
        told = self._groups.get(seen.chat_id)
        if told is None or now - told[0] >= GROUP_QUIET_SECONDS:
            await self._tell_group(seen)
            told = (now, False)
        elif told[1]:
            # Sent before the bot left: nothing more to say or do.
            return True
        self._groups[seen.chat_id] = (told[0], await self._leave(seen.chat_id))
        self._groups.move_to_end(seen.chat_id)
        while len(self._groups) > GROUPS_KEPT:
            self._groups.popitem(last=False)
        return True

    async def _tell_group(self, seen: Inspected) -> None:
        catalog = self._conversations.catalog
        hint = (seen.language or "").lower()[:2]
        language = hint if hint in catalog.languages else self._conversations.default_language
        text = catalog.text(language, "telegram.private_only",
                            bot=f"@{self.bot.username}")
        pace = self.outbox.pace_reply(CHANNEL, seen.chat_id) if self.outbox else None
        try:
            await self.deliver(seen.chat_id, [Reply(text)], pace=pace)
        except DeliveryError as exc:
            log.info("could not tell a group that the bot works in private chats only (%s)",
                     exc.reason)

    async def _leave(self, chat_id: str) -> bool:
        """Leave a group; whether the bot is out of it."""
        try:
            await self.bot.leave_chat(int(chat_id))
        except (Forbidden, BadRequest):
            # Not a member (any more): removed meanwhile, or the group is gone.
            return True
        except TelegramError as exc:
            # Tried again with the group's next update.
            log.warning("could not leave a group: %s", type(exc).__name__)
            return False
        log.info("left a group: the bot works in private chats only")
        return True

    async def deliver(self, chat_id: str, replies: Sequence[Reply], *, skip: int = 0,
                      edit_message_id: int | None = None,
                      pace: tuple[Pace, Done] | None = None, language: str | None = None,
                      row: Claimed | None = None) -> Delivered:
        """Send each reply (an edit, or one message per 4096 characters), from the
        `skip`th message on; raise a DeliveryError that says how many went out."""
        try:
            chat = int(chat_id)
        except ValueError:
            # A contact stored before update shapes were checked: no message reaches it.
            raise Undeliverable("not a Telegram chat id") from None
        # A row whose earlier send got no answer waits longer for this one's.
        answer_within = self.config.answer_timeout_seconds * (
            1 + 2 * (row.timeouts if row is not None else 0))
        part = 0
        last_id: str | None = None
        for reply in replies:
            if reply.language_chosen is not None and part >= skip:
                await self._set_chat_commands(chat, reply.language_chosen)
            if reply.edit and edit_message_id is not None:
                texts = [reply.text[:MAX_TEXT]]
            else:
                texts = split_text(reply.text, MAX_TEXT)
            markup = render_markup(reply)
            for i, text in enumerate(texts):
                if part >= skip:
                    last = i == len(texts) - 1
                    try:
                        last_id = await self._send_one(
                            chat, text, markup if last else None,
                            edit_message_id if reply.edit else None, pace, answer_within)
                    except TelegramError as exc:
                        raise _delivery_error(exc, part - skip) from None
                part += 1
        return Delivered(last_id, part)

    async def _send_one(self, chat_id: int, text: str, markup: Any, edit_message_id: int | None,
                        pace: tuple[Pace, Done] | None, answer_within: float
                        ) -> str | None:
        if pace is not None:
            await pace[0]()
        may_arrive_for = 0.0
        try:
            if edit_message_id is not None and await self._edit(chat_id, edit_message_id,
                                                                 text, markup, answer_within):
                return str(edit_message_id)
            return str(await self.bot.send_text(chat_id, text, markup, answer_within))
        except TimedOut:
            # Telegram may still be handling the request: as long again, say.
            may_arrive_for = answer_within
            raise
        finally:
            if pace is not None:
                pace[1](may_arrive_for)

    async def _set_chat_commands(self, chat_id: int, language: str) -> None:
        """The command menu of one chat, in the language the person chose."""
        commands = [BotCommand(name, text)
                    for name, text in self._conversations.command_menu(language)]
        try:
            await self.bot.set_my_commands(
                commands, scope=BotCommandScopeChat(chat_id))
        except TelegramError as exc:
            log.warning("could not set a chat's commands: %s", type(exc).__name__)

    async def _edit(self, chat_id: int, message_id: int, text: str, markup: Any,
                    answer_within: float) -> bool:
        """Redraw a message in place; False when it cannot be (a new one is sent)."""
        if not isinstance(markup, InlineKeyboardMarkup) and markup is not None:
            return False
        try:
            await self.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, reply_markup=markup,
                read_timeout=answer_within,
            )
        except BadRequest as exc:
            # Tapping the same toggle twice quickly redraws an identical message.
            return "not modified" in str(exc).lower()
        return True

# --- the webhook's HTTP side ----------------------------------------------------------

TELEGRAM_CHANNEL = web.AppKey("telegram_channel", TelegramChannel)


def webhook_path(webhook_url: str) -> str:
    """The path Telegram posts to: that of the public webhook URL (a proxy in front of
    us may map the host, not the path)."""
    return urlsplit(webhook_url).path or WEBHOOK_PATH


async def telegram_webhook(request: web.Request) -> web.Response:
    channel = request.app[TELEGRAM_CHANNEL]
    if not channel.secret_matches(request.headers.get(SECRET_HEADER)):
        log.warning("refused a telegram webhook call without the right secret")
        WEBHOOK_REFUSALS.labels(CHANNEL, "secret").inc()
        raise web.HTTPForbidden()
    body = await request.read()
    try:
        payload = parse_json(body)
    except ValueError:
        WEBHOOK_REFUSALS.labels(CHANNEL, "not_json").inc()
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(payload, dict) or type(payload.get("update_id")) is not int:
        WEBHOOK_REFUSALS.labels(CHANNEL, "not_an_update").inc()
        raise web.HTTPBadRequest(text="not a Telegram update")
    # An update with something wrong inside is answered 200 all the same (and not
    # stored): Telegram would send it again and again, holding up the updates behind it.
    await channel.accept_webhook(payload)
    return web.json_response({"ok": True})
