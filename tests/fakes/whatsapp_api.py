"""An in-process fake of the WhatsApp Cloud (Graph) API for end-to-end tests.

:class:`FakeWhatsAppAPI` is a small aiohttp server on ``127.0.0.1`` (random free port) that the
real WhatsApp client of the bot talks to over HTTP::

    async with FakeWhatsAppAPI() as fake:
        url = f"{fake.base_url}/{fake.api_version}/{fake.phone_number_id}/messages"
        ...  # point the bot's configuration at fake.base_url and fake.access_token

``POST /{version}/{phone_number_id}/messages`` is served (and ``GET`` of the number's
details, and of the business account's templates: ``GET /{version}/{waba_id}/
message_templates``), with a JSON body and
``Authorization: Bearer <token>`` (an ``access_token`` query parameter works too, as on the
Graph API).  The fake validates payloads against the documented limits of the Cloud API and
refuses invalid ones with HTTP 400 and Graph's error envelope::

    {"error": {"message": "(#131009) Parameter value is not valid", "type": "OAuthException",
               "code": 131009, "error_data": {"messaging_product": "whatsapp",
               "details": "Invalid buttons count. Min allowed buttons: 1, ..."},
               "fbtrace_id": "..."}}

Accepted sends answer ``{"messaging_product": "whatsapp", "contacts": [...], "messages":
[{"id": "wamid...."}]}`` and are recorded in :attr:`FakeWhatsAppAPI.messages`; "mark as read"
calls answer ``{"success": true}`` and are recorded in :attr:`FakeWhatsAppAPI.read_ids`.

A send names its recipient by number (``to``) or, for a person known by their username alone,
by business-scoped user id (``recipient``, e.g. ``"US.13491208655302741918"``); ``to`` wins
when both are given, as on the Graph API.  The answer's ``contacts`` then carries ``wa_id``
or ``user_id`` respectively.  Message kinds WhatsApp will not send to a user id are refused
with 131062 (:attr:`FakeWhatsAppAPI.templates_not_for_user_ids`).

Checks, in the order a send goes through them: token (401, code 190), path (400, code 100),
payload validation (400, code 100 / 131009 / 132001), injected errors
(:meth:`FakeWhatsAppAPI.fail_next`, :meth:`FakeWhatsAppAPI.disconnect_next`), the 24-hour
window (:attr:`FakeWhatsAppAPI.outside_window`, code 131047) and the throughput limit
(:meth:`FakeWhatsAppAPI.enforce_rate_limit`, code 130429).  Validation comes before injected
errors so that a broken payload is never hidden behind a simulated failure.

The real API usually accepts a free-form message outside the 24-hour window and reports 131047
later in a ``failed`` status webhook; the fake refuses it at once, which is the harder case for
the client and the one the send path must handle (a status webhook can be posted separately
with :func:`tests.fakes.whatsapp_webhooks.status_update`).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.fakes.traffic import ChangeNotifier, FloodLimits

__all__ = [
    "ERROR_MESSAGES",
    "FakeWhatsAppAPI",
    "GraphError",
    "Refusal",
    "SentMessage",
    "check_send",
    "new_wamid",
]

JSONDict = dict[str, Any]

# Limits of the Cloud API (developers.facebook.com/docs/whatsapp/cloud-api/reference/messages).
MAX_TEXT_BODY = 4096
MAX_BUTTON_BODY = 1024
MAX_LIST_BODY = 4096
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_HEADER_TEXT = 60
MAX_FOOTER_TEXT = 60
MAX_LIST_BUTTON = 20
MAX_SECTIONS = 10
MAX_ROWS = 10
MAX_ROW_ID = 200
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_SECTION_TITLE = 24

# Error codes the fake produces by itself.
INVALID_PARAMETER = 100
ACCESS_TOKEN = 190
PARAMETER_VALUE = 131009
OUTSIDE_WINDOW = 131047
THROUGHPUT = 130429
TEMPLATE_MISSING = 132001

#: Graph's ``message`` for the error codes a WhatsApp client meets (``fail_next`` default).
ERROR_MESSAGES: Mapping[int, str] = {
    100: "(#100) Invalid parameter",
    190: "Invalid OAuth access token.",
    80007: "(#80007) Rate limit issues",
    130429: "(#130429) Rate limit hit",
    131000: "(#131000) Something went wrong",
    131005: "(#131005) Access denied",
    131008: "(#131008) Required parameter is missing",
    131009: "(#131009) Parameter value is not valid",
    131021: "(#131021) Recipient cannot be sender",
    131026: "(#131026) Message undeliverable",
    131031: "(#131031) Account has been locked",
    131047: "(#131047) Re-engagement message",
    131048: "(#131048) Spam rate limit hit",
    131051: "(#131051) Unsupported message type",
    131056: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    131062: "(#131062) Business-scoped User ID recipients are not supported for this message.",
    132001: "(#132001) Template name does not exist in the translation",
    133010: "(#133010) Phone number not registered",
}

#: ``error_data.details`` Graph gives with those codes.
_ERROR_DETAILS: Mapping[int, str] = {
    80007: "The WhatsApp Business Account has reached its rate limit.",
    130429: "Cloud API message throughput has been reached.",
    131000: "Message failed to send due to an unknown error.",
    131026: "Message undeliverable.",
    131047: (
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number."
    ),
    131048: "Message failed to send because there are restrictions on how many messages can "
    "be sent from this phone number.",
    131056: "Too many messages sent from the sender phone number to the same recipient phone "
    "number in a short period of time.",
}

# ``to`` as the fake accepts it: an international number, digits only.  The real API is more
# lenient ("+62 812-..." is normalised), but the bot always sends wa_ids, so anything else
# would be a bug worth failing on.
_PHONE_SHAPE = re.compile(r"^[1-9][0-9]{7,14}$")
# ``recipient``: a business-scoped user id, or a parent one (``US.ENT.…``).
_USER_ID_SHAPE = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
NOT_FOR_USER_ID = 131062
_BEARER = re.compile(r"^Bearer\s+(\S+)$", re.IGNORECASE)
_TEMPLATE_PARAM_SPACES = re.compile(r" {5,}")

_SEND_TYPES = frozenset({"text", "interactive", "template"})
_BUTTON_HEADER_TYPES = frozenset({"text", "image", "video", "document"})

_wamid_counter = itertools.count(1)


def new_wamid() -> str:
    """A fresh, unique message id shaped like Meta's (``wamid.`` + base64)."""
    raw = b"\x15\x02\x00\x11\x18\x12" + uuid.uuid4().bytes + next(_wamid_counter).to_bytes(4)
    return "wamid.HBgL" + base64.b64encode(raw).decode()


