"""The message model shared by every channel.

A channel adapter turns a platform update into an `Incoming` and renders each `Reply`
natively; everything between is channel-agnostic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Kind(enum.StrEnum):
    TEXT = "text"
    CHOICE = "choice"  # a tapped button or list row
    COMMAND = "command"
    CONTACT = "contact"
    LOCATION = "location"
    PHOTO = "photo"
    STICKER = "sticker"
    VOICE = "voice"
    OTHER = "other"  # documents, videos, polls... anything we cannot read


@dataclass(frozen=True)
class Incoming:
    channel: str
    chat_id: str
    kind: Kind
    text: str = ""
    # For CHOICE: the question the button belonged to and the option tapped. Both come
    # from the client and are checked against the conversation before use.
    context: str | None = None
    option: str | None = None
    # For COMMAND: the command without its slash, lower case, and what followed it.
    command: str | None = None
    args: str = ""
    phone: str | None = None
    # True when the platform vouches that a shared contact is the sender's own number.
    phone_is_own: bool = False
    latitude: float | None = None
    longitude: float | None = None
    media_id: str | None = None
    language_hint: str | None = None
    # The sender's own number, when the platform gives it with every message (WhatsApp).
    sender_phone: str | None = None
    # The platform's lasting id of the sender, where the chat id is an address that can
    # change (WhatsApp's business-scoped user id beside the number, or instead of it): the
    # contact is found by either, and its address moves to `chat_id` when the message
    # carries a number (`sender_phone`).
    sender_user_id: str | None = None
    # When the person wrote it, where the platform's rules depend on it (WhatsApp's 24
    # hours): kept on the contact, and news held for the person is released.
    sent_at: datetime | None = None
    # The platform's own id of the update, for de-duplication.
    external_id: str | None = None


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    # Options are numbered across pages so that a typed number always means one option;
    # controls (next page, skip, done, back) have no number.
    number: int | None = None
    selected: bool = False


class Hint(enum.StrEnum):
    NONE = "none"
    SINGLE = "single"
    MULTI = "multi"
    CONTACT = "contact"
    LOCATION = "location"


@dataclass(frozen=True)
class Reply:
    text: str
    options: tuple[Option, ...] = ()
    controls: tuple[Option, ...] = ()
    hint: Hint = Hint.NONE
    # Identifies the question; adapters prefix option ids with it in button data.
    context: str | None = None
    # Label of the "share my number" (hint CONTACT) or "share my location" (hint LOCATION)
    # button.
    contact_label: str | None = None
    # Take away a reply keyboard (e.g. "share my number") the chat still shows.
    remove_keyboard: bool = False
    # The reply redraws the message whose button was tapped (a page turn, a toggle).
    edit: bool = False
    page: int = 0
    pages: int = 1
    # Set when the person chose this language: channels with a per-chat command menu
    # show it in that language from now on.
    language_chosen: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
