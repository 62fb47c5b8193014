"""An in-process fake of the Telegram Bot API for end-to-end tests.

:class:`FakeTelegramAPI` is a small aiohttp server on ``127.0.0.1`` (random free port) that the
*real* python-telegram-bot talks to::

    async with FakeTelegramAPI() as fake:
        app = (
            ApplicationBuilder()
            .token(fake.token)
            .base_url(fake.base_url)
            .base_file_url(fake.base_file_url)
            .build()
        )

PTB requests ``base_url + token + "/" + method``; parameters arrive form encoded (multipart when
files are uploaded) with plain strings as they are and everything else JSON encoded.  A JSON body
and query-string parameters are accepted as well.  Answers mirror Telegram's envelope:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description": ...}`` with the
same HTTP status, so PTB raises the same exceptions it would against the real server.

Implemented methods: getMe, getUpdates, sendMessage, editMessageText, editMessageReplyMarkup,
deleteMessage, answerCallbackQuery, sendChatAction, setMyCommands, getMyCommands,
deleteMyCommands, setWebhook, deleteWebhook, getWebhookInfo.  More can be plugged in with
:meth:`FakeTelegramAPI.add_method`.  Anything else answers ``404 Not Found: method not found``.

Misbehaviour can be switched on per test: error answers (:meth:`FakeTelegramAPI.fail_next`),
connections dropped without an answer (:meth:`FakeTelegramAPI.reset_connection_next`), slow
``sendMessage`` answers (:attr:`FakeTelegramAPI.response_delay`) and Telegram's flood limits
(:meth:`FakeTelegramAPI.enforce_rate_limits`, refusals counted in
:attr:`FakeTelegramAPI.rate_limit_violations`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from tests.fakes.traffic import ChangeNotifier, FloodLimits

__all__ = [
    "FakeApiError",
    "FakeTelegramAPI",
    "SentMessage",
    "UploadedFile",
    "decode_form_value",
    "post_webhook",
]

JSONDict = dict[str, Any]
MethodHandler = Callable[[JSONDict], Awaitable[Any]]

#: Longest text Telegram accepts in one message (characters after entity parsing).
MAX_MESSAGE_LENGTH = 4096
#: Longest ``callback_data`` of an inline button, in UTF-8 bytes.
MAX_CALLBACK_DATA_BYTES = 64
#: Longest text of an ``answerCallbackQuery`` notification.
MAX_CALLBACK_ANSWER_LENGTH = 200

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_POLL_TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)

# Token shape Telegram recognises: a wrong but well formed token gets 401, anything else 404.
_TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND_SHAPE = re.compile(r"^[a-z0-9_]{1,32}$")

# Update types Telegram does not deliver unless they are listed in ``allowed_updates``.
_OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Sending methods subject to :meth:`FakeTelegramAPI.enforce_rate_limits` and
# :attr:`FakeTelegramAPI.response_delay`.
_RATE_LIMITED_METHODS = frozenset({"sendmessage"})
_DELAYED_METHODS = _RATE_LIMITED_METHODS

# Tags Telegram's HTML parse mode understands; anything else is refused.
_HTML_TAGS = frozenset(
    {
        "a", "b", "blockquote", "code", "del", "em", "i", "ins", "pre", "s", "span",
        "strike", "strong", "tg-emoji", "tg-spoiler", "u",
    }
)  # fmt: skip

# Inline keyboard button fields that give the button an action (exactly one is required).
_INLINE_BUTTON_ACTIONS = frozenset(
    {
        "url", "callback_data", "web_app", "login_url", "switch_inline_query",
        "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
        "copy_text", "callback_game", "pay",
    }
)  # fmt: skip

# Parameters that are strings in the Bot API.  PTB sends strings without JSON encoding, so these
# must not be JSON decoded (a text of "123" or "true" must stay a string).  Every other form value
# is JSON decoded when it parses, e.g. chat_id "42" -> 42, reply_markup '{...}' -> dict.
_STRING_PARAMS = frozenset(
    {
        "action", "address", "animation", "audio", "business_connection_id", "callback_query_id",
        "caption", "certificate", "currency", "custom_title", "description", "document", "emoji",
        "error_message", "explanation", "explanation_parse_mode", "file_id", "first_name",
        "foursquare_id", "foursquare_type", "game_short_name", "google_place_id",
        "google_place_type", "inline_message_id", "inline_query_id", "invite_link",
        "ip_address", "language_code", "last_name", "message_effect_id", "name", "next_offset",
        "parse_mode", "payload", "phone_number", "photo", "pre_checkout_query_id",
        "provider_token", "question", "question_parse_mode", "secret_token",
        "shipping_query_id", "short_description", "start_parameter", "sticker",
        "switch_pm_parameter", "switch_pm_text", "text", "thumbnail", "title", "url", "vcard",
        "video", "video_note", "voice", "web_app_query_id",
    }
)  # fmt: skip


class FakeApiError(Exception):
    """An error answer of the fake API (raise it from handlers added with ``add_method``)."""

    def __init__(self, error_code: int, description: str, *, retry_after: int | None = None):
        super().__init__(f"{error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSONDict:
        """The JSON body Telegram would answer with."""
        body: JSONDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad_request(reason: str) -> FakeApiError:
    return FakeApiError(400, f"Bad Request: {reason}")


@dataclass
class UploadedFile:
    """A file part of a multipart request, as recorded in :attr:`FakeTelegramAPI.calls`."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class SentMessage:
    """One message the bot sent, as the chat currently shows it (edits update it in place).

    ``text`` is the text exactly as the bot passed it (including HTML/Markdown markup when a
    ``parse_mode`` was used).  ``reply_markup`` is the parsed markup: an ``inline_keyboard``
    (replaced or removed by edits, like Telegram does) or a ``keyboard`` / ``remove_keyboard`` /
    ``force_reply`` object.  Deleted messages stay in the list with ``deleted=True``.
    ``sent_at`` is the :func:`time.monotonic` time the fake accepted the message (the time the
    flood limits were checked against).
    """

    chat_id: int
    message_id: int
    text: str
    reply_markup: JSONDict | None = None
    edits: int = 0
    parse_mode: str | None = None
    date: int = 0
    deleted: bool = False
    params: JSONDict = field(default_factory=dict)  # decoded parameters of the sendMessage call
    sent_at: float = 0.0

    def inline_keyboard(self) -> JSONDict | None:
        """The inline keyboard markup attached to the message, if any."""
        if self.reply_markup is not None and "inline_keyboard" in self.reply_markup:
            return self.reply_markup
        return None

    def buttons(self) -> list[tuple[str, str]]:
        """``(text, callback_data)`` of every inline button, rows flattened; ``[]`` if none.

        Buttons without callback data (URL buttons and the like) give ``""`` as data.
        """
        markup = self.inline_keyboard()
        if markup is None:
            return []
        return [
            (str(button.get("text", "")), str(button.get("callback_data", "")))
            for row in markup["inline_keyboard"]
            for button in row
        ]

    def reply_keyboard(self) -> list[JSONDict]:
        """Buttons of a reply keyboard, rows flattened (plain-string buttons become dicts).

        For example ``[{"text": "Share phone", "request_contact": True}]``; ``[]`` if none.
        """
        if self.reply_markup is None or "keyboard" not in self.reply_markup:
            return []
        return [
            {"text": button} if isinstance(button, str) else dict(button)
            for row in self.reply_markup["keyboard"]
            for button in row
        ]