def _fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)


class GraphError(Exception):
    """An error answer of the fake (HTTP status and Graph's ``error`` object)."""

    def __init__(
        self,
        code: int,
        details: str | None = None,
        *,
        message: str | None = None,
        http_status: int = 400,
        error_type: str = "OAuthException",
        subcode: int | None = None,
    ) -> None:
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code, f"(#{code}) Error")
        self.details = details
        self.http_status = http_status
        self.error_type = error_type
        self.subcode = subcode
        super().__init__(f"{code}: {self.message} ({details})")

    def payload(self) -> JSONDict:
        """The JSON body Graph would answer with."""
        error: JSONDict = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = _fbtrace_id()
        return {"error": error}


def _invalid(details: str) -> GraphError:
    """A malformed request (missing parameter, wrong type, over a length limit of a field)."""
    return GraphError(INVALID_PARAMETER, details)


def _bad_value(details: str) -> GraphError:
    """A well formed request whose values WhatsApp refuses (counts, lengths, duplicates)."""
    return GraphError(PARAMETER_VALUE, details)


@dataclass
class SentMessage:
    """One message the fake accepted.

    ``payload`` is the whole JSON body as the client sent it; ``at`` is the
    :func:`time.monotonic` time it was accepted (what the rate limit was checked against).
    """

    to: str  # the number, or the business-scoped user id (see ``by_user_id``)
    type: str
    payload: JSONDict
    id: str
    at: float
    by_user_id: bool = False

    @property
    def interactive_type(self) -> str | None:
        """``"button"`` or ``"list"`` for interactive messages, else ``None``."""
        if self.type != "interactive":
            return None
        return str(self.payload["interactive"]["type"])

    @property
    def text(self) -> str:
        """What the person reads: the text body, the interactive body text, or
        ``"template:<name>"`` for a template."""
        if self.type == "text":
            return str(self.payload["text"]["body"])
        if self.type == "interactive":
            return str(self.payload["interactive"]["body"]["text"])
        return f"template:{self.payload['template']['name']}"

    def options(self) -> list[tuple[str, str]]:
        """``(id, title)`` of every reply button or list row (sections flattened); ``[]`` for
        other messages."""
        if self.type != "interactive":
            return []
        interactive = self.payload["interactive"]
        action = interactive["action"]
        if interactive["type"] == "button":
            return [
                (str(button["reply"]["id"]), str(button["reply"]["title"]))
                for button in action["buttons"]
            ]
        return [
            (str(row["id"]), str(row["title"]))
            for section in action["sections"]
            for row in section["rows"]
        ]

    def rows(self) -> list[JSONDict]:
        """The rows of a list message (sections flattened), as sent; ``[]`` otherwise."""
        if self.interactive_type != "list":
            return []
        sections = self.payload["interactive"]["action"]["sections"]
        return [dict(row) for section in sections for row in section["rows"]]

    def template_parameters(self) -> list[str]:
        """Texts of the body parameters of a template; ``[]`` otherwise."""
        if self.type != "template":
            return []
        return [
            str(parameter.get("text", ""))
            for component in self.payload["template"].get("components", [])
            if component.get("type") == "body"
            for parameter in component.get("parameters", [])
        ]


