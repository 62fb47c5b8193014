"""The playground: four phone screens in one web page (household, donor, volunteer, staff),
each a chat of the web chat channel, so that one person can try every role locally.

A thin adapter like the Telegram channel: a WebSocket message from the browser becomes an
`Incoming`, the conversations handle it, and each `Reply` goes back as JSON to every
socket open on that screen. Replies and notices take the same way as on Telegram (the
outbox and the dispatcher), so what the playground shows is what a chat app would get.

Anyone who can open the page acts as anyone: it is served only where the configuration
says (by default only when no chat app is configured), on the loopback address.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from gotong.bot.channels.delivery import (
    Delivered,
    Done,
    Pace,
    ReplyOutbox,
    Unreachable,
    send_reply,
)
from gotong.bot.channels.webhook import parse_json
from gotong.bot.config import WebConfig
from gotong.handlers.catalog import choose_language
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Incoming, Kind, Option, Reply
from gotong.models.demo import CHANNEL, VOLUNTEER_PHONE
from gotong.models.outbox import Claimed

log = logging.getLogger(__name__)

SOCKET_PATH = "/playground/ws/{screen}"


@dataclass(frozen=True)
class ScreenSpec:
    """What the page shows of a screen, and what its person shares from their phone."""

    title: str  # catalog key of the heading
    tip: str  # catalog key of the one-line hint under it
    # The number the "share my number" button sends: fictional, one per screen.
    phone: str
    # Only a volunteer sends a photo (the proof of a delivery).
    photo: bool = False


SCREENS: dict[str, ScreenSpec] = {
    "household": ScreenSpec("web.playground.role_household", "web.playground.tip_household",
                            "+6281200000001"),
    "donor": ScreenSpec("web.playground.role_donor", "web.playground.tip_donor",
                        "+6281200000002"),
    "volunteer": ScreenSpec("web.playground.role_volunteer", "web.playground.tip_volunteer",
                            VOLUNTEER_PHONE, photo=True),
    "staff": ScreenSpec("web.playground.role_staff", "web.playground.tip_staff",
                        "+6281200000004"),
}
# "Share location" sends this point, inside the demo kelurahan (Karet Semanggi, Jakarta
# Selatan; models/demo.py).
LOCATION = (-6.2215, 106.8190)
MAX_TEXT = 4000
# Option ids and question contexts are short; anything longer is not from our page.
MAX_ID = 200
# A WebSocket message bigger than this closes the socket (aiohttp answers 1009); a text
# of MAX_TEXT characters fits many times over, so an over-long text gets an answer.
MAX_MESSAGE_BYTES = 64 * 1024
# Messages kept per screen, replayed to a page opened (or reloaded) later.
TRANSCRIPT_SIZE = 300
HEARTBEAT_SECONDS = 30.0


class Unreadable(ValueError):
    """A browser message that is not one the page sends; `key` says so in the catalog."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def render_options(options: Sequence[Option]) -> list[dict[str, Any]]:
    return [{"id": o.id, "label": o.label, "number": o.number, "selected": o.selected}
            for o in options]


# A web address in the bot's words (the dashboard's sign-in link): drawn as a link. A
# closing bracket or a full stop after it ends the sentence, not the address.
_LINK = re.compile(r"https?://[^\s<>\"']+?(?=[.,;:!?)\]]*(?:\s|$))")


def text_parts(text: str) -> list[dict[str, str]]:
    """The text in pieces, each plain text or a web link, for the page to draw the links
    as links without reading the text as HTML."""
    parts: list[dict[str, str]] = []
    position = 0
    for match in _LINK.finditer(text):
        if match.start() > position:
            parts.append({"text": text[position:match.start()]})
        parts.append({"link": match.group()})
        position = match.end()
    if position < len(text):
        parts.append({"text": text[position:]})
    return parts


def render_reply(reply: Reply, message_id: int) -> dict[str, Any]:
    """A reply as the page draws it."""
    return {
        "id": message_id, "from": "bot", "text": reply.text, "parts": text_parts(reply.text),
        "options": render_options(reply.options), "controls": render_options(reply.controls),
        "hint": reply.hint.value, "context": reply.context,
        "contact_label": reply.contact_label, "edit": reply.edit,
    }