@dataclass
class _FailureRule:
    method: str  # lower case
    error: FakeApiError | None  # None: drop the connection without answering
    times: int
    chat_id: int | None


def decode_form_value(name: str, value: str) -> Any:
    """Decode one form-encoded parameter the way the Bot API reads it.

    PTB sends strings as they are and JSON encodes every other value (numbers, booleans,
    objects, lists).  Known string parameters are kept verbatim; everything else is JSON decoded
    when it parses and kept as a string otherwise (e.g. ``chat_id="@channel"``).
    """
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _decode_json_value(name: str, value: Any) -> Any:
    """Normalise a value of a JSON body: JSON-in-a-string objects are decoded too."""
    if isinstance(value, str) and name not in _STRING_PARAMS and value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


class _TelegramHTML(HTMLParser):
    """Checks text against Telegram's HTML parse mode and collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise _bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise _bad_request(f'can\'t parse entities: Unsupported start tag "{tag}/"')

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1] != tag:
            expected = f', expected "</{self._open[-1]}>"' if self._open else ""
            raise _bad_request(f'can\'t parse entities: Unmatched end tag "</{tag}>"{expected}')
        self._open.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def render(self, text: str) -> str:
        self.feed(text)
        self.close()
        if self._open:
            raise _bad_request(
                "can't parse entities: Can't find end tag corresponding to start tag "
                f'"{self._open[-1]}"'
            )
        return "".join(self.parts)


def _visible_text(text: str, parse_mode: str | None) -> str:
    """The text the user sees; raises 400 for HTML Telegram would refuse.

    Only HTML is parsed; Markdown and MarkdownV2 text is returned unchanged.
    """
    if parse_mode is not None and parse_mode.lower() == "html":
        return _TelegramHTML().render(text)
    return text


def _type_of_update(update: Mapping[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


class FakeTelegramAPI:
    """A fake Telegram Bot API server for the real python-telegram-bot to talk to.

    Everything the bot does is recorded: :attr:`calls` (every request with decoded
    parameters) with their arrival times in :attr:`call_times`, the messages per chat
    (:meth:`messages`, :meth:`texts`) and across chats (:meth:`all_messages`),
    :attr:`commands`, :attr:`webhook`, :attr:`callback_answers` and the groups it left
    (:attr:`left_chats`; it can no longer send there).  Updates for the bot are
    queued with :meth:`push_update` and served to ``getUpdates``.  Errors can be injected with
    :meth:`fail_next`, dropped connections with :meth:`reset_connection_next`, slow answers
    with :attr:`response_delay`, and flood limits switched on with :meth:`enforce_rate_limits`
    (refusals are counted in :attr:`rate_limit_violations` and :attr:`violations_by_chat`).
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_id: int = 123456,
        username: str = "gotong_test_bot",
        *,
        first_name: str = "Gotong Test",
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.first_name = first_name

        self.calls: list[tuple[str, JSONDict]] = []
        #: :func:`time.monotonic` arrival time of each entry of :attr:`calls`.
        self.call_times: list[float] = []
        #: Seconds every ``sendMessage`` waits before it is answered (0: answer at once).
        self.response_delay: float = 0.0
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.webhook: JSONDict | None = None
        self.callback_answers: list[JSONDict] = []
        #: Groups the bot left with ``leaveChat``, in order.
        self.left_chats: list[int] = []

        self._messages: dict[int, list[SentMessage]] = {}
        self._all_messages: list[SentMessage] = []
        self._incoming_message_ids: dict[int, set[int]] = {}
        self._users: dict[int, JSONDict] = {}
        self._open_callback_queries: set[str] = set()
        self._pending_updates: list[JSONDict] = []
        self._last_update_id = 0
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._failures: list[_FailureRule] = []
        self._flood_limits: FloodLimits[int] = FloodLimits()

        self._updates_changed = ChangeNotifier()
        self._changed = ChangeNotifier()  # a call was recorded or a message changed
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

        self._methods: dict[str, MethodHandler] = {}
        for name, handler in {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "leaveChat": self._leave_chat,
        }.items():
            self.add_method(name, handler)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening on a random free port of 127.0.0.1."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._closing = False

    async def close(self) -> None:
        """Stop the server; pending long polls are answered with no updates."""
        if self._runner is None:
            return
        self._closing = True
        self._updates_changed.notify()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeTelegramAPI is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder.base_url`` (PTB appends the token)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder.base_file_url`` (file downloads answer 404)."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    # ------------------------------------------------------------------ test controls

    def push_update(self, update: Mapping[str, Any]) -> None:
        """Queue an update (a dict as Telegram sends it) for ``getUpdates``.

        A missing ``update_id`` is filled in with one more than the highest pushed so far.
        Waiting long polls are woken immediately.
        """
        queued = copy.deepcopy(dict(update))
        if "update_id" not in queued:
            queued = {"update_id": self._last_update_id + 1, **queued}
        self._last_update_id = max(self._last_update_id, int(queued["update_id"]))
        self._remember(queued)
        self._pending_updates.append(queued)
        self._updates_changed.notify()

    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by a ``getUpdates`` offset."""
        return list(self._pending_updates)

    def messages(self, chat_id: int) -> list[SentMessage]:
        """Messages the bot sent to ``chat_id``, in the order sent (deleted ones included)."""
        return list(self._messages.get(chat_id, []))

    def all_messages(self) -> list[SentMessage]:
        """Messages the bot sent to any chat, in the order the fake accepted them."""
        return list(self._all_messages)

    def texts(self, chat_id: int) -> list[str]:
        """Current texts of :meth:`messages`."""
        return [message.text for message in self.messages(chat_id)]

    def last_message(self, chat_id: int) -> SentMessage:
        """The latest message sent to ``chat_id``; ``AssertionError`` if there is none."""
        messages = self.messages(chat_id)
        assert messages, f"no message was sent to chat {chat_id}"
        return messages[-1]

    def calls_to(self, method: str) -> list[JSONDict]:
        """Parameters of every call of ``method`` (case-insensitive), in order."""
        wanted = method.lower()
        return [params for name, params in self.calls if name.lower() == wanted]

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the wait, not for an I/O call
    ) -> list[SentMessage]:
        """Wait until ``chat_id`` has at least ``count`` messages and return all of them.

        Raises ``AssertionError`` listing what the chat has if that does not happen in time.
        """
        messages = await self._changed.wait_until(
            lambda: self.messages(chat_id) if len(self.messages(chat_id)) >= count else None,
            timeout,
        )
        if messages is None:
            got = self.messages(chat_id)
            raise AssertionError(
                f"expected at least {count} message(s) in chat {chat_id} within "
                f"{timeout}s, got {len(got)}: {[m.text for m in got]!r}"
            )
        return messages

    async def wait_for_calls(
        self,
        method: str,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the wait, not for an I/O call
    ) -> list[JSONDict]:
        """Wait until ``method`` was called at least ``count`` times; return all their params.

        Raises ``AssertionError`` listing the calls seen if that does not happen in time.
        """
        calls = await self._changed.wait_until(
            lambda: self.calls_to(method) if len(self.calls_to(method)) >= count else None,
            timeout,
        )
        if calls is None:
            calls = self.calls_to(method)
            raise AssertionError(
                f"expected at least {count} call(s) of {method} within {timeout}s, "
                f"got {len(calls)}: {calls!r}; all methods called: "
                f"{[name for name, _ in self.calls]!r}"
            )
        return calls

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error.

        ``error_code`` is also the HTTP status (429 -> PTB ``RetryAfter`` when ``retry_after``
        is given, 403 -> ``Forbidden``, 400 -> ``BadRequest``...).  With ``chat_id`` only calls
        for that chat fail.  Rules are used in the order they were added and work for any
        method name, including ones the fake does not implement.  5xx codes work too (e.g.
        ``502 Bad Gateway``): the answer has that HTTP status and the usual JSON error body.
        Injected errors are not counted in :attr:`rate_limit_violations`.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        error = FakeApiError(error_code, description, retry_after=retry_after)
        self._failures.append(_FailureRule(method.lower(), error, times, chat_id))

    def reset_connection_next(
        self, method: str, *, times: int = 1, chat_id: int | None = None
    ) -> None:
        """Drop the connection of the next ``times`` calls of ``method`` without answering.

        The TCP connection is closed as soon as the request is read, so the client sees the
        server disconnect (aiohttp ``ServerDisconnectedError``, PTB ``NetworkError``).  Such
        calls are recorded in :attr:`calls` but have no effect (no message is sent).  With
        ``chat_id`` only calls for that chat are dropped.  These rules share their order with
        :meth:`fail_next`: the first matching rule added is used first.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        self._failures.append(_FailureRule(method.lower(), None, times, chat_id))

    def enforce_rate_limits(
        self,
        *,
        per_chat_per_second: float | None = 1.0,
        overall_per_second: float | None = 30.0,
        per_group_per_minute: float | None = 20.0,
    ) -> None:
        """Answer sends over Telegram's flood limits with 429 and ``retry_after``.

        Off by default.  Limits are sliding windows over accepted ``sendMessage`` calls:

        * ``per_chat_per_second`` for each private chat (positive chat id); with the default
          1.0 a message less than 1.0 s after the previous accepted one in that chat is refused;
        * ``per_group_per_minute`` for each group (negative chat id) over 60 s windows, used
          for groups instead of the per-chat limit;
        * ``overall_per_second`` across all chats (``floor(rate)`` messages in any second).

        ``None`` switches a limit off.  ``retry_after`` is the whole number of seconds (at least
        1) until the refused message would fit.  Each refusal adds one to
        :attr:`rate_limit_violations` and to the chat's :attr:`violations_by_chat`.  Calling
        this resets the windows and the violation counts.
        """
        self._flood_limits = FloodLimits(
            overall_per_second=overall_per_second,
            per_chat_per_second=per_chat_per_second,
            per_group_per_minute=per_group_per_minute,
        )

    @property
    def rate_limit_violations(self) -> int:
        """``sendMessage`` calls refused with 429 because a flood limit was exceeded."""
        return self._flood_limits.violations

    @property
    def violations_by_chat(self) -> dict[int, int]:
        """:attr:`rate_limit_violations` per chat id of the refused call."""
        return self._flood_limits.violations_by_chat

    def add_method(self, name: str, handler: MethodHandler) -> None:
        """Serve (or override) a Bot API method: ``handler(params)`` returns the ``result``.

        Method names are case-insensitive, like Telegram's.  Raise :class:`FakeApiError` to
        answer with an error.
        """
        self._methods[name.lower()] = handler

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return self._error_response(FakeApiError(404, "Not Found"))

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if token != self.token:
            if _TOKEN_SHAPE.match(token):
                return self._error_response(FakeApiError(401, "Unauthorized"))
            return self._error_response(FakeApiError(404, "Not Found"))
        try:
            params = await self._read_params(request)
        except FakeApiError as error:
            return self._error_response(error)
        self.calls.append((method, params))
        self.call_times.append(time.monotonic())
        self._changed.notify()
        try:
            rule = self._take_failure_rule(method, params)
            if rule is not None and rule.error is None:
                return self._drop_connection(request)
            if rule is not None and rule.error is not None:
                raise rule.error
            handler = self._methods.get(method.lower())
            if handler is None:
                raise FakeApiError(404, "Not Found: method not found")
            result = await handler(params)
        except FakeApiError as error:
            response = self._error_response(error)
        else:
            response = web.json_response({"ok": True, "result": result})
        if self.response_delay > 0 and method.lower() in _DELAYED_METHODS:
            await asyncio.sleep(self.response_delay)
        return response

    @staticmethod
    def _drop_connection(request: web.Request) -> web.Response:
        """Close the request's connection at once; the returned response is never sent.

        aiohttp fails to write it to the closed transport and treats that as the client
        having gone away (no error is logged, nothing is raised).
        """
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=204)

    @staticmethod
    def _error_response(error: FakeApiError) -> web.Response:
        return web.json_response(error.payload(), status=error.error_code)

    @staticmethod
    async def _read_params(request: web.Request) -> JSONDict:
        params: JSONDict = {
            name: decode_form_value(name, value) for name, value in request.query.items()
        }
        if not request.body_exists:
            return params
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise _bad_request("can't parse JSON body") from exc
            if not isinstance(body, dict):
                raise _bad_request("JSON body must be an object")
            params.update({name: _decode_json_value(name, v) for name, v in body.items()})
            return params
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                params[name] = UploadedFile(
                    filename=value.filename,
                    content_type=value.content_type,
                    data=value.file.read(),
                )
            else:
                text = value if isinstance(value, str) else bytes(value).decode()
                params[name] = decode_form_value(name, text)
        return params

    def _take_failure_rule(self, method: str, params: JSONDict) -> _FailureRule | None:
        """Use up one time of the first rule matching this call, if any, and return it."""
        wanted = method.lower()
        for rule in self._failures:
            if rule.method != wanted:
                continue
            if rule.chat_id is not None and _as_int(params.get("chat_id")) != rule.chat_id:
                continue
            rule.times -= 1
            if rule.times == 0:
                self._failures.remove(rule)
            return rule
        return None

    # ------------------------------------------------------------------ bookkeeping

    def _remember(self, update: JSONDict) -> None:
        """Learn users, message ids and callback query ids from a pushed update."""
        for key in ("message", "edited_message", "callback_query"):
            obj = update.get(key)
            if not isinstance(obj, dict):
                continue
            user = obj.get("from")
            if isinstance(user, dict) and isinstance(user.get("id"), int):
                self._users[user["id"]] = user
            if key == "callback_query":
                self._open_callback_queries.add(str(obj.get("id")))
                continue
            chat = obj.get("chat")
            # Tests push malformed updates too: only well-formed chats are learnt.
            if isinstance(chat, dict) and type(chat.get("id")) is int \
                    and isinstance(obj.get("message_id"), int):
                ids = self._incoming_message_ids.setdefault(chat["id"], set())
                ids.add(obj["message_id"])

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def _chat_json(self, chat_id: int) -> JSONDict:
        if chat_id < 0:
            chat_type = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "type": chat_type, "title": "Test group"}
        chat: JSONDict = {"id": chat_id, "type": "private"}
        user = self._users.get(chat_id)
        if user is not None:
            for name in ("first_name", "last_name", "username"):
                if user.get(name) is not None:
                    chat[name] = user[name]
        return chat

    def _message_json(self, message: SentMessage) -> JSONDict:
        visible = _visible_text(message.text, message.parse_mode).strip()
        result: JSONDict = {
            "message_id": message.message_id,
            "from": self._bot_user(),
            "chat": self._chat_json(message.chat_id),
            "date": message.date,
            "text": visible,
        }
        if message.edits:
            result["edit_date"] = int(time.time())
        inline = message.inline_keyboard()
        if inline is not None:
            result["reply_markup"] = inline
        return result

    def _find_message(self, params: JSONDict, not_found: str) -> SentMessage:
        if params.get("inline_message_id") is not None:
            raise _bad_request("MESSAGE_ID_INVALID")  # inline messages are not simulated
        chat_id = _chat_id(params)
        message_id = _as_int(params.get("message_id"))
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        for message in self._messages.get(chat_id, []):
            if message.message_id == message_id and not message.deleted:
                return message
        if message_id in self._incoming_message_ids.get(chat_id, set()):
            raise _bad_request("message can't be edited")
        raise _bad_request(not_found)

    def _check_rate_limits(self, method: str, chat_id: int, now: float) -> None:
        """Refuse a call over a flood limit with 429 (counting the violation) or record it."""
        if method.lower() not in _RATE_LIMITED_METHODS:
            return
        # Negative chat ids are groups and supergroups, which Telegram limits per minute.
        retry_after = self._flood_limits.admit(chat_id, now, group=chat_id < 0)
        if retry_after is not None:
            raise FakeApiError(
                429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
            )

    # ------------------------------------------------------------------ API methods

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook is not None:
            raise FakeApiError(409, _WEBHOOK_ACTIVE)
        offset = _as_int(params.get("offset")) or 0
        limit = min(max(_as_int(params.get("limit")) or 100, 1), 100)
        timeout = max(_as_float(params.get("timeout")) or 0.0, 0.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]

        # A newer getUpdates ends an older long poll with 409, like Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_changed.notify()

        if offset > 0:
            self._pending_updates = [u for u in self._pending_updates if u["update_id"] >= offset]
        elif offset < 0:
            self._pending_updates = self._pending_updates[offset:]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise FakeApiError(409, _POLL_TERMINATED)
            self._drop_unwanted_updates()
            if self._pending_updates or self._closing:
                return copy.deepcopy(self._pending_updates[:limit])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._updates_changed.wait(remaining)

    def _drop_unwanted_updates(self) -> None:
        """Forget updates of types the bot did not subscribe to (Telegram never keeps them)."""
        wanted = set(self._allowed_updates) if self._allowed_updates else None

        def delivered(update: JSONDict) -> bool:
            kind = _type_of_update(update)
            return kind in wanted if wanted is not None else kind not in _OPT_IN_UPDATE_TYPES

        self._pending_updates = [u for u in self._pending_updates if delivered(u)]

    async def _leave_chat(self, params: JSONDict) -> bool:
        chat_id = _chat_id(params)
        if chat_id > 0:
            raise _bad_request("chat member status can't be changed in private chats")
        if chat_id in self.left_chats:
            raise FakeApiError(403, "Forbidden: bot is not a member of the group chat")
        self.left_chats.append(chat_id)
        self._changed.notify()
        return True

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = _chat_id(params)
        if chat_id in self.left_chats:
            raise FakeApiError(403, "Forbidden: bot is not a member of the group chat")
        text, parse_mode = _message_text(params)
        markup = _check_reply_markup(params.get("reply_markup"))
        now = time.monotonic()
        self._check_rate_limits("sendMessage", chat_id, now)
        chat_messages = self._messages.setdefault(chat_id, [])
        message = SentMessage(
            chat_id=chat_id,
            message_id=len(chat_messages) + 1,
            text=text,
            reply_markup=markup,
            parse_mode=parse_mode,
            date=int(time.time()),
            params=params,
            sent_at=now,
        )
        chat_messages.append(message)
        self._all_messages.append(message)
        self._changed.notify()
        return self._message_json(message)

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        message = self._find_message(params, "message to edit not found")
        text, parse_mode = _message_text(params)
        markup = _check_inline_markup(params.get("reply_markup"))
        if (
            text == message.text
            and parse_mode == message.parse_mode
            and markup == message.inline_keyboard()
        ):
            raise FakeApiError(400, _NOT_MODIFIED)
        message.text = text
        message.parse_mode = parse_mode
        message.reply_markup = markup
        message.edits += 1
        self._changed.notify()
        return self._message_json(message)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        message = self._find_message(params, "message to edit not found")
        markup = _check_inline_markup(params.get("reply_markup"))
        if markup == message.inline_keyboard():
            raise FakeApiError(400, _NOT_MODIFIED)
        message.reply_markup = markup
        message.edits += 1
        self._changed.notify()
        return self._message_json(message)

    async def _delete_message(self, params: JSONDict) -> bool:
        chat_id = _chat_id(params)
        message_id = _as_int(params.get("message_id"))
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        for message in self._messages.get(chat_id, []):
            if message.message_id == message_id and not message.deleted:
                message.deleted = True
                self._changed.notify()
                return True
        incoming = self._incoming_message_ids.get(chat_id, set())
        if message_id in incoming:
            incoming.discard(message_id)
            return True
        raise _bad_request("message to delete not found")

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = params.get("callback_query_id")
        if query_id is None or str(query_id) not in self._open_callback_queries:
            raise FakeApiError(400, _QUERY_INVALID)
        text = params.get("text")
        if isinstance(text, str) and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad_request("MESSAGE_TOO_LONG")
        self._open_callback_queries.discard(str(query_id))
        self.callback_answers.append(params)
        self._changed.notify()
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        _chat_id(params)
        if not params.get("action"):
            raise _bad_request("action is empty")
        return True

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        checked: list[JSONDict] = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand")
            name = str(command.get("command", "")).removeprefix("/")
            description = str(command.get("description", ""))
            if not _COMMAND_SHAPE.match(name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description.strip()) <= 256:
                raise _bad_request("command description is empty or too long")
            checked.append({"command": name, "description": description})
        key = _commands_key(params)
        if checked:
            self.commands[key] = checked
        else:
            self.commands.pop(key, None)
        self._changed.notify()
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self.commands.get(_commands_key(params), []))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self.commands.pop(_commands_key(params), None)
        self._changed.notify()
        return True

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url")
        if url is None:
            raise _bad_request('parameter "url" is required')
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_SHAPE.match(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._pending_updates = []
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        if url == "":
            self.webhook = None
        else:
            self.webhook = {
                "url": str(url),
                "secret_token": secret,
                "allowed_updates": allowed,
                "max_connections": _as_int(params.get("max_connections")) or 40,
                "ip_address": params.get("ip_address"),
            }
        self._updates_changed.notify()
        self._changed.notify()
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._pending_updates = []
        self._changed.notify()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending_updates),
        }
        if self.webhook is not None:
            info["url"] = self.webhook["url"]
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook.get("ip_address"):
                info["ip_address"] = self.webhook["ip_address"]
        if self._allowed_updates:
            info["allowed_updates"] = list(self._allowed_updates)
        return info