@dataclass
class Refusal:
    """A request the fake answered with an error (see :attr:`FakeWhatsAppAPI.refusals`).

    ``injected`` is true for errors from :meth:`FakeWhatsAppAPI.fail_next`, false for those the
    fake found itself (validation, token, 24-hour window, rate limit).
    """

    path: str
    body: JSONDict
    http_status: int
    code: int
    details: str | None
    injected: bool


@dataclass
class _FailureRule:
    error: GraphError | None  # None: drop the connection without answering
    times: int
    to: str | None


class FakeWhatsAppAPI:
    """A fake WhatsApp Cloud API server; see the module docstring for the behaviour.

    Records: :attr:`messages` (accepted sends), :attr:`read_ids` (mark-as-read calls),
    :attr:`requests` (every request, refused ones included, as ``(path, body)``) and
    :attr:`refusals` (every error answer).  Controls: :attr:`approved_templates`,
    :attr:`outside_window`, :attr:`response_delay`, :meth:`fail_next`, :meth:`disconnect_next`
    and :meth:`enforce_rate_limit`.
    """

    def __init__(
        self,
        access_token: str = "TEST-WA-TOKEN",
        phone_number_id: str = "1234567890",
        api_version: str = "v21.0",
        business_account_id: str = "102290129340398",
    ) -> None:
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.api_version = api_version
        self.business_account_id = business_account_id

        #: Accepted sends, in the order accepted.
        self.messages: list[SentMessage] = []
        #: ``message_id`` of every accepted "mark as read" call.
        self.read_ids: list[str] = []
        #: Every request as ``(path, JSON body)``; a body that is not a JSON object is ``{}``.
        self.requests: list[tuple[str, JSONDict]] = []
        #: Every error answer, in order.
        self.refusals: list[Refusal] = []
        #: ``(template name, language code)`` pairs that exist; empty: any template is accepted.
        self.approved_templates: set[tuple[str, str]] = set()
        #: Recipients whose 24-hour window is closed: only templates reach them.
        self.outside_window: set[str] = set()
        #: Seconds every send waits before it is answered (mark-as-read calls do not).
        self.response_delay: float = 0.0
        #: Templates WhatsApp refuses to send to a business-scoped user id (131062), as it
        #: does one-tap and copy-code authentication templates.
        self.templates_not_for_user_ids: set[str] = set()
        #: The business account's templates as ``GET /{waba_id}/message_templates`` lists
        #: them (:meth:`add_template`); what sends are checked against is
        #: :attr:`approved_templates`, apart.
        self.templates: list[JSONDict] = []

        self._failures: list[_FailureRule] = []
        self._rate_limit: FloodLimits[str] = FloodLimits()
        self._changed = ChangeNotifier()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening on a random free port of 127.0.0.1."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{version}/{phone_number_id}/messages", self._handle_messages)
        app.router.add_get("/{version}/{account_id}/message_templates",
                           self._handle_templates)
        app.router.add_get("/{version}/{phone_number_id}", self._handle_number)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop the server."""
        if self._runner is None:
            return
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
            raise RuntimeError("FakeWhatsAppAPI is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash); the client appends
        ``/{api_version}/{phone_number_id}/messages``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def messages_url(self) -> str:
        """The full URL of the send endpoint."""
        return f"{self.base_url}/{self.api_version}/{self.phone_number_id}/messages"

    # ------------------------------------------------------------------ queries

    def sent_to(self, to: str) -> list[SentMessage]:
        """Accepted messages to ``to``, in order."""
        return [message for message in self.messages if message.to == to]

    def texts(self, to: str) -> list[str]:
        """:attr:`SentMessage.text` of each message to ``to``."""
        return [message.text for message in self.sent_to(to)]

    def last_message(self, to: str) -> SentMessage:
        """The latest message to ``to``; ``AssertionError`` if there is none."""
        messages = self.sent_to(to)
        assert messages, f"no message was sent to {to}"
        return messages[-1]

    def buttons(self, message: SentMessage) -> list[tuple[str, str]]:
        """Same as ``message.options()``."""
        return message.options()

    def invalid_requests(self) -> list[Refusal]:
        """Refusals for malformed or invalid payloads (codes 100, 131009, 132001), i.e. bugs
        of the client rather than simulated conditions."""
        return [
            refusal
            for refusal in self.refusals
            if not refusal.injected
            and refusal.code in (INVALID_PARAMETER, PARAMETER_VALUE, TEMPLATE_MISSING)
        ]

    async def wait_for_reads(
        self,
        message_id: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the wait, not for an I/O call
    ) -> None:
        """Wait until ``message_id`` was marked read; ``AssertionError`` after ``timeout``."""
        read = await self._changed.wait_until(
            lambda: True if message_id in self.read_ids else None, timeout)
        if read is None:
            raise AssertionError(f"{message_id} was not marked read within {timeout}s")

    async def wait_for_messages(
        self,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the wait, not for an I/O call
        *,
        to: str | None = None,
    ) -> list[SentMessage]:
        """Wait until at least ``count`` messages were accepted (to ``to`` if given) and
        return them; ``AssertionError`` listing what was sent if that takes over ``timeout``."""

        def accepted() -> list[SentMessage]:
            return list(self.messages) if to is None else self.sent_to(to)

        def enough() -> list[SentMessage] | None:
            messages = accepted()
            return messages if len(messages) >= count else None

        messages = await self._changed.wait_until(enough, timeout)
        if messages is None:
            got = accepted()
            raise AssertionError(
                f"expected at least {count} message(s)"
                f"{'' if to is None else f' to {to}'} within {timeout}s, got "
                f"{len(got)}: {[m.text for m in got]!r}; refusals: "
                f"{[(r.code, r.details) for r in self.refusals]!r}"
            )
        return messages

    # ------------------------------------------------------------------ test controls

    def fail_next(
        self,
        code: int,
        *,
        times: int = 1,
        to: str | None = None,
        http_status: int = 400,
        message: str | None = None,
        details: str | None = None,
    ) -> None:
        """Refuse the next ``times`` valid sends (only those to ``to`` if given) with Graph
        error ``code``.

        ``message`` and ``details`` default to what Graph says for that code (see
        :data:`ERROR_MESSAGES`).  Typical codes: 130429 throughput, 131056 pair rate limit,
        80007 account rate limit, 131047 outside the 24-hour window, 131026 undeliverable,
        131048 spam rate limit, 131000 generic; ``http_status`` may be a 5xx too.  Mark-as-read
        calls are not affected.  Injected errors are not counted in
        :attr:`rate_limit_violations`.  Rules (shared with :meth:`disconnect_next`) are used
        in the order they were added.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        error = GraphError(
            code,
            details if details is not None else _ERROR_DETAILS.get(code, "Injected error."),
            message=message,
            http_status=http_status,
        )
        self._failures.append(_FailureRule(error, times, to))

    def add_template(self, name: str, language: str, status: str = "APPROVED",
                     category: str = "UTILITY") -> None:
        """A template of the business account, in one language, in ``status`` (APPROVED,
        PENDING, REJECTED, PAUSED, DISABLED...), as WhatsApp Manager lists it."""
        self.templates.append({"name": name, "language": language, "status": status,
                               "category": category,
                               "id": str(1_192_339_204_654_487 + len(self.templates))})

    def disconnect_next(self, *, times: int = 1, to: str | None = None) -> None:
        """Close the connection of the next ``times`` valid sends (to ``to`` if given) without
        answering, so the client sees a network error (aiohttp ``ServerDisconnectedError``).
        Nothing is sent for them."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._failures.append(_FailureRule(None, times, to))

    def enforce_rate_limit(self, per_second: float | None) -> None:
        """Refuse sends over ``per_second`` with 400 / code 130429 (``None``: no limit).

        A sliding window over accepted sends to all recipients: ``floor(per_second)`` in any
        second (rates under 1 allow one send per ``1 / per_second`` seconds).  Refusals are
        counted in :attr:`rate_limit_violations`, which this resets.
        """
        self._rate_limit = FloodLimits(overall_per_second=per_second)

    @property
    def rate_limit_violations(self) -> int:
        """Sends refused with 130429 by :meth:`enforce_rate_limit` since it was last called."""
        return self._rate_limit.violations

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        self.requests.append((request.path, body))
        return self._refuse(
            request.path,
            body,
            GraphError(
                INVALID_PARAMETER,
                message=f"Unsupported {request.method.lower()} request.",
                error_type="GraphMethodException",
            ),
        )

    async def _handle_templates(self, request: web.Request) -> web.StreamResponse:
        """``GET /{version}/{waba_id}/message_templates``: the account's templates, a page
        at a time (``limit``, default 25; ``after``, the cursor of the page before), as
        ``{"data": [{"name", "language", "status", "category", "id"}], "paging":
        {"cursors": {"before", "after"}, "next": URL}}``; ``next`` only where more
        follow."""
        path = request.path
        self.requests.append((path, {}))
        if not self._authorised(request):
            return self._refuse(path, {}, GraphError(
                ACCESS_TOKEN, message=ERROR_MESSAGES[ACCESS_TOKEN], http_status=401))
        account_id = request.match_info["account_id"]
        if request.match_info["version"] != self.api_version \
                or account_id != self.business_account_id:
            return self._refuse(path, {}, GraphError(
                INVALID_PARAMETER, message=(
                    f"Unsupported get request. Object with ID '{account_id}' does not "
                    "exist, cannot be loaded due to missing permissions, or does not "
                    "support this operation."),
                error_type="GraphMethodException", subcode=33))
        try:
            limit = max(1, min(int(request.query.get("limit", "25")), 1000))
            start = int(base64.b64decode(request.query["after"]).decode()) \
                if "after" in request.query else 0
        except ValueError:
            return self._refuse(path, {}, _invalid("Invalid limit or cursor."))
        page = self.templates[start:start + limit]
        body: JSONDict = {"data": copy.deepcopy(page)}
        if page:
            cursor = base64.b64encode(str(start + len(page)).encode()).decode()
            body["paging"] = {"cursors": {
                "before": base64.b64encode(str(start).encode()).decode(), "after": cursor}}
            if start + len(page) < len(self.templates):
                body["paging"]["next"] = (f"{self.base_url}{path}?limit={limit}"
                                          f"&after={cursor}")
        return web.json_response(body)

    async def _handle_number(self, request: web.Request) -> web.StreamResponse:
        """``GET /{version}/{phone_number_id}``: the number's details (display number,
        verified name, quality rating), as Meta gives them to its owner's token."""
        path = request.path
        self.requests.append((path, {}))
        if not self._authorised(request):
            return self._refuse(path, {}, GraphError(
                ACCESS_TOKEN, message=ERROR_MESSAGES[ACCESS_TOKEN], http_status=401))
        if request.match_info["version"] != self.api_version \
                or request.match_info["phone_number_id"] != self.phone_number_id:
            return self._refuse(path, {}, GraphError(
                INVALID_PARAMETER, message="Unsupported get request.",
                error_type="GraphMethodException"))
        return web.json_response({"id": self.phone_number_id,
                                  "display_phone_number": "+62 21 5555 0100",
                                  "verified_name": "Gotong Test", "quality_rating": "GREEN"})

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parsed = await self._json_or_none(request)
        body: JSONDict = parsed if isinstance(parsed, dict) else {}
        self.requests.append((path, body))
        self._changed.notify()
        if not self._authorised(request):
            return self._refuse(
                path,
                body,
                GraphError(
                    ACCESS_TOKEN,
                    message=ERROR_MESSAGES[ACCESS_TOKEN],
                    http_status=401,
                ),
            )
        version = request.match_info["version"]
        phone_number_id = request.match_info["phone_number_id"]
        if version != self.api_version or phone_number_id != self.phone_number_id:
            return self._refuse(
                path,
                body,
                GraphError(
                    INVALID_PARAMETER,
                    message=(
                        f"Unsupported {request.method.lower()} request. Object with ID "
                        f"'{phone_number_id}' does not exist, cannot be loaded due to missing "
                        "permissions, or does not support this operation."
                    ),
                    error_type="GraphMethodException",
                    subcode=33,
                ),
            )
        if request.method != "POST":
            return self._refuse(
                path,
                body,
                GraphError(
                    INVALID_PARAMETER,
                    message=f"Unsupported {request.method.lower()} request.",
                    error_type="GraphMethodException",
                ),
            )
        try:
            if not isinstance(parsed, dict):
                raise _invalid("The request body must be a JSON object.")
            _check_product(body)
            if "status" in body:
                return self._mark_read(body)
            to, kind = check_send(body)
            if kind == "template":
                self._check_template_exists(body["template"])
        except GraphError as error:
            return self._refuse(path, body, error)
        response = self._send(request, path, body, to, kind)
        if self.response_delay > 0:
            await asyncio.sleep(self.response_delay)
        return response

    def _send(
        self, request: web.Request, path: str, body: JSONDict, to: str, kind: str
    ) -> web.StreamResponse:
        """Injected failures, the 24-hour window and the rate limit; then accept."""
        rule = self._take_failure_rule(to)
        if rule is not None and rule.error is None:
            return _drop_connection(request)
        if rule is not None and rule.error is not None:
            return self._refuse(path, body, rule.error, injected=True)
        by_user_id = "to" not in body
        if by_user_id and kind == "template" \
                and body["template"]["name"] in self.templates_not_for_user_ids:
            return self._refuse(path, body, GraphError(NOT_FOR_USER_ID))
        if kind != "template" and to in self.outside_window:
            return self._refuse(path, body, GraphError(OUTSIDE_WINDOW, _ERROR_DETAILS[131047]))
        now = time.monotonic()
        if self._rate_limit.admit(to, now) is not None:
            return self._refuse(path, body, GraphError(THROUGHPUT, _ERROR_DETAILS[130429]))
        message = SentMessage(to=to, type=kind, payload=copy.deepcopy(body), id=new_wamid(),
                              at=now, by_user_id=by_user_id)
        self.messages.append(message)
        self._changed.notify()
        contact = {"input": to, "user_id": to} if by_user_id else {"input": to, "wa_id": to}
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [{"id": message.id}],
            }
        )

    def _mark_read(self, body: JSONDict) -> web.Response:
        if body.get("status") != "read":
            raise _invalid("Param status must be 'read'.")
        message_id = body.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise _invalid("The parameter message_id is required.")
        self.read_ids.append(message_id)
        self._changed.notify()
        return web.json_response({"success": True})

    def _check_template_exists(self, template: JSONDict) -> None:
        name, code = template["name"], template["language"]["code"]
        if self.approved_templates and (name, code) not in self.approved_templates:
            raise GraphError(TEMPLATE_MISSING, f"template name ({name}) does not exist in {code}")

    def _authorised(self, request: web.Request) -> bool:
        match = _BEARER.match(request.headers.get("Authorization", "").strip())
        token = match.group(1) if match else request.query.get("access_token")
        return token is not None and secrets.compare_digest(token, self.access_token)

    def _refuse(
        self, path: str, body: JSONDict, error: GraphError, *, injected: bool = False
    ) -> web.Response:
        self.refusals.append(
            Refusal(path, body, error.http_status, error.code, error.details, injected)
        )
        self._changed.notify()
        return web.json_response(error.payload(), status=error.http_status)

    def _take_failure_rule(self, to: str) -> _FailureRule | None:
        """Use up one time of the first rule matching a send to ``to``, if any."""
        for rule in self._failures:
            if rule.to is not None and rule.to != to:
                continue
            rule.times -= 1
            if rule.times == 0:
                self._failures.remove(rule)
            return rule
        return None

    @staticmethod
    async def _json_or_none(request: web.Request) -> Any:
        try:
            return json.loads(await request.read() or b"null")
        except ValueError:
            return None

    @classmethod
    async def _read_body(cls, request: web.Request) -> JSONDict:
        body = await cls._json_or_none(request)
        return body if isinstance(body, dict) else {}