def _string(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise Unreadable("web.playground.unreadable")
    if len(value) > limit:
        raise Unreadable("web.playground.too_long", max=limit)
    return value


def to_incoming(screen: str, raw: str | None, language: str | None) -> Incoming:
    """The channel-agnostic form of a browser message; Unreadable for anything else."""
    if raw is None:
        raise Unreadable("web.playground.unreadable")
    try:
        data = parse_json(raw)
    except ValueError:
        raise Unreadable("web.playground.unreadable") from None
    if not isinstance(data, dict):
        raise Unreadable("web.playground.unreadable")
    base: dict[str, Any] = {"channel": CHANNEL, "chat_id": screen, "language_hint": language}
    kind = data.get("type")
    if kind == "text":
        text = _string(data, "text", MAX_TEXT)
        if text.startswith("/"):
            word, _, args = text[1:].partition(" ")
            return Incoming(kind=Kind.COMMAND, command=word.lower(), args=args.strip(),
                            text=text, **base)
        return Incoming(kind=Kind.TEXT, text=text, **base)
    if kind == "choice":
        return Incoming(kind=Kind.CHOICE, context=_string(data, "context", MAX_ID),
                        option=_string(data, "option", MAX_ID), **base)
    if kind == "contact":
        return Incoming(kind=Kind.CONTACT, phone=SCREENS[screen].phone, phone_is_own=True,
                        **base)
    if kind == "location":
        return Incoming(kind=Kind.LOCATION, latitude=LOCATION[0], longitude=LOCATION[1],
                        **base)
    if kind == "photo":
        # A made-up media id: the playground keeps no pictures.
        return Incoming(kind=Kind.PHOTO, media_id=f"playground-photo-{time.time_ns()}",
                        **base)
    raise Unreadable("web.playground.unreadable")


@dataclass
class Screen:
    """One phone screen: its transcript and the sockets that show it."""

    name: str
    transcript: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=TRANSCRIPT_SIZE))
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    # The updates of one screen are handled one after another, in the order they came.
    handling: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The transcript and the sockets change together: a page that connects gets the
    # history and then every later message, none twice.
    showing: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The chat's language as last seen, for the channel's own words.
    language: str | None = None