# ---------------------------------------------------------------------- parameter helpers


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return None


def _chat_id(params: JSONDict) -> int:
    value = params.get("chat_id")
    if value is None or value == "":
        raise _bad_request("chat_id is empty")
    chat_id = _as_int(value)
    if chat_id is None or chat_id == 0:
        raise _bad_request("chat not found")
    return chat_id


def _message_text(params: JSONDict) -> tuple[str, str | None]:
    """Validate ``text`` / ``parse_mode`` of a send or edit; return them."""
    raw = params.get("text")
    text = "" if raw is None else str(raw)
    parse_mode = params.get("parse_mode")
    parse_mode = str(parse_mode) if parse_mode else None
    if parse_mode is not None and parse_mode.lower() not in ("html", "markdown", "markdownv2"):
        raise _bad_request(f'unsupported parse_mode "{parse_mode}"')
    visible = _visible_text(text, parse_mode).strip()
    if not visible:
        raise _bad_request("message text is empty")
    if len(visible) > MAX_MESSAGE_LENGTH:
        raise _bad_request("message is too long")
    return text, parse_mode


def _check_reply_markup(markup: Any) -> JSONDict | None:
    """Validate any reply markup (inline keyboard, reply keyboard, removal, force reply)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    elif "keyboard" in markup:
        _check_reply_keyboard(markup["keyboard"])
    elif not (markup.get("remove_keyboard") or markup.get("force_reply")):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    return markup


def _check_inline_markup(markup: Any) -> JSONDict | None:
    """Validate markup of an edit, which can only be an inline keyboard (or nothing)."""
    checked = _check_reply_markup(markup)
    if checked is not None and "inline_keyboard" not in checked:
        raise _bad_request("inline keyboard expected")
    return checked


def _rows(keyboard: Any) -> list[list[Any]]:
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    return keyboard


def _check_inline_keyboard(keyboard: Any) -> None:
    for row in _rows(keyboard):
        for button in row:
            if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                raise _bad_request("BUTTON_TEXT_INVALID")
            actions = _INLINE_BUTTON_ACTIONS.intersection(button)
            if not actions:
                raise _bad_request("text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise _bad_request("BUTTON_TYPE_INVALID")
            if "callback_data" in button:
                data = button["callback_data"]
                size = len(data.encode()) if isinstance(data, str) else 0
                if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                    raise _bad_request("BUTTON_DATA_INVALID")
            if "url" in button:
                url = str(button["url"])
                if not url.startswith(("http://", "https://", "tg://")):
                    raise _bad_request(f"inline keyboard button URL '{url}' is invalid")


def _check_reply_keyboard(keyboard: Any) -> None:
    for row in _rows(keyboard):
        for button in row:
            text = button if isinstance(button, str) else None
            if isinstance(button, dict):
                text = button.get("text")
            if not isinstance(text, str) or not text.strip():
                raise _bad_request("BUTTON_TEXT_INVALID")


def _commands_key(params: JSONDict) -> tuple[str, str]:
    """``(scope, language_code)`` key of :attr:`FakeTelegramAPI.commands`.

    The scope is its ``type`` ("default" when absent); chat scopes append their ids, e.g.
    ``"chat:42"`` or ``"chat_member:42:7"``, so different chats do not overwrite each other.
    """
    scope = params.get("scope")
    if not isinstance(scope, dict):
        scope = {"type": "default"}
    key = str(scope.get("type", "default"))
    for part in ("chat_id", "user_id"):
        if part in scope:
            key += f":{scope[part]}"
    language = params.get("language_code") or ""
    return key, str(language)


async def post_webhook(
    url: str, update: Mapping[str, Any], secret_token: str | None = None
) -> tuple[int, str]:
    """POST ``update`` as JSON to a webhook like Telegram does; return ``(status, body)``.

    The ``X-Telegram-Bot-Api-Secret-Token`` header is sent when ``secret_token`` is given.
    """
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret_token} if secret_token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=dict(update), headers=headers) as response,
    ):
        return response.status, await response.text()
