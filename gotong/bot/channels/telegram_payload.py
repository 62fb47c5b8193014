"""The shape of what Telegram sends, checked before an update is stored.

Telegram sends well-formed updates, but a bug or a proxy in between could send anything
with the right secret. An update that Gotong cannot read must not be stored: it would
fail each time it is handled, or, with a chat id that is not a number, create a contact
that no message can reach. So each update is inspected once, as the dict the webhook's
JSON or the polling request gave, for what Gotong reads of it, and routed:

- `PERSON`: a person writing or tapping a button in a private chat; the conversations
  answer it.
- `GROUP`: a group or supergroup the bot is in (it was added, or someone wrote there);
  the bot says once that it works in private chats only, and leaves.
- `RECORD`: everything else (an edited message, a channel post, a message from a bot, a
  tap on a message that is not in a chat, a person blocking the bot, kinds Gotong does
  not know): recorded as seen only, so that a replay of it is a no-op.

A `Malformed` update is not stored at all. The checks are type tests and bounds on values
already in hand: no database, and no second parse of the JSON. Reasons name the field and
never its value, which may be personal data.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

# Telegram's ids have at most 52 significant bits; a double holds them exactly.
MAX_ID = 2**53
# A message's text and a caption are at most 4096 characters (in UTF-16 units, never
# fewer than Python's characters).
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
# Generous bounds on fields Telegram keeps short.
MAX_SHORT = 256
MAX_ENTITIES = 1000
MAX_PHOTO_SIZES = 20
# A Unix time up to the year 2514: a date the library turns into a datetime.
MAX_DATE = 2**34
# Tuples, not sets: the library's own dicts (of a polled update) hold its string enums,
# equal to their values but hashed by their names.
GROUPS = ("group", "supergroup")
# What the bot's membership is when it was added to a chat (or is still in it).
MEMBER = ("member", "administrator", "restricted")


class Route(enum.Enum):
    PERSON = "person"
    GROUP = "group"
    RECORD = "record"


class Inspected(NamedTuple):
    # A named tuple: built for every update, at a fraction of a frozen dataclass's cost.
    update_id: int
    route: Route
    # The chat whose queue the update joins ("" for those only recorded).
    chat_id: str = ""
    # The sender's app language, as Telegram gives it.
    language: str | None = None
    # What it is, for the log: the update's kind, and why it is only recorded.
    what: str = ""


class Malformed(ValueError):
    """An update Gotong cannot read; `reason` names what is wrong, never a value."""

    def __init__(self, reason: str, update_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.update_id = update_id


def _is_id(value: object) -> bool:
    # bool is an int to Python, not to Telegram.
    return type(value) is int and value != 0 and -MAX_ID < value < MAX_ID


def _is_count(value: object, limit: int) -> bool:
    return type(value) is int and 0 <= value < limit


def _is_text(value: object, limit: int) -> bool:
    # isinstance: the library's string enums are strings too.
    return isinstance(value, str) and len(value) <= limit \
        and (value.isascii() or _utf8_size(value) is not None)


def _utf8_size(text: str) -> int | None:
    """Its size in UTF-8; None for a string holding a lone surrogate (JSON can carry
    one; Telegram never sends one), which no message, log or database could take."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def _chat(chat: object, where: str) -> tuple[int, str]:
    if type(chat) is not dict:
        raise Malformed(f"{where}.chat is not an object")
    chat_id, chat_type = chat.get("id"), chat.get("type")
    if not _is_id(chat_id):
        raise Malformed(f"{where}.chat.id is not a Telegram id")
    if not _is_text(chat_type, MAX_SHORT):
        raise Malformed(f"{where}.chat.type is not a string")
    return chat_id, chat_type  # type: ignore[return-value]


def _user(user: object, where: str) -> tuple[bool, str | None]:
    """Whether the user is a bot, and their app's language."""
    if type(user) is not dict:
        raise Malformed(f"{where}.from is not an object")
    if not _is_id(user.get("id")) or user["id"] < 0:
        raise Malformed(f"{where}.from.id is not a user id")
    is_bot = user.get("is_bot")
    if type(is_bot) is not bool:
        raise Malformed(f"{where}.from.is_bot is not a boolean")
    if not _is_text(user.get("first_name"), MAX_SHORT):
        raise Malformed(f"{where}.from.first_name is not a string")
    language = user.get("language_code")
    if language is not None and not _is_text(language, MAX_SHORT):
        raise Malformed(f"{where}.from.language_code is not a string")
    return is_bot, language


