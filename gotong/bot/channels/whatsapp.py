"""The WhatsApp channel, on the WhatsApp Cloud API (Meta's Graph API) with aiohttp.

A thin adapter like the Telegram one: a verified webhook payload is stored, answered 200
and then processed; each message becomes an `Incoming` for the conversations, and each
`Reply` is rendered as WhatsApp messages (text, up to 3 reply buttons, or a list of up to
10 rows, longer lists in pages with "more").

WhatsApp's own rules live here too: free-form messages reach a person only within 24
hours of their last message to us. Outside that window a notice goes out as an approved
template (one per kind of notice, configured, with the notice's text as its parameter), or
as the generic "you have an update" template, in which case the notice is held and shown
when the person next writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from gotong.bot.channels.delivery import (
    ApiWatch,
    Delivered,
    DeliveryError,
    Done,
    Held,
    OutcomeUnknown,
    Pace,
    ReplyOutbox,
    RetryLater,
    Undeliverable,
    Unreachable,
    send_reply,
    split_text,
)
from gotong.bot.channels.inbound import InboundQueue, InboundSettings
from gotong.bot.channels.webhook import parse_json, same_secret
from gotong.bot.config import WhatsAppConfig
from gotong.bot.metrics import WEBHOOK_REFUSALS
from gotong.handlers.catalog import Catalog
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.models.base import utcnow
from gotong.models.contact import Contact, find_contact
from gotong.models.inbound import (
    LeaseLost,
    QueuedUpdate,
    Stored,
    finish_inbound,
    store_inbound,
)
from gotong.models.outbox import (
    HELD_AFTER,
    Claimed,
    Failure,
    Notice,
    OutboxMessage,
    OutboxStatus,
    enqueue,
)
from gotong.models.person import Moved, change_user_id, move_contact
from gotong.models.sending import mark_unreachable

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_TEXT = 4096
# The body of a message with reply buttons is shorter than a text message.
MAX_BUTTON_BODY = 1024
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_ROW_ID = 200
# A template parameter may not hold line breaks, tabs or runs of spaces.
MAX_TEMPLATE_PARAMETER = 1024
# Option ids the channel answers itself: the next page of a long list, and "use the
# number I write from" (WhatsApp vouches for it, as Telegram does for a shared contact).
MORE = "~more:"
OWN_NUMBER = "~own"
# Long lists remembered per chat for "more", most recent kept.
PAGES_KEPT = 10_000
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)
# Messages of a chat handled within this many seconds of each other get one read receipt.
READ_AFTER_SECONDS = 0.05
# Seconds to connect to the Graph API.
CONNECT_TIMEOUT = 5.0
HTTP_CONNECTIONS = 16

# Graph API error codes (PLATFORMS.md).
THROUGHPUT = 130429
PAIR_RATE = 131056
ACCOUNT_RATE = 80007
OUTSIDE_WINDOW = 131047
UNDELIVERABLE = 131026
SPAM_LIMIT = 131048
ACCESS_TOKEN = 190
# This kind of message cannot go to a business-scoped user id (a person known only by
# their username): it never will.
NOT_FOR_USER_ID = 131062
# "Something went wrong": Meta gives no reason.
GENERIC_ERROR = 131000

# How far a status may move a sent row: forward only, whatever order they arrive in.
_STATUS_ORDER = {OutboxStatus.SENT: 1, OutboxStatus.DELIVERED: 2, OutboxStatus.READ: 3}


class MalformedPayload(ValueError):
    """A webhook body that is not a WhatsApp Business Account notification."""


class GraphError(Exception):
    def __init__(self, http_status: int, code: int | None, message: str) -> None:
        super().__init__(f"{http_status} ({code}): {message}")
        self.http_status = http_status
        self.code = code
        self.message = message


def number_url(config: WhatsAppConfig) -> str:
    return f"{config.api_base_url.rstrip('/')}/{config.api_version}/{config.phone_number_id}"


async def number_details(http: aiohttp.ClientSession, config: WhatsAppConfig
                         ) -> dict[str, Any]:
    """The number's details (its verified name, display number, quality rating) through
    `http`, which carries the access token; GraphError when the number or token is
    refused."""
    return await _graph_get(http, number_url(config), {
        "fields": "display_phone_number,verified_name,quality_rating"})


async def _graph_get(http: aiohttp.ClientSession, url: str, params: Mapping[str, str]
                     ) -> dict[str, Any]:
    """A Graph API GET through `http` (which carries the access token); GraphError when
    it is refused."""
    async with http.get(url, params=params) as response:
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = None
        if response.status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            error = error if isinstance(error, dict) else {}
            code = error.get("code")
            raise GraphError(response.status, code if isinstance(code, int) else None,
                             str(error.get("message") or response.reason or ""))
    return body


# Pages of templates read at most (of 100 each): an account holds far fewer.
MAX_TEMPLATE_PAGES = 50


async def message_templates(http: aiohttp.ClientSession, config: WhatsAppConfig
                            ) -> list[dict[str, Any]]:
    """Every template of the WhatsApp Business Account (`whatsapp.business_account_id`),
    each with its name, language and status, through `http`, which carries the access
    token; GraphError when the account or the token is refused. Pages are followed by
    their cursor on our own URL, never by the `next` address the answer names."""
    url = (f"{config.api_base_url.rstrip('/')}/{config.api_version}/"
           f"{config.business_account_id}/message_templates")
    params = {"fields": "name,language,status,category", "limit": "100"}
    found: list[dict[str, Any]] = []
    for _ in range(MAX_TEMPLATE_PAGES):
        body = await _graph_get(http, url, params)
        data = body.get("data")
        found += [t for t in data if isinstance(t, dict)] if isinstance(data, list) else []
        paging = body.get("paging")
        paging = paging if isinstance(paging, dict) else {}
        cursors = paging.get("cursors")
        after = cursors.get("after") if isinstance(cursors, dict) else None
        if not paging.get("next") or not isinstance(after, str) or not after:
            break
        params = {**params, "after": after}
    return found


@dataclass(frozen=True)
class Labels:
    """The channel's own words, in the person's language."""

    choose: str
    more: str
    use_my_number: str
    share_location: str
    # How to give a number when WhatsApp has not given us theirs (a username).
    type_my_number: str = ""

    @classmethod
    def of(cls, catalog: Catalog, language: str) -> Labels:
        return cls(choose=catalog.text(language, "whatsapp.choose"),
                   more=catalog.text(language, "whatsapp.more"),
                   use_my_number=catalog.text(language, "whatsapp.use_my_number"),
                   share_location=catalog.text(language, "whatsapp.share_location"),
                   type_my_number=catalog.text(language, "whatsapp.type_my_number"))


# --- inbound ------------------------------------------------------------------------

# What the adapter takes from a signed notification. Anything else is dropped with the
# kind of problem in the log (never the value: it may be a number or what someone wrote)
# and Meta is answered 200: a retry would bring the same bytes, for days.
#
# A number as WhatsApp gives it: E.164 digits without the "+", ASCII only. (str.isdigit
# takes "٣" and "³" too, which no phone network does.)
PHONE_ID = re.compile(r"[1-9][0-9]{5,14}", re.ASCII)
# A business-scoped user id ("US.13491208655302741918"): a country code, a dot and up to
# 128 letters and digits by Meta's word; a chat's queue key holds 128 characters in all.
USER_ID = re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,125}", re.ASCII)
# Meta's message and media ids ("wamid.HBgL..."): printable ASCII, as long as the queue
# keeps them.
MESSAGE_ID = re.compile(r"[!-~]{1,128}", re.ASCII)
# Longer than anything WhatsApp lets a person send: text, a caption, a button's id.
MAX_INBOUND_TEXT = 65_536
MAX_INBOUND_CAPTION = 4096
MAX_INBOUND_REPLY_ID = 256
MAX_INBOUND_TYPE = 32
# A number on a shared contact card, as typed in an address book.
MAX_CARD_PHONE = 64
# A timestamp ahead of our clock by more than this is not believed (it would hold the
# 24-hour window open).
CLOCK_SKEW = timedelta(minutes=5)

# System messages: the person changed their number (older and newer names of the type),
# their security code changed, or only their business-scoped user id did.
NUMBER_CHANGED = frozenset({"customer_changed_number", "user_changed_number"})
IDENTITY_CHANGED = frozenset({"customer_identity_changed", "user_identity_changed"})
USER_ID_CHANGED = frozenset({"user_changed_user_id"})


def signature_matches(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether the body was signed with the app secret (X-Hub-Signature-256)."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return same_secret(header[len("sha256="):].strip().lower(), expected)


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    # The chat: the person's number (digits only), else their business-scoped user id, or
    # the address of the contact known by that id.
    sender: str
    sent_at: datetime
    message: dict[str, Any]
    # What the message says of the sender: their number (when Meta shares it) and their
    # business-scoped user id (when Meta gives one).
    phone: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class StatusChange:
    message_id: str
    status: str
    error_codes: tuple[int, ...]
    recipient: str = ""
    # The business-scoped user id the message went to (or the person's, when Meta adds it).
    recipient_user_id: str = ""


@dataclass(frozen=True)
class SystemChange:
    """What a system message says changed: the person's number (with the new one and its
    new user id), their security code, or their user id alone."""

    kind: str
    phone: str | None = None
    user_id: str | None = None


class Ignored(ValueError):
    """Part of a notification that is dropped: not a person talking to us, or not shaped
    as Meta documents it. The message is a short reason, without personal data."""


def parse_notification(payload: Any, phone_number_id: str
                       ) -> tuple[list[InboundMessage], list[StatusChange]]:
    """The messages and statuses of a webhook notification meant for our number; what
    is not a person talking to us, and what is malformed, is left out (and logged)."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise MalformedPayload("not a WhatsApp Business Account notification")
    messages: list[InboundMessage] = []
    statuses: list[StatusChange] = []
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) \
                else None
            if phone_number_id and number_id != phone_number_id:
                # Another number of the same business account: not ours to answer.
                continue
            contacts = _dicts(value.get("contacts"))
            for message in _dicts(value.get("messages")):
                try:
                    messages.append(_message(message, contacts))
                except Ignored as exc:
                    log.info("ignored a whatsapp message: %s", exc)
            for status in _dicts(value.get("statuses")):
                try:
                    statuses.append(_status(status))
                except Ignored as exc:
                    log.info("ignored a whatsapp status: %s", exc)
    return messages, statuses