class WebChat:
    """The web chat channel: a `Sender` for the dispatcher, WebSockets for the page."""

    channel = CHANNEL

    def __init__(self, conversations: Conversations, web_config: WebConfig | None = None
                 ) -> None:
        self._conversations = conversations
        # Where our pages are served from: only they may open a screen's socket.
        self.web = web_config or WebConfig()
        # Where replies are settled (set by attach_dispatcher); without it a reply that
        # fails to show is dropped.
        self.outbox: ReplyOutbox | None = None
        self._screens = {name: Screen(name) for name in SCREENS}
        # Message ids start from the clock, so that an edit written to the outbox by an
        # earlier process cannot name a message of this one.
        self._ids = itertools.count(time.time_ns() // 1_000_000)

    async def api_problem(self) -> str | None:
        return None  # the browsers are the API: nothing to wait for

    def transcript(self, screen: str) -> list[dict[str, Any]]:
        return list(self._screens[screen].transcript)

    @property
    def languages(self) -> tuple[str, ...]:
        return self._conversations.catalog.languages

    @property
    def default_language(self) -> str:
        return self._conversations.default_language

    async def start(self) -> None:
        """Nothing to connect to: the pages open the sockets."""

    async def open_for_sending(self) -> None:
        """Nothing to connect to: replies go to the sockets of this process."""

    async def stop(self) -> None:
        """Nothing to close: the web app closes the sockets."""

    def add_routes(self, app: web.Application) -> None:
        """The screens' sockets (the playground's page is served by the web pages)."""
        app[WEBCHAT] = self
        app.router.add_get(SOCKET_PATH, screen_socket)

    def language(self, screen: str) -> str:
        return self._screens[screen].language or self._conversations.default_language

    # --- sockets --------------------------------------------------------------------

    async def connect(self, screen: str, socket: web.WebSocketResponse) -> None:
        """Show the screen's history on a new socket, then keep it up to date."""
        state = self._screens[screen]
        async with state.showing:
            await socket.send_json({"type": "history", "messages": list(state.transcript)})
            state.sockets.add(socket)

    def disconnect(self, screen: str, socket: web.WebSocketResponse) -> None:
        self._screens[screen].sockets.discard(socket)

    async def _push(self, state: Screen, event: dict[str, Any]) -> None:
        for socket in list(state.sockets):
            try:
                await socket.send_json(event)
            except (ConnectionError, RuntimeError):
                # The page went away meanwhile; it gets the history when it comes back.
                state.sockets.discard(socket)

    async def _append(self, state: Screen, message: dict[str, Any]) -> None:
        async with state.showing:
            state.transcript.append(message)
            await self._push(state, {"type": "message", "message": message})

    async def _show(self, state: Screen, reply: Reply, edit_id: int | None) -> int:
        """Append a reply to the screen, or redraw the message it edits; its id."""
        async with state.showing:
            if edit_id is not None:
                for index, shown in enumerate(state.transcript):
                    if shown["id"] == edit_id and shown["from"] == "bot":
                        message = render_reply(reply, edit_id)
                        state.transcript[index] = message
                        await self._push(state, {"type": "edit", "message": message})
                        return edit_id
            message = render_reply(reply, next(self._ids))
            state.transcript.append(message)
            await self._push(state, {"type": "message", "message": message})
            return int(message["id"])

    def _last_bot_id(self, state: Screen) -> int | None:
        for message in reversed(state.transcript):
            if message["from"] == "bot":
                return int(message["id"])
        return None

    # --- handling -------------------------------------------------------------------

    async def receive(self, screen: str, raw: str | None, language: str | None) -> None:
        """Handle one message from a screen's page, after those before it."""
        state = self._screens[screen]
        async with state.handling:
            try:
                incoming = to_incoming(screen, raw, language)
            except Unreadable as exc:
                await self._say(state, exc.key, **exc.params)
                await self._handled(state)
                return
            await self._echo(state, incoming)
            try:
                await self._handle(state, incoming)
            except Exception as exc:
                # The error's type and where: its text may quote personal data.
                log.error("error while handling a playground message: %s\n%s",
                          type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
                await self._say(state, "web.playground.failed")
            finally:
                await self._handled(state)

    async def _handled(self, state: Screen) -> None:
        """Tell the screen's pages that every answer to the message is shown: a tap may
        be answered by redrawing a message, or by nothing new at all."""
        async with state.showing:
            await self._push(state, {"type": "handled"})

    async def _handle(self, state: Screen, incoming: Incoming) -> None:
        # A tapped button may redraw the message it belongs to, as on Telegram.
        edit_id = self._last_bot_id(state) if incoming.kind == Kind.CHOICE else None
        outbox = self.outbox
        handled = await self._conversations.handle_update(
            incoming, keep_reply=outbox is not None, edit_message_id=edit_id)
        if handled.language:
            state.language = handled.language
        await send_reply(self, outbox, incoming.chat_id, handled.replies, handled.reply_id,
                         handled.contact_id, edit_message_id=edit_id,
                         lease=handled.reply_lease)

    async def _say(self, state: Screen, key: str, **params: object) -> None:
        """The channel's own answer (an unreadable message), in the chat's language."""
        text = self._conversations.catalog.text(self.language(state.name), key, **params)
        await self._show(state, Reply(text), None)

    async def _echo(self, state: Screen, incoming: Incoming) -> None:
        """Show what the person sent on their own side of the screen."""
        text = self._own_text(state, incoming)
        if text:
            await self._append(state, {"id": next(self._ids), "from": "me", "text": text})

    def _own_text(self, state: Screen, incoming: Incoming) -> str:
        language = self.language(state.name)
        catalog = self._conversations.catalog
        if incoming.kind in (Kind.TEXT, Kind.COMMAND):
            return incoming.text
        if incoming.kind == Kind.CONTACT:
            return catalog.text(language, "web.playground.sent_contact",
                                phone=incoming.phone or "")
        if incoming.kind == Kind.LOCATION:
            return catalog.text(language, "web.playground.sent_location")
        if incoming.kind == Kind.PHOTO:
            return catalog.text(language, "web.playground.sent_photo")
        # A tap shows the label of the button, found on the message that offered it.
        for message in reversed(state.transcript):
            if message["from"] == "bot" and message.get("context") == incoming.context:
                for option in (*message["options"], *message["controls"]):
                    if option["id"] == incoming.option:
                        return str(option["label"])
                break
        return ""

    async def deliver(self, chat_id: str, replies: Sequence[Reply], *, skip: int = 0,
                      edit_message_id: int | None = None,
                      pace: tuple[Pace, Done] | None = None, language: str | None = None,
                      row: Claimed | None = None) -> Delivered:
        """Show each reply on the screen (one message each), from the `skip`th on."""
        state = self._screens.get(chat_id)
        if state is None:
            raise Unreachable("no such playground screen")
        if language:
            state.language = language
        part = 0
        last_id: str | None = None
        for reply in replies:
            if part >= skip:
                if pace is not None:
                    await pace[0]()
                try:
                    shown = await self._show(state, reply,
                                             edit_message_id if reply.edit else None)
                finally:
                    if pace is not None:
                        pace[1]()
                last_id = str(shown)
            part += 1
        return Delivered(last_id, part)


# --- the sockets' HTTP side ----------------------------------------------------------

WEBCHAT = web.AppKey("webchat", WebChat)


async def screen_socket(request: web.Request) -> web.WebSocketResponse:
    """The WebSocket of one screen: the browser's messages in, the screen's messages out."""
    screen = request.match_info["screen"]
    if screen not in SCREENS:
        raise web.HTTPNotFound()
    origin = request.headers.get("Origin")
    # A page of another site must not drive a screen (cross-site WebSocket hijacking).
    if origin is not None and not request.app[WEBCHAT].web.own_origin(origin):
        log.warning("refused a playground socket from another origin")
        raise web.HTTPForbidden()
    webchat = request.app[WEBCHAT]
    # The page names its language in the socket's address.
    language = choose_language((request.query.get("lang"),),
                               request.headers.get("Accept-Language", ""),
                               webchat.languages, webchat.default_language)
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS,
                                   max_msg_size=MAX_MESSAGE_BYTES)
    await socket.prepare(request)
    await webchat.connect(screen, socket)
    try:
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                await webchat.receive(screen, message.data, language)
            elif message.type == WSMsgType.BINARY:
                await webchat.receive(screen, None, language)
    finally:
        webchat.disconnect(screen, socket)
    return socket