def _message_head(message: object, where: str) -> tuple[dict[str, Any], int, str]:
    """What every message has: its id, date and chat."""
    if type(message) is not dict:
        raise Malformed(f"{where} is not an object")
    if not _is_count(message.get("message_id"), MAX_ID):
        raise Malformed(f"{where}.message_id is not a message id")
    if not _is_count(message.get("date"), MAX_DATE):
        raise Malformed(f"{where}.date is not a Unix time")
    chat_id, chat_type = _chat(message.get("chat"), where)
    return message, chat_id, chat_type


def _entities(entities: object, where: str) -> None:
    if entities is None:
        return
    if type(entities) is not list or len(entities) > MAX_ENTITIES:
        raise Malformed(f"{where} is not a list of entities")
    for entity in entities:
        if type(entity) is not dict or not _is_text(entity.get("type"), MAX_SHORT) \
                or not _is_count(entity.get("offset"), MAX_ID) \
                or not _is_count(entity.get("length"), MAX_ID):
            raise Malformed(f"{where} holds a malformed entity")


def _coordinate(value: object, bound: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and -bound <= value <= bound


def _content(message: dict[str, Any]) -> None:
    """The parts of a private message that the conversations read."""
    text = message.get("text")
    if text is not None:
        if not _is_text(text, MAX_TEXT):
            raise Malformed("message.text is not a string of at most 4096 characters")
        _entities(message.get("entities"), "message.entities")
        # A message with a text has nothing else that is read (the library still reads
        # all of it, and refuses what it cannot).
        return
    caption = message.get("caption")
    if caption is not None:
        if not _is_text(caption, MAX_TEXT):
            raise Malformed("message.caption is not a string of at most 4096 characters")
        _entities(message.get("caption_entities"), "message.caption_entities")
    contact = message.get("contact")
    if contact is not None:
        if type(contact) is not dict or not _is_text(contact.get("phone_number"), MAX_SHORT) \
                or not _is_text(contact.get("first_name"), MAX_SHORT):
            raise Malformed("message.contact is not a contact")
        user_id = contact.get("user_id")
        if user_id is not None and not _is_id(user_id):
            raise Malformed("message.contact.user_id is not a user id")
    location = message.get("location")
    if location is not None and (
            type(location) is not dict or not _coordinate(location.get("latitude"), 90)
            or not _coordinate(location.get("longitude"), 180)):
        raise Malformed("message.location is not a location")
    photo = message.get("photo")
    if photo is not None:
        if type(photo) is not list or not 0 < len(photo) <= MAX_PHOTO_SIZES:
            raise Malformed("message.photo is not a list of sizes")
        for size in photo:
            if type(size) is not dict or not _is_text(size.get("file_id"), MAX_SHORT) \
                    or not _is_text(size.get("file_unique_id"), MAX_SHORT) \
                    or not _is_count(size.get("width"), MAX_ID) \
                    or not _is_count(size.get("height"), MAX_ID):
                raise Malformed("message.photo holds a malformed size")
    for kind in ("sticker", "voice", "audio", "video_note"):
        value = message.get(kind)
        if value is not None and type(value) is not dict:
            raise Malformed(f"message.{kind} is not an object")


def _message(update_id: int, value: object) -> Inspected:
    message, chat_id, chat_type = _message_head(value, "message")
    if chat_type in GROUPS:
        sender = message.get("from")
        language = _user(sender, "message")[1] if sender is not None else None
        return Inspected(update_id, Route.GROUP, str(chat_id), language, "message")
    if chat_type != "private":
        return Inspected(update_id, Route.RECORD, what="message outside a private chat")
    is_bot, language = _user(message.get("from"), "message")
    if chat_id < 0:
        raise Malformed("message.chat.id is not that of a private chat")
    if is_bot:
        return Inspected(update_id, Route.RECORD, what="message from a bot")
    _content(message)
    return Inspected(update_id, Route.PERSON, str(chat_id), language, "message")


def _callback_query(update_id: int, query: object) -> Inspected:
    if type(query) is not dict:
        raise Malformed("callback_query is not an object")
    if not _is_text(query.get("id"), MAX_SHORT) \
            or not _is_text(query.get("chat_instance"), MAX_SHORT):
        raise Malformed("callback_query has no id")
    is_bot, language = _user(query.get("from"), "callback_query")
    data = query.get("data")
    if data is not None:
        size = _utf8_size(data) if isinstance(data, str) \
            and len(data) <= MAX_CALLBACK_DATA else None
        if size is None or size > MAX_CALLBACK_DATA:
            raise Malformed("callback_query.data is not a string of at most 64 bytes")
    if query.get("message") is None:
        # A tap on a message sent in inline mode, which Gotong never sends.
        return Inspected(update_id, Route.RECORD, what="callback_query without a message")
    _, chat_id, chat_type = _message_head(query["message"], "callback_query.message")
    if chat_type in GROUPS:
        return Inspected(update_id, Route.GROUP, str(chat_id), language, "callback_query")
    if chat_type != "private":
        return Inspected(update_id, Route.RECORD,
                         what="callback_query outside a private chat")
    if chat_id < 0:
        raise Malformed("callback_query.message.chat.id is not that of a private chat")
    if is_bot:
        return Inspected(update_id, Route.RECORD, what="callback_query from a bot")
    return Inspected(update_id, Route.PERSON, str(chat_id), language, "callback_query")


def _my_chat_member(update_id: int, change: object) -> Inspected:
    if type(change) is not dict:
        raise Malformed("my_chat_member is not an object")
    chat_id, chat_type = _chat(change.get("chat"), "my_chat_member")
    language = _user(change.get("from"), "my_chat_member")[1]
    member = change.get("new_chat_member")
    if type(member) is not dict or not _is_text(member.get("status"), MAX_SHORT):
        raise Malformed("my_chat_member.new_chat_member has no status")
    if chat_type in GROUPS and member["status"] in MEMBER:
        return Inspected(update_id, Route.GROUP, str(chat_id), language, "my_chat_member")
    # The bot was removed from a group, or a person blocked or unblocked it.
    return Inspected(update_id, Route.RECORD, what="my_chat_member")


_READERS: dict[str, Callable[[int, object], Inspected]] = {
    "message": _message,
    "callback_query": _callback_query,
    "my_chat_member": _my_chat_member,
}


def inspect_update(payload: object) -> Inspected:
    """What an update is and where it goes; Malformed if Gotong cannot read it."""
    if type(payload) is not dict:
        raise Malformed("not an object")
    update_id = payload.get("update_id")
    if type(update_id) is not int or not 0 <= update_id < MAX_ID:
        raise Malformed("update_id is not a non-negative integer")
    # An update has its id and one field naming its kind.
    for kind, value in payload.items():
        if kind == "update_id":
            continue
        reader = _READERS.get(kind)
        if reader is None:
            # A kind Gotong does not answer (an edited message, a channel post...) or
            # does not know.
            return Inspected(update_id, Route.RECORD, what=str(kind)[:32])
        try:
            return reader(update_id, value)
        except Malformed as exc:
            exc.update_id = update_id
            raise
    return Inspected(update_id, Route.RECORD, what="empty update")


def log_malformed(exc: Malformed) -> None:
    log.warning("ignored a malformed telegram update %s: %s",
                exc.update_id if exc.update_id is not None else "without an id", exc.reason)


# --- the library's own log lines --------------------------------------------------------

# Lines python-telegram-bot logs with what Telegram sent in full (at CRITICAL and ERROR,
# above the level its loggers are kept at), which holds what people wrote: logged without.
_LINES_WITH_DATA = {
    "Error while parsing updates! Received data was %r":
        "Error while parsing updates (what Telegram sent is not logged)",
    'Can not load invalid JSON data: "%s"':
        "Can not load invalid JSON data (not logged)",
}
_LIBRARY_LOGGERS = ("telegram.Bot", "telegram.ext.ExtBot", "telegram.request.BaseRequest")


def _redact(record: logging.LogRecord) -> bool:
    bare = _LINES_WITH_DATA.get(record.msg) if isinstance(record.msg, str) else None
    if bare is not None:
        record.msg, record.args = bare, None
    return True


def redact_library_logs() -> None:
    """Keep what Telegram sent out of the library's log lines (idempotent)."""
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _redact not in logger.filters:
            logger.addFilter(_redact)