def _message(message: dict[str, Any], contacts: list[dict[str, Any]]) -> InboundMessage:
    message_id = message.get("id")
    if not isinstance(message_id, str) or not MESSAGE_ID.fullmatch(message_id):
        raise Ignored("its id is not a message id")
    not_talking = _not_talking(message)
    if not_talking:
        raise Ignored(not_talking)
    phone, user_id = _sender(message, contacts)
    kind = message.get("type")
    if not isinstance(kind, str) or len(kind) > MAX_INBOUND_TYPE:
        raise Ignored("its type is not a name")
    if kind == "system":
        _system_change(message)
    else:
        _check_content(kind, message.get(kind), message)
    if user_id is not None and message.get("from_user_id") != user_id:
        # Kept with the message, which alone is stored (the contacts array is not).
        message = {**message, "from_user_id": user_id}
    return InboundMessage(message_id, phone or user_id or "", _timestamp(message.get("timestamp")),
                          message, phone, user_id)


def _not_talking(message: dict[str, Any]) -> str | None:
    """Why a message is no one talking to us, if it is not: it gets no answer."""
    if message.get("group_id") is not None:
        return "a message in a group"
    kind = message.get("type")
    if kind == "reaction":
        return "a reaction"
    if kind == "revoke":
        return "a deleted message"
    unsupported = message.get("unsupported")
    if kind == "unsupported" and isinstance(unsupported, dict) \
            and unsupported.get("type") in ("revoke", "reaction"):
        return "a deleted message" if unsupported["type"] == "revoke" else "a reaction"
    if kind == "system":
        system = message.get("system")
        name = system.get("type") if isinstance(system, dict) else None
        if name not in NUMBER_CHANGED | IDENTITY_CHANGED | USER_ID_CHANGED:
            return "a system message of another kind"
    return None