def _drop_connection(request: web.Request) -> web.Response:
    """Close the request's connection at once; the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


# ---------------------------------------------------------------------- payload validation


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any, name: str) -> JSONDict:
    if not isinstance(value, dict):
        raise _invalid(f"The parameter {name} is required and must be an object.")
    return value


def _check_length(value: Any, name: str, maximum: int, *, code: int = PARAMETER_VALUE) -> str:
    """A string of 1..maximum characters (after stripping, empty counts as missing)."""
    text = _str(value)
    if text is None or not text.strip():
        raise _invalid(f"The parameter {name} is required.")
    if len(text) > maximum:
        raise GraphError(
            code, f"{name} length invalid. Min length: 1, Max length: {maximum}. Got {len(text)}."
        )
    return text


def _check_product(body: JSONDict) -> None:
    product = body.get("messaging_product")
    if product is None:
        raise _invalid("The parameter messaging_product is required.")
    if product != "whatsapp":
        raise _invalid("Param messaging_product must be 'whatsapp'.")


def check_send(body: JSONDict) -> tuple[str, str]:
    """Validate a send; return ``(recipient, type)``: the number in ``to``, else the
    business-scoped user id in ``recipient``."""
    to = body.get("to")
    if to is None and body.get("recipient") is None:
        raise _invalid("The parameter to is required.")
    if to is None:
        to = body["recipient"]
        if not isinstance(to, str) or not _USER_ID_SHAPE.match(to):
            raise _invalid(f"Param recipient is not a valid business-scoped user id: {to!r}.")
    elif not isinstance(to, str) or not _PHONE_SHAPE.match(to):
        raise _invalid(f"Param to is not a valid phone number: {to!r}.")
    kind = body.get("type", "text")
    if kind not in _SEND_TYPES:
        raise _invalid(f"Param type must be one of {sorted(_SEND_TYPES)}, got {kind!r}.")
    if kind not in body:
        raise _invalid(f"The parameter {kind} is required.")
    if kind == "text":
        text = _dict(body["text"], "text")
        _check_length(text.get("body"), "text['body']", MAX_TEXT_BODY, code=INVALID_PARAMETER)
    elif kind == "interactive":
        _check_interactive(_dict(body["interactive"], "interactive"))
    else:
        _check_template(_dict(body["template"], "template"))
    return to, str(kind)


def _check_interactive(interactive: JSONDict) -> None:
    kind = interactive.get("type")
    if kind not in ("button", "list"):
        raise _bad_value(f"Interactive type {kind!r} is not supported (button or list).")
    body = _dict(interactive.get("body"), "interactive['body']")
    limit = MAX_BUTTON_BODY if kind == "button" else MAX_LIST_BODY
    _check_length(body.get("text"), "Body text", limit)
    if "footer" in interactive:
        footer = _dict(interactive["footer"], "interactive['footer']")
        _check_length(footer.get("text"), "Footer text", MAX_FOOTER_TEXT)
    if "header" in interactive:
        header = _dict(interactive["header"], "interactive['header']")
        header_type = header.get("type")
        allowed = _BUTTON_HEADER_TYPES if kind == "button" else {"text"}
        if header_type not in allowed:
            raise _bad_value(f"Header type {header_type!r} is not valid for a {kind} message.")
        if header_type == "text":
            _check_length(header.get("text"), "Header text", MAX_HEADER_TEXT)
        else:
            _dict(header.get(str(header_type)), f"header['{header_type}']")
    action = _dict(interactive.get("action"), "interactive['action']")
    if kind == "button":
        _check_buttons(action.get("buttons"))
    else:
        _check_list(action)


def _check_buttons(buttons: Any) -> None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        count = len(buttons) if isinstance(buttons, list) else 0
        raise _bad_value(
            f"Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: "
            f"{MAX_BUTTONS}. Got {count}."
        )
    ids: set[str] = set()
    titles: set[str] = set()
    for button in buttons:
        if not isinstance(button, dict) or button.get("type") != "reply":
            raise _bad_value("Button type must be 'reply'.")
        reply = _dict(button.get("reply"), "button['reply']")
        button_id = _check_length(reply.get("id"), "Button id", MAX_BUTTON_ID)
        title = _check_length(reply.get("title"), "Button title", MAX_BUTTON_TITLE)
        if title in titles:
            raise _bad_value(f"Button title is not unique: {title!r}.")
        if button_id in ids:
            raise _bad_value(f"Button id is not unique: {button_id!r}.")
        titles.add(title)
        ids.add(button_id)


def _check_list(action: JSONDict) -> None:
    _check_length(action.get("button"), "Button label", MAX_LIST_BUTTON)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= MAX_SECTIONS:
        count = len(sections) if isinstance(sections, list) else 0
        raise _bad_value(
            f"Invalid sections count. Min allowed sections: 1, Max allowed sections: "
            f"{MAX_SECTIONS}. Got {count}."
        )
    total = 0
    ids: set[str] = set()
    for section in sections:
        section = _dict(section, "section")
        if len(sections) > 1 or "title" in section:
            _check_length(section.get("title"), "Section title", MAX_SECTION_TITLE)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise _bad_value("Each section must have at least one row.")
        total += len(rows)
        for row in rows:
            row = _dict(row, "row")
            row_id = _check_length(row.get("id"), "Row id", MAX_ROW_ID)
            _check_length(row.get("title"), "Row title", MAX_ROW_TITLE)
            if "description" in row:
                description = _str(row["description"])
                if description is None or len(description) > MAX_ROW_DESCRIPTION:
                    raise _bad_value(
                        f"Row description length invalid. Max length: {MAX_ROW_DESCRIPTION}."
                    )
            if row_id in ids:
                raise _bad_value(f"Row id is not unique: {row_id!r}.")
            ids.add(row_id)
    if total > MAX_ROWS:
        raise _bad_value(f"Total row count exceed max allowed count: {MAX_ROWS}. Got {total}.")


def _check_template(template: JSONDict) -> None:
    _check_length(template.get("name"), "template['name']", 512, code=INVALID_PARAMETER)
    language = _dict(template.get("language"), "template['language']")
    _check_length(language.get("code"), "template['language']['code']", 15, code=INVALID_PARAMETER)
    components = template.get("components", [])
    if not isinstance(components, list):
        raise _invalid("Param template['components'] must be an array.")
    for component in components:
        component = _dict(component, "component")
        if component.get("type") not in ("header", "body", "button"):
            raise _invalid(f"Invalid component type {component.get('type')!r}.")
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list):
            raise _invalid("Param component['parameters'] must be an array.")
        for parameter in parameters:
            parameter = _dict(parameter, "parameter")
            if parameter.get("type") != "text":
                continue  # media, currency... parameters are not used by the bot
            text = _str(parameter.get("text"))
            if text is None or not text.strip():
                raise _invalid("The parameter text is required.")
            # Graph refuses these in text parameters (they are one-line placeholders).
            if "\n" in text or "\t" in text or _TEMPLATE_PARAM_SPACES.search(text):
                raise _invalid(
                    "Param text cannot have new-line/tab characters or more than 4 "
                    "consecutive spaces"
                )