def _sender(message: dict[str, Any], contacts: list[dict[str, Any]]
            ) -> tuple[str | None, str | None]:
    """The sender's number and business-scoped user id; one at least."""
    phone = user_id = None
    sender = message.get("from")
    if sender is not None:
        if isinstance(sender, str) and PHONE_ID.fullmatch(sender):
            phone = sender
        elif isinstance(sender, str) and USER_ID.fullmatch(sender):
            # Meta put the user id where the number goes.
            user_id = sender
        else:
            raise Ignored("its sender is neither a number nor a user id")
    given = message.get("from_user_id")
    if isinstance(given, str) and USER_ID.fullmatch(given):
        user_id = given
    elif given is not None:
        if phone is None:
            raise Ignored("its sender's user id is not a user id")
        log.info("a whatsapp message's user id is not a user id; its number is used")
    if phone is not None and user_id is None:
        # Older notifications name it only in the contacts array.
        for contact in contacts:
            found = contact.get("user_id")
            if contact.get("wa_id") == phone and isinstance(found, str) \
                    and USER_ID.fullmatch(found):
                user_id = found
    if phone is None and user_id is None:
        raise Ignored("it names no sender")
    return phone, user_id


def _text(value: Any, limit: int, what: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > limit:
        raise Ignored(f"its {what} is not a text of at most {limit} characters")


def _number(value: Any, low: float, high: float) -> float:
    """A coordinate, as a number or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) \
            or (isinstance(value, str) and len(value) > 32):
        raise Ignored("a coordinate is not a number")
    try:
        number = float(value)
    except ValueError:
        raise Ignored("a coordinate is not a number") from None
    if not low <= number <= high:  # NaN fails this too
        raise Ignored("a coordinate is out of range")
    return number


def _check_content(kind: str, body: Any, message: dict[str, Any]) -> None:
    """That the parts of the message that `to_incoming` reads have Meta's types and
    sizes."""
    if kind == "text":
        if not isinstance(body, dict):
            raise Ignored("its text is not an object")
        _text(body.get("body"), MAX_INBOUND_TEXT, "text", optional=False)
    elif kind == "interactive":
        if not isinstance(body, dict):
            raise Ignored("its reply is not an object")
        for name in ("button_reply", "list_reply"):
            reply = body.get(name)
            if reply is None:
                continue
            if not isinstance(reply, dict):
                raise Ignored("its reply is not an object")
            _text(reply.get("id"), MAX_INBOUND_REPLY_ID, "reply id", optional=False)
            _text(reply.get("title"), MAX_INBOUND_TEXT, "reply title")
    elif kind == "button":
        if not isinstance(body, dict):
            raise Ignored("its button is not an object")
        _text(body.get("text"), MAX_INBOUND_TEXT, "button text")
    elif kind == "location":
        if not isinstance(body, dict):
            raise Ignored("its location is not an object")
        _number(body.get("latitude"), -90, 90)
        _number(body.get("longitude"), -180, 180)
    elif kind == "image":
        if not isinstance(body, dict):
            raise Ignored("its image is not an object")
        media = body.get("id")
        if not isinstance(media, str) or not MESSAGE_ID.fullmatch(media):
            raise Ignored("its media id is not a media id")
        _text(body.get("caption"), MAX_INBOUND_CAPTION, "caption")
    elif kind == "contacts":
        cards = message.get("contacts")
        if not isinstance(cards, list):
            raise Ignored("its contacts are not a list")
        for card in _dicts(cards):
            phones = card.get("phones")
            if phones is not None and not isinstance(phones, list):
                raise Ignored("a card's numbers are not a list")
            for entry in _dicts(phones):
                _text(entry.get("phone"), MAX_CARD_PHONE, "card number")
                _text(entry.get("wa_id"), MAX_CARD_PHONE, "card number")


def system_change(message: dict[str, Any]) -> SystemChange:
    """What a (checked) system message says changed."""
    return _system_change(message)


def _system_change(message: dict[str, Any]) -> SystemChange:
    system = message.get("system")
    if not isinstance(system, dict):
        raise Ignored("its system part is not an object")
    kind = system.get("type")
    new_user_id = system.get("user_id")
    if new_user_id is not None and not (isinstance(new_user_id, str)
                                        and USER_ID.fullmatch(new_user_id)):
        raise Ignored("its new user id is not a user id")
    if kind in NUMBER_CHANGED:
        # "wa_id" now; "new_wa_id" in older versions of the Graph API.
        number = system.get("wa_id", system.get("new_wa_id"))
        if isinstance(number, int) and not isinstance(number, bool):
            number = str(number)
        if not isinstance(number, str) or not PHONE_ID.fullmatch(number):
            raise Ignored("its new number is not a number")
        return SystemChange("number", number, new_user_id)
    if kind in USER_ID_CHANGED:
        if new_user_id is None:
            raise Ignored("it names no new user id")
        return SystemChange("user_id", None, new_user_id)
    return SystemChange("identity")


def _status(status: dict[str, Any]) -> StatusChange:
    message_id, state = status.get("id"), status.get("status")
    if not isinstance(message_id, str) or not MESSAGE_ID.fullmatch(message_id):
        raise Ignored("its message id is not a message id")
    if not isinstance(state, str) or len(state) > MAX_INBOUND_TYPE:
        raise Ignored("its status is not a name")
    codes = tuple(e["code"] for e in _dicts(status.get("errors"))
                  if isinstance(e.get("code"), int) and not isinstance(e.get("code"), bool))
    recipient = status.get("recipient_id")
    # A number, or (a message sent to a user id) nothing; a group's id is no one's.
    recipient = recipient if isinstance(recipient, str) and PHONE_ID.fullmatch(recipient) \
        else ""
    user_id = status.get("recipient_user_id")
    user_id = user_id if isinstance(user_id, str) and USER_ID.fullmatch(user_id) else ""
    return StatusChange(message_id, state, codes, recipient, user_id)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _timestamp(value: Any) -> datetime:
    """When the person wrote (Unix seconds, as a string): now when the value is not
    one, or lies in the future."""
    now = utcnow()
    if isinstance(value, bool) or not isinstance(value, int | str) \
            or (isinstance(value, str) and not (value.isascii() and value.isdigit()
                                                and len(value) <= 12)):
        return now
    try:
        sent = datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return now
    return now if sent > now + CLOCK_SKEW else sent


def inbound_of(payload: dict[str, Any], chat_id: str) -> InboundMessage:
    """A stored message (checked when it came) as it was parsed, in the chat it is
    queued in."""
    sender = payload.get("from")
    given = payload.get("from_user_id")
    phone = sender if isinstance(sender, str) and PHONE_ID.fullmatch(sender) else None
    user_id = given if isinstance(given, str) and USER_ID.fullmatch(given) else \
        sender if isinstance(sender, str) and USER_ID.fullmatch(sender) else None
    return InboundMessage(str(payload["id"]), chat_id, _timestamp(payload.get("timestamp")),
                          payload, phone, user_id)


def to_incoming(inbound: InboundMessage) -> Incoming:
    """The channel-agnostic form of a WhatsApp message."""
    message = inbound.message
    base: dict[str, Any] = {"channel": CHANNEL, "chat_id": inbound.sender,
                            "external_id": inbound.message_id,
                            "sender_phone": f"+{inbound.phone}" if inbound.phone else None,
                            "sender_user_id": inbound.user_id, "sent_at": inbound.sent_at}
    # Their own number: the one this message comes from, or the one Meta gave before and
    # withholds now (a chat is a number only when Meta gave it as the person's).
    own = inbound.phone or (inbound.sender if has_number(inbound.sender) else None)
    kind = message.get("type")
    body = message.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        text = _string(body.get("body"))
        if text.startswith("/"):
            word, _, args = text[1:].partition(" ")
            return Incoming(kind=Kind.COMMAND, command=word.lower(), args=args.strip(),
                            text=text, **base)
        return Incoming(kind=Kind.TEXT, text=text, **base)
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply")
        if not isinstance(reply, dict):
            # A form's or a call's reply, say: nothing a question of ours asked for.
            return Incoming(kind=Kind.OTHER, **base)
        data = _string(reply.get("id"))
        context, separator, option = data.partition("|")
        if not separator:
            context, option = "", ""
        if option == OWN_NUMBER and own:
            return Incoming(kind=Kind.CONTACT, phone=f"+{own}", phone_is_own=True, **base)
        # Without a number to use the button is stale: the question is asked again.
        return Incoming(kind=Kind.CHOICE, context=context, option=option, **base)
    if kind == "button":
        # A quick-reply button of a template: its text is the answer.
        return Incoming(kind=Kind.TEXT, text=_string(body.get("text")), **base)
    if kind == "location":
        try:
            return Incoming(kind=Kind.LOCATION, latitude=float(body["latitude"]),
                            longitude=float(body["longitude"]), **base)
        except (KeyError, TypeError, ValueError):
            return Incoming(kind=Kind.OTHER, **base)
    if kind == "image":
        return Incoming(kind=Kind.PHOTO, media_id=_string(body.get("id")),
                        text=_string(body.get("caption")), **base)
    if kind == "contacts":
        return _shared_contact(message.get("contacts"), own, base)
    if kind == "sticker":
        return Incoming(kind=Kind.STICKER, **base)
    if kind in ("audio", "voice"):
        return Incoming(kind=Kind.VOICE, **base)
    return Incoming(kind=Kind.OTHER, **base)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _shared_contact(cards: Any, own: str | None, base: dict[str, Any]) -> Incoming:
    for card in _dicts(cards):
        for phone in _dicts(card.get("phones")):
            number = phone.get("wa_id") or phone.get("phone")
            if isinstance(number, str) and number.strip():
                digits = re.sub(r"[^0-9]", "", number)
                # Their own number only when WhatsApp gave it to us as the sender's.
                return Incoming(kind=Kind.CONTACT, phone=number.strip(),
                                phone_is_own=own is not None and digits == own, **base)
    return Incoming(kind=Kind.OTHER, **base)


# --- outbound -----------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, never blank (WhatsApp refuses blank fields)."""
    text = text.strip() or "…"
    return text if len(text) <= limit else (text[: limit - 1].rstrip() or "…") + "…"


def unique_titles(labels: Sequence[str], limit: int) -> list[str]:
    """Labels cut to `limit` characters and kept unique (WhatsApp refuses twins)."""
    titles: list[str] = []
    for label in labels:
        title = _cut(label, limit)
        number = 2
        while title in titles:
            suffix = f" {number}"
            title = _cut(label, limit - len(suffix)) + suffix
            number += 1
        titles.append(title)
    return titles


def _texts(text: str) -> list[str]:
    """Text messages of at most 4096 characters, none blank."""
    return [part for part in split_text(text, MAX_TEXT) if part.strip()] or ["…"]


def _body_split(text: str, body_limit: int) -> tuple[list[str], str]:
    """Leading text messages, and the last part (at most `body_limit`) for the body of an
    interactive message."""
    parts = _texts(text)
    last = parts.pop()
    if len(last) > body_limit:
        # The tail that fits, from a line break if there is one; the rest in one text.
        cut = last.find("\n", len(last) - body_limit)
        if cut < 0:
            cut = len(last) - body_limit
        if last[:cut].strip():
            parts.append(last[:cut])
        last = last[cut:].lstrip("\n")
    return parts, last if last.strip() else "…"


def _text_message(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": text, "preview_url": False}}


def _label(option: Option, multi: bool) -> str:
    return ("✅ " if option.selected else "▫️ ") + option.label if multi else option.label


@dataclass(frozen=True)
class Page:
    """A long list, remembered for "more": its options and the controls (next page, done,
    back) that every page shows."""

    context: str
    options: tuple[tuple[str, str], ...]  # (option id, label)
    controls: tuple[tuple[str, str], ...]


def render(reply: Reply, labels: Labels, *, has_number: bool = True
           ) -> tuple[list[dict[str, Any]], Page | None]:
    """The WhatsApp messages of a reply (without recipient), and the long list to remember
    for "more" if it is one. Without `has_number` (WhatsApp gave us no number for the
    person) there is no number to use in one tap: they type it or share it."""
    context = reply.context or ""
    controls = [(c.id, c.label) for c in reply.controls]
    text = reply.text
    options: list[tuple[str, str]] = []
    if reply.hint == Hint.CONTACT and has_number:
        options = [(OWN_NUMBER, labels.use_my_number)]
    elif reply.hint == Hint.CONTACT:
        text = f"{text}\n\n{labels.type_my_number}" if labels.type_my_number else text
    else:
        multi = reply.hint == Hint.MULTI
        options = [(o.id, _label(o, multi)) for o in reply.options]
    if reply.hint == Hint.LOCATION:
        text = f"{text}\n\n{labels.share_location}"
    every = [*options, *controls]
    if not every:
        return [_text_message(part) for part in _texts(text)], None
    if len(every) <= MAX_BUTTONS:
        head, body = _body_split(text, MAX_BUTTON_BODY)
        titles = unique_titles([label for _, label in every], MAX_BUTTON_TITLE)
        buttons = [{"type": "reply", "reply": {"id": _option_id(context, option_id),
                                               "title": title}}
                   for (option_id, _), title in zip(every, titles, strict=True)]
        interactive = {"type": "button", "body": {"text": body},
                       "action": {"buttons": buttons}}
        return [*map(_text_message, head), {"type": "interactive",
                                            "interactive": interactive}], None
    head, body = _body_split(text, MAX_TEXT)
    page = Page(context, tuple(options), tuple(controls))
    return [*map(_text_message, head), list_message(page, 0, body, labels)], \
        page if len(every) > MAX_ROWS else None


def list_message(page: Page, start: int, body: str, labels: Labels) -> dict[str, Any]:
    """A list of the options from `start` on, as many as fit beside the controls; with
    "more" when some are left."""
    options, controls = page.options[start:], list(page.controls)
    room = MAX_ROWS - len(controls)
    if len(options) > room:
        room -= 1
        shown = list(options[:room])
        controls.insert(0, (f"{MORE}{start + room}", labels.more))
    else:
        shown = list(options)
    every = [*shown, *controls]
    titles = unique_titles([label for _, label in every], MAX_ROW_TITLE)
    rows = []
    for (option_id, label), title in zip(every, titles, strict=True):
        row: dict[str, Any] = {"id": _option_id(page.context, option_id), "title": title}
        if title != label.strip():
            # The whole label, as far as it fits, under a title that had to be cut.
            row["description"] = _cut(label, MAX_ROW_DESCRIPTION)
        rows.append(row)
    interactive = {"type": "list", "body": {"text": body},
                   "action": {"button": _cut(labels.choose, MAX_BUTTON_TITLE),
                              "sections": [{"title": _cut(labels.choose, MAX_ROW_TITLE),
                                            "rows": rows}]}}
    return {"type": "interactive", "interactive": interactive}


def address(chat_id: str) -> dict[str, str]:
    """Whom a message to the chat goes to: `to` a number, or (a person known by their
    username alone) `recipient`, their business-scoped user id."""
    if has_number(chat_id):
        return {"to": chat_id}
    return {"recipient": chat_id}


def has_number(chat_id: str) -> bool:
    return chat_id.isascii() and chat_id.isdigit()


def _option_id(context: str, option_id: str) -> str:
    data = f"{context}|{option_id}"
    if len(data) > MAX_ROW_ID:
        raise ValueError(f"option id over {MAX_ROW_ID} characters: {context}")
    return data


def template_text(text: str) -> str:
    """Text fit for a template parameter: one line, no runs of spaces, not too long."""
    return _cut(re.sub(r"\s+", " ", text).strip() or "…", MAX_TEMPLATE_PARAMETER)


@dataclass(frozen=True)
class Templates:
    """Approved templates: one per kind of notice (catalog key), and the generic one."""

    by_key: Mapping[str, str]
    fallback: str

    @classmethod
    def parse(cls, pairs: Iterable[str], fallback: str) -> Templates:
        by_key: dict[str, str] = {}
        for pair in pairs:
            key, _, name = pair.partition("=")
            by_key[key.strip()] = name.strip()
        return cls(by_key, fallback)


def _delivery_error(exc: GraphError, sent: int) -> DeliveryError:
    """What a Graph API error means for the message."""
    detail = f"{exc.code}: {exc.message}"[:120]
    if exc.code in (THROUGHPUT, ACCOUNT_RATE):
        # The number's throughput: the whole channel waits a little.
        return RetryLater(f"whatsapp rate limit ({exc.code})", sent, detail, retry_after=2.0)
    if exc.code == PAIR_RATE:
        # Too many to this one person: only this row waits (with back-off).
        return RetryLater(f"too many messages to one person ({exc.code})", sent, detail)
    if exc.code == UNDELIVERABLE:
        return Unreachable(f"undeliverable ({exc.code})", sent, detail)
    if exc.code == SPAM_LIMIT:
        return Undeliverable(f"spam limit ({exc.code})", sent, detail)
    if exc.code == NOT_FOR_USER_ID:
        # Given up on with this reason, which `gotong outbox` and staff's list show.
        return Undeliverable(f"not allowed to a username's user id ({exc.code})", sent,
                             detail, failure=Failure.NOT_FOR_USERNAME)
    if is_template_error(exc.code):
        return Undeliverable(f"template refused ({exc.code})", sent, detail,
                             failure=Failure.TEMPLATE_REFUSED)
    if exc.http_status >= 500 or exc.http_status == 429:
        return RetryLater(f"whatsapp server error ({exc.http_status})", sent, detail)
    if exc.code == ACCESS_TOKEN or exc.http_status == 401:
        # A wrong or expired token: nothing will go out until the operator fixes it.
        return RetryLater("whatsapp access token refused", sent, detail)
    return Undeliverable(f"refused by WhatsApp ({exc.code})", sent, detail,
                         failure=Failure.UNKNOWN if exc.code in (None, GENERIC_ERROR)
                         else Failure.REFUSED)


def is_template_error(code: int | None) -> bool:
    """Meta's template errors are 132000-132999 (missing in a language, paused, ...)."""
    return code is not None and 132_000 <= code < 133_000


def status_failure(code: int | None) -> Failure:
    """Why a message WhatsApp accepted and then reported failed was given up on."""
    if code == NOT_FOR_USER_ID:
        return Failure.NOT_FOR_USERNAME
    if code == UNDELIVERABLE:
        return Failure.UNREACHABLE
    if code == SPAM_LIMIT:
        return Failure.REFUSED
    if is_template_error(code):
        return Failure.TEMPLATE_REFUSED
    return Failure.UNKNOWN


class WhatsAppChannel:
    channel = CHANNEL

    def __init__(self, config: WhatsAppConfig, conversations: Conversations,
                 sessions: async_sessionmaker[AsyncSession], *,
                 outbox: ReplyOutbox | None = None,
                 inbound: InboundSettings | None = None) -> None:
        self.config = config
        self._conversations = conversations
        self._catalog = conversations.catalog
        self._sessions = sessions
        self.outbox = outbox
        self.templates = Templates.parse(config.templates, config.fallback_template)
        self._http: aiohttp.ClientSession | None = None
        self._pages: OrderedDict[tuple[str, str], Page] = OrderedDict()
        self.inbound = InboundQueue(
            conversations.engine,
            replace(inbound or InboundSettings(), concurrent_chats=config.max_concurrent_chats),
            clock=conversations.now, owner=conversations.owner)
        self.inbound.register(CHANNEL, self.handle_stored)
        self._stop = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        # Per chat, the latest message handled and not marked read yet, and the task
        # that will mark it.
        self._unread: dict[str, str] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}
        # Whether the Graph API answers (for /readyz): every call tells; the number's
        # details when idle.
        self.watch = ApiWatch(self.number_info)

    @property
    def messages_url(self) -> str:
        return f"{number_url(self.config)}/messages"

    async def number_info(self) -> dict[str, Any]:
        """The number as the Graph API knows it (see `number_details`)."""
        await self.open_for_sending()
        assert self._http is not None
        details = await number_details(self._http, self.config)
        self.watch.answered()
        return details

    async def api_problem(self) -> str | None:
        return await self.watch.problem()

    # --- life cycle -----------------------------------------------------------------

    async def open_for_sending(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=REQUEST_TIMEOUT, connector=aiohttp.TCPConnector(limit=HTTP_CONNECTIONS),
                headers={"Authorization": f"Bearer {self.config.access_token}"})

    async def start(self) -> None:
        """Open the HTTP client and handle stored messages (those stored before a restart
        too), in order per chat."""
        await self.open_for_sending()
        self._stop.clear()
        self._worker = asyncio.create_task(self.inbound.run(self._stop))
        log.info("whatsapp channel started")

    async def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self._reading:
            await asyncio.gather(*self._reading.values(), return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def handled_messages(self) -> int:
        """Messages handled (or set aside) by this process so far."""
        return self.inbound.finished

    async def wait_handled(self, count: int) -> None:
        """Wait until `count` messages have been handled (replies sent) in all."""
        await self.inbound.wait_finished(count)

    # --- webhook --------------------------------------------------------------------

    def verify(self, mode: str | None, token: str | None, challenge: str | None) -> str | None:
        """The challenge to echo when Meta verifies the webhook with our token."""
        expected = self.config.verify_token
        if mode != "subscribe" or not expected or token is None or challenge is None:
            return None
        if not same_secret(token, expected):
            return None
        return challenge

    def signature_matches(self, body: bytes, header: str | None) -> bool:
        return signature_matches(body, header, self.config.app_secret)

    def add_routes(self, app: web.Application) -> None:
        """The webhook Meta verifies (GET) and posts notifications to (POST)."""
        app[WHATSAPP_CHANNEL] = self
        app.router.add_get(self.config.webhook_path, whatsapp_verification)
        app.router.add_post(self.config.webhook_path, whatsapp_webhook)

    async def accept_webhook(self, payload: Any) -> int:
        """Store the new messages of a verified notification in their chats' queues; apply
        its statuses. Returns how many messages were new (replays are dropped)."""
        messages, statuses = parse_notification(payload, self.config.phone_number_id)
        messages = await self._in_their_chats(messages)
        # Stored with whatever other webhooks bring at the same moment, in one transaction.
        stored = await asyncio.gather(*(
            self.inbound.accept(CHANNEL, message.message_id, message.sender, message.message)
            for message in messages))
        if statuses:
            now = utcnow()
            # On a connection, not an ORM session: this runs before the 200 Meta waits for.
            async with self._conversations.engine.begin() as connection:
                for status in statuses:
                    # Recorded once per message and status: a replay changes nothing.
                    if await store_inbound(connection, CHANNEL,
                                           f"{status.message_id}:{status.status}"[:128], "",
                                           None, now, handled=True) is Stored.NEW:
                        chat = await apply_status(connection, status, now)
                        if OUTSIDE_WINDOW in status.error_codes and chat is not None:
                            # The window's start changed under this process's copy.
                            self._conversations.forget(CHANNEL, chat)
        return sum(result is Stored.NEW for result in stored)

    async def _in_their_chats(self, messages: list[InboundMessage]) -> list[InboundMessage]:
        """Messages that name the sender by their user id alone join the queue of the
        contact known by it, whose address may be their number (Meta gave it earlier and
        withholds it now): one person's messages are handled in one queue, in order."""
        user_ids = {m.user_id for m in messages if m.phone is None and m.user_id}
        if not user_ids:
            return messages
        async with self._conversations.engine.connect() as connection:
            chats: dict[str | None, str] = {
                row.platform_user_id: row.chat_id for row in await connection.execute(
                    select(Contact.platform_user_id, Contact.chat_id)
                    .where(Contact.channel == CHANNEL,
                           Contact.platform_user_id.in_(user_ids)))}
        return [replace(m, sender=chats.get(m.user_id, m.sender)) if m.phone is None else m
                for m in messages]

    async def handle_stored(self, queued: QueuedUpdate) -> bool:
        """Handle a message of the inbound queue and send the reply."""
        message = inbound_of(queued.payload, queued.chat_id)
        if message.message.get("type") == "system":
            await self._apply_system(message, queued)
            return True
        return await self._handle(message, queued)

    # --- handling -------------------------------------------------------------------

    async def _apply_system(self, message: InboundMessage, queued: QueuedUpdate) -> None:
        """What WhatsApp says changed of a person, recorded on their contact; nothing is
        answered (the person wrote nothing), but a number change is told on the new
        number, once."""
        try:
            change = system_change(message.message)
        except Ignored as exc:
            # Stored before this version checked system messages when they came.
            log.info("ignored a whatsapp system message: %s", exc)
            await self.inbound.finish_alone(queued)
            return
        now = self._conversations.now()
        moved: Moved | None = None
        async with self._conversations.engine.begin() as connection:
            if not await finish_inbound(connection, queued.id, queued.owner, now):
                raise LeaseLost()
            # Joins the connection's transaction, which commits it.
            session = AsyncSession(bind=connection, expire_on_commit=False,
                                   join_transaction_mode="rollback_only")
            try:
                contact = await find_contact(session, CHANNEL, message.sender,
                                             [message.phone, message.user_id])
                if contact is None:
                    # Someone who never wrote to us: nothing of theirs to change.
                    log.info("a whatsapp system message about no contact of ours")
                elif change.kind == "identity":
                    contact.identity_changed_at = now
                    log.info("a whatsapp contact's security code changed")
                elif change.kind == "user_id" and change.user_id is not None:
                    await change_user_id(session, contact, change.user_id)
                elif change.phone is not None:
                    moved = await move_contact(session, contact, change.phone,
                                               verified_phone=f"+{change.phone}",
                                               user_id=change.user_id, now=now)
                if moved is not None:
                    # Told once: a repeat of the change finds the contact there already.
                    enqueue(session, Notice(moved.contact_id, "notice.number_changed", {}),
                            now)
                    log.info("a whatsapp contact moved to a new number")
                await session.flush()
            finally:
                await session.close()
        if contact is not None:
            self._conversations.forget(CHANNEL, message.sender)
        if moved is not None:
            self._conversations.forget(CHANNEL, moved.chat_id)
            if self._conversations.on_outbox is not None:
                self._conversations.on_outbox()

    async def _handle(self, message: InboundMessage, queued: QueuedUpdate) -> bool:
        # The blue ticks go while the message is handled, not before.
        self._read_soon(message.sender, message.message_id)
        return await self._answer(message, queued)

    def _read_soon(self, chat: str, message_id: str) -> None:
        """Mark the chat's latest message read in a moment: WhatsApp marks the earlier
        ones with it, so several messages handled one after another cost one call."""
        self._unread[chat] = message_id
        if chat not in self._reading:
            task = asyncio.create_task(self._mark_latest_read(chat))
            self._reading[chat] = task

    async def _mark_latest_read(self, chat: str) -> None:
        try:
            await asyncio.sleep(READ_AFTER_SECONDS)
        finally:
            del self._reading[chat]
            message_id = self._unread.pop(chat)
        await self._mark_read(message_id)

    async def _answer(self, message: InboundMessage, queued: QueuedUpdate) -> bool:
        incoming = to_incoming(message)
        if incoming.kind == Kind.CHOICE and (incoming.option or "").startswith(MORE):
            page = self._pages.get((incoming.chat_id, incoming.context or ""))
            if page is not None:
                await self._next_page(incoming, page, queued)
                return True
            # A list this process no longer remembers (after a restart): the
            # conversation asks its question again.
            incoming = replace(incoming, kind=Kind.TEXT, text="", context=None, option=None)
        return await self._converse(incoming, queued)

    async def _converse(self, incoming: Incoming, queued: QueuedUpdate) -> bool:
        outbox = self.outbox
        # The unit of work also keeps when the person wrote (the 24-hour window) and
        # releases the news held until then.
        handled = await self._conversations.handle_update(
            incoming, keep_reply=outbox is not None, queued=queued)
        # To the contact's address, which the queue's chat may no longer be (a number
        # given since the message came).
        return await send_reply(self, outbox, handled.chat_id or incoming.chat_id,
                                handled.replies, handled.reply_id, handled.contact_id,
                                language=handled.language, lease=handled.reply_lease)

    async def _next_page(self, incoming: Incoming, page: Page, queued: QueuedUpdate) -> None:
        """The next rows of a long list, from this process's memory."""
        async with self._conversations.engine.begin() as connection:
            # Handled here, not by the conversation.
            if not await finish_inbound(connection, queued.id, queued.owner, utcnow()):
                raise LeaseLost()
            language = await connection.scalar(
                select(Contact.language)
                .where(Contact.channel == CHANNEL, Contact.chat_id == incoming.chat_id))
        language = language or self._conversations.default_language
        try:
            start = int((incoming.option or "")[len(MORE):])
        except ValueError:
            start = 0
        start = min(max(start, 0), max(len(page.options) - 1, 0))
        payload = list_message(page, start, self._catalog.text(language, "whatsapp.more_body"),
                               Labels.of(self._catalog, language))
        try:
            await self._post({**payload, **address(incoming.chat_id)})
        except (GraphError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("a list page could not be sent (%s)", type(exc).__name__)

    async def _mark_read(self, message_id: str) -> None:
        try:
            await self._post({"status": "read", "message_id": message_id})
        except (GraphError, aiohttp.ClientError, TimeoutError) as exc:
            # Blue ticks are a courtesy: the message is handled anyway.
            log.info("could not mark a whatsapp message read (%s)", type(exc).__name__)

    # --- sending --------------------------------------------------------------------

    def _answer_within(self, row: Claimed | None) -> float:
        """How long to wait for the answer: longer for a row whose earlier send got none."""
        return self.config.answer_timeout_seconds * (
            1 + 2 * (row.timeouts if row is not None else 0))

    async def _post(self, payload: dict[str, Any], answer_within: float | None = None
                    ) -> str | None:
        """One Graph API call; the id of the message sent."""
        await self.open_for_sending()
        assert self._http is not None
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT,
            sock_read=answer_within or self.config.answer_timeout_seconds)
        async with self._http.post(self.messages_url,
                                   json={"messaging_product": "whatsapp", **payload},
                                   timeout=timeout) as response:
            if response.status != 401:
                # Meta answered (a refusal of the message included): the API is there.
                self.watch.answered()
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            if response.status != 200:
                error = body.get("error") if isinstance(body, dict) else None
                error = error if isinstance(error, dict) else {}
                code = error.get("code")
                raise GraphError(response.status, code if isinstance(code, int) else None,
                                 str(error.get("message") or response.reason or ""))
        messages = body.get("messages") if isinstance(body, dict) else None
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            return str(messages[0].get("id"))
        return None

    async def deliver(self, chat_id: str, replies: Sequence[Reply], *, skip: int = 0,
                      edit_message_id: int | None = None,
                      pace: tuple[Pace, Done] | None = None, language: str | None = None,
                      row: Claimed | None = None) -> Delivered:
        """Send the replies' messages from the `skip`th on; a notice outside the 24-hour
        window goes as a template instead. Raise a DeliveryError that says how many went
        out."""
        language = language or (row.language if row else None) \
            or self._conversations.default_language
        if row is not None and not window_open(row.last_inbound_at, utcnow()):
            return await self._send_template(chat_id, replies, row, pace)
        labels = Labels.of(self._catalog, language)
        # A row whose earlier send got no answer waits longer for this one's.
        answer_within = self._answer_within(row)
        part = 0
        last_id: str | None = None
        recipient = address(chat_id)
        for reply in replies:
            payloads, rest = render(reply, labels, has_number=has_number(chat_id))
            if rest is not None:
                self._remember(chat_id, rest)
            for payload in payloads:
                if part >= skip:
                    try:
                        last_id = await self._paced({**payload, **recipient}, pace,
                                                    answer_within)
                    except GraphError as exc:
                        if exc.code == OUTSIDE_WINDOW and row is not None:
                            return await self._send_template(chat_id, replies, row, pace)
                        raise _delivery_error(exc, part - skip) from None
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        raise _network_error(exc, part - skip) from None
                part += 1
        return Delivered(last_id, part)

    async def _paced(self, payload: dict[str, Any], pace: tuple[Pace, Done] | None,
                     answer_within: float) -> str | None:
        if pace is not None:
            await pace[0]()
        may_arrive_for = 0.0
        try:
            return await self._post(payload, answer_within)
        except TimeoutError as exc:
            if not isinstance(exc, aiohttp.ConnectionTimeoutError):
                # Meta may still be handling the request: as long again, say.
                may_arrive_for = answer_within
            raise
        finally:
            if pace is not None:
                pace[1](may_arrive_for)

    async def _send_template(self, chat_id: str, replies: Sequence[Reply], row: Claimed,
                             pace: tuple[Pace, Done] | None) -> Delivered:
        """Outside the window: the notice's own template with its text, or the generic
        one (once until the person writes) with the notice held for their next message."""
        name = self.templates.by_key.get(row.message_key or "")
        components: list[dict[str, Any]] = []
        if name:
            text = template_text("\n".join(r.text for r in replies))
            components = [{"type": "body", "parameters": [{"type": "text", "text": text}]}]
        elif row.held_before:
            # The person has been told there is news; the rest waits with it.
            raise Held("outside the 24-hour window")
        else:
            name = self.templates.fallback
        template: dict[str, Any] = {"name": name, "language": {"code": row.language}}
        if components:
            template["components"] = components
        try:
            message_id = await self._paced({**address(chat_id), "type": "template",
                                            "template": template}, pace,
                                           self._answer_within(row))
        except GraphError as exc:
            raise _delivery_error(exc, 0) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _network_error(exc, 0) from None
        if components:
            return Delivered(message_id, len(replies))
        raise Held("outside the 24-hour window: told there is news", message_id=message_id)

    def _remember(self, chat_id: str, page: Page) -> None:
        key = (chat_id, page.context)
        self._pages[key] = page
        self._pages.move_to_end(key)
        while len(self._pages) > PAGES_KEPT:
            self._pages.popitem(last=False)


def _network_error(exc: BaseException, sent: int) -> DeliveryError:
    if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
        # Sent, and no answer in time: Meta may have taken the message.
        return OutcomeUnknown("no answer in time: may have arrived", sent)
    return RetryLater("network error", sent, type(exc).__name__)


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether free-form messages still reach the person (24 hours after they wrote)."""
    return last_inbound_at is not None and now - last_inbound_at < HELD_AFTER


async def apply_status(connection: AsyncConnection, status: StatusChange, now: datetime
                       ) -> str | None:
    """Move the sent row the status is about forward (sent, delivered, read) or to
    failed; never back. Returns the chat of a failure's contact."""
    if status.status == "failed":
        code = status.error_codes[0] if status.error_codes else None
        sent = (OutboxMessage.platform_message_id == status.message_id,
                OutboxMessage.status == OutboxStatus.SENT)
        # The contact WhatsApp speaks of (the row may be another app's contact of the same
        # person, routed here): by the number the message went to, or the user id.
        known = [Contact.chat_id == status.recipient] if status.recipient else []
        if status.recipient_user_id:
            known += [Contact.chat_id == status.recipient_user_id,
                      Contact.platform_user_id == status.recipient_user_id]
        found = (await connection.execute(select(Contact.id, Contact.chat_id).where(
            Contact.channel == CHANNEL, or_(*known)).limit(1))).first() if known else None
        contact_id, chat = (found.id, found.chat_id) if found is not None else (None, None)
        if code == OUTSIDE_WINDOW:
            # Accepted as text, then refused: the window had closed. Send it again, which
            # now goes as a template.
            await connection.execute(
                update(OutboxMessage).where(*sent)
                .values(status=OutboxStatus.PENDING, next_attempt_at=now, parts_sent=0,
                        last_error="outside the 24-hour window"))
            if contact_id is not None:
                await connection.execute(
                    update(Contact).where(Contact.id == contact_id)
                    .values(last_inbound_at=None))
            return chat
        # Given up on: `gotong outbox` shows it with this reason.
        reason = f"whatsapp error {code}"
        if code == NOT_FOR_USER_ID:
            reason += ": not allowed to a username's user id"
        await connection.execute(
            update(OutboxMessage).where(*sent)
            .values(status=OutboxStatus.FAILED, last_error=reason,
                    failure=status_failure(code), failed_at=now))
        if code == UNDELIVERABLE and contact_id is not None:
            await mark_unreachable(connection, contact_id, now)
        return chat
    try:
        target = OutboxStatus(status.status)
    except ValueError:
        return None
    rank = _STATUS_ORDER.get(target)
    if rank is None:
        return None
    earlier = [s for s, r in _STATUS_ORDER.items() if r < rank]
    await connection.execute(
        update(OutboxMessage)
        .where(OutboxMessage.platform_message_id == status.message_id,
               OutboxMessage.status.in_(earlier))
        .values(status=target).execution_options(synchronize_session=False))
    return None


# --- the webhook's HTTP side ----------------------------------------------------------

WHATSAPP_CHANNEL = web.AppKey("whatsapp_channel", WhatsAppChannel)


async def whatsapp_verification(request: web.Request) -> web.Response:
    """Meta checks the webhook URL: echo the challenge if the token is ours."""
    channel = request.app[WHATSAPP_CHANNEL]
    query = request.query
    challenge = channel.verify(query.get("hub.mode"), query.get("hub.verify_token"),
                               query.get("hub.challenge"))
    if challenge is None:
        log.warning("refused a whatsapp webhook verification with a wrong token")
        raise web.HTTPForbidden()
    return web.Response(text=challenge)


async def whatsapp_webhook(request: web.Request) -> web.Response:
    """A signed notification: stored, answered 200 at once, processed afterwards."""
    channel = request.app[WHATSAPP_CHANNEL]
    body = await request.read()
    if not channel.signature_matches(body, request.headers.get(SIGNATURE_HEADER)):
        log.warning("refused a whatsapp webhook call without a valid signature")
        WEBHOOK_REFUSALS.labels(CHANNEL, "signature").inc()
        raise web.HTTPUnauthorized()
    try:
        payload = parse_json(body)
    except ValueError:
        WEBHOOK_REFUSALS.labels(CHANNEL, "not_json").inc()
        raise web.HTTPBadRequest(text="not JSON") from None
    try:
        await channel.accept_webhook(payload)
    except MalformedPayload:
        # Signed by Meta yet not a notification we know: retrying will not change it.
        log.warning("ignored a signed whatsapp webhook call that is not a notification")
        WEBHOOK_REFUSALS.labels(CHANNEL, "malformed").inc()
    return web.json_response({"ok": True})
