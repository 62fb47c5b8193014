"""Builders for WhatsApp Cloud API webhooks, to post to the bot's own aiohttp app in tests.

Each builder returns the whole envelope Meta posts, with one message (or one status)::

    {"object": "whatsapp_business_account",
     "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": {
         "messaging_product": "whatsapp",
         "metadata": {"display_phone_number": ..., "phone_number_id": ...},
         "contacts": [{"profile": {"name": ...}, "wa_id": ...}],
         "messages": [{"from": ..., "id": "wamid...", "timestamp": "1717000000", ...}]}}]}]}

A person with a WhatsApp username is known by a business-scoped user id (``"US.1349…"``):
:func:`with_user_id` adds it to an envelope (``messages[].from_user_id``,
``contacts[].user_id`` and ``contacts[].profile.username``) and, unless told to keep it, takes
their number out (``from`` and ``wa_id``), as Meta does when it withholds the number.  Events
that are not a person talking: :func:`reaction_message`, :func:`revoke_message`,
:func:`in_group`, and the system messages :func:`number_changed`, :func:`user_id_changed`
and :func:`identity_changed`.

:func:`combine` merges several envelopes into one, as Meta batches them.  :func:`post_webhook`
posts an envelope signed with ``X-Hub-Signature-256`` like Meta does, and
:func:`verification_query` gives the query of the subscription handshake (``GET``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from tests.fakes.whatsapp_api import ERROR_MESSAGES, new_wamid

__all__ = [
    "DISPLAY_PHONE_NUMBER",
    "PHONE_NUMBER_ID",
    "SIGNATURE_HEADER",
    "WABA_ID",
    "button_reply",
    "combine",
    "contacts_message",
    "identity_changed",
    "image_message",
    "in_group",
    "list_reply",
    "location_message",
    "number_changed",
    "post_webhook",
    "reaction_message",
    "revoke_message",
    "sign",
    "status_update",
    "text_message",
    "unsupported_message",
    "user_id_changed",
    "verification_query",
    "with_user_id",
]

JSONDict = dict[str, Any]

#: Same default as :class:`tests.fakes.whatsapp_api.FakeWhatsAppAPI`.
PHONE_NUMBER_ID = "1234567890"
DISPLAY_PHONE_NUMBER = "15550001234"
WABA_ID = "109876543210987"
DEFAULT_NAME = "Siti"
SIGNATURE_HEADER = "X-Hub-Signature-256"

# Titles Meta puts in ``errors[]`` of failed statuses and unsupported messages.
_ERROR_TITLES: Mapping[int, str] = {
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131051: "Message type unknown",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
}

# Media objects of the message types the bot does not handle (as Meta sends them).
_OTHER_TYPES: Mapping[str, JSONDict] = {
    "sticker": {"mime_type": "image/webp", "animated": False},
    "audio": {"mime_type": "audio/ogg; codecs=opus", "voice": True},
    "video": {"mime_type": "video/mp4"},
    "document": {"mime_type": "application/pdf", "filename": "file.pdf"},
}


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``: ``"sha256=" + hex HMAC-SHA256``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _now() -> str:
    return str(int(time.time()))


def _media_id() -> str:
    # Media ids are long decimal numbers.
    return str(10**15 + secrets.randbelow(9 * 10**15))


def _envelope(phone_number_id: str, value: JSONDict) -> JSONDict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_PHONE_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def _message_envelope(
    from_: str,
    kind: str,
    content: JSONDict,
    *,
    phone_number_id: str,
    name: str,
    message_id: str | None,
    timestamp: str | None,
) -> JSONDict:
    """An envelope with one message of ``kind``; ``content`` holds its type-specific keys."""
    message: JSONDict = {
        "from": from_,
        "id": message_id or new_wamid(),
        "timestamp": timestamp or _now(),
        **content,
        "type": kind,
    }
    return _envelope(
        phone_number_id,
        {"contacts": [{"profile": {"name": name}, "wa_id": from_}], "messages": [message]},
    )


def text_message(
    from_: str,
    body: str,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A text the person typed."""
    return _message_envelope(
        from_,
        "text",
        {"text": {"body": body}},
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def _interactive_reply(
    from_: str,
    kind: str,
    reply: JSONDict,
    *,
    context_id: str | None,
    phone_number_id: str,
    name: str,
    message_id: str | None,
    timestamp: str | None,
) -> JSONDict:
    # ``context`` names the bot's message whose button or row was tapped.
    content = {
        "context": {"from": DISPLAY_PHONE_NUMBER, "id": context_id or new_wamid()},
        "interactive": {"type": kind, kind: reply},
    }
    return _message_envelope(
        from_,
        "interactive",
        content,
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def button_reply(
    from_: str,
    id: str,  # named like Meta's field (shadows the builtin)
    title: str,
    *,
    context_id: str | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A tap on a reply button (``interactive.button_reply``)."""
    return _interactive_reply(
        from_,
        "button_reply",
        {"id": id, "title": title},
        context_id=context_id,
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def list_reply(
    from_: str,
    id: str,  # named like Meta's field (shadows the builtin)
    title: str,
    description: str = "",
    *,
    context_id: str | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A choice of a list row (``interactive.list_reply``); ``description`` only when set,
    like Meta."""
    reply: JSONDict = {"id": id, "title": title}
    if description:
        reply["description"] = description
    return _interactive_reply(
        from_,
        "list_reply",
        reply,
        context_id=context_id,
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def location_message(
    from_: str,
    latitude: float,
    longitude: float,
    name: str | None = None,
    address: str | None = None,
    *,
    sender_name: str = DEFAULT_NAME,
    phone_number_id: str = PHONE_NUMBER_ID,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A shared location; ``name`` and ``address`` are those of a chosen place (the sender's
    profile name is ``sender_name`` here)."""
    location: JSONDict = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        location["name"] = name
    if address is not None:
        location["address"] = address
    return _message_envelope(
        from_,
        "location",
        {"location": location},
        phone_number_id=phone_number_id,
        name=sender_name,
        message_id=message_id,
        timestamp=timestamp,
    )


def image_message(
    from_: str,
    media_id: str,
    caption: str | None = None,
    mime_type: str = "image/jpeg",
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A photo; the media itself would be fetched with ``media_id``."""
    image: JSONDict = {
        "mime_type": mime_type,
        "sha256": hashlib.sha256(media_id.encode()).hexdigest(),
        "id": media_id,
    }
    if caption is not None:
        image["caption"] = caption
    return _message_envelope(
        from_,
        "image",
        {"image": image},
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def contacts_message(
    from_: str,
    phone: str,
    formatted_name: str,
    *,
    wa_id: str | None = None,
    on_whatsapp: bool = True,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A shared contact card with one number.

    ``phone`` is kept as typed in the address book (e.g. ``"+62 812-3456-7890"``); ``wa_id``
    defaults to its digits and is left out when ``on_whatsapp`` is false, as Meta does for
    numbers without WhatsApp.
    """
    entry: JSONDict = {"phone": phone, "type": "CELL"}
    if on_whatsapp:
        entry["wa_id"] = wa_id if wa_id is not None else re.sub(r"\D", "", phone)
    first, _, last = formatted_name.partition(" ")
    card_name: JSONDict = {"formatted_name": formatted_name, "first_name": first}
    if last:
        card_name["last_name"] = last
    return _message_envelope(
        from_,
        "contacts",
        {"contacts": [{"name": card_name, "phones": [entry]}]},
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def unsupported_message(
    from_: str,
    type: str = "sticker",  # named like Meta's field (shadows the builtin)
    *,
    unsupported_type: str | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A message the bot does not handle.

    ``"sticker"``, ``"audio"`` (a voice note), ``"video"`` and ``"document"`` carry their media
    object like Meta's; ``"reaction"`` an emoji on an earlier message; ``"unsupported"`` is what
    Meta sends for types the Cloud API cannot deliver (with ``errors`` code 131051, and
    ``unsupported.type`` naming the kind when given, e.g. ``"revoke"`` for a deleted
    message).  Any other type gets a bare ``{"id": ...}`` object.
    """
    content: JSONDict
    if type == "unsupported":
        content = {
            "errors": [
                {
                    "code": 131051,
                    "title": _ERROR_TITLES[131051],
                    "message": _ERROR_TITLES[131051],
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ]
        }
        if unsupported_type is not None:
            content["unsupported"] = {"type": unsupported_type}
    elif type == "reaction":
        content = {"reaction": {"message_id": new_wamid(), "emoji": "\U0001f44d"}}
    else:
        media_id = _media_id()
        media = {
            **_OTHER_TYPES.get(type, {}),
            "sha256": hashlib.sha256(media_id.encode()).hexdigest(),
            "id": media_id,
        }
        content = {type: media}
    return _message_envelope(
        from_,
        type,
        content,
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def reaction_message(
    from_: str,
    reacted_to: str,
    emoji: str | None = "\U0001f44d",
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """A reaction to the bot's message ``reacted_to``; ``emoji=None`` is a reaction taken
    back (Meta leaves the ``emoji`` field out)."""
    reaction: JSONDict = {"message_id": reacted_to}
    if emoji is not None:
        reaction["emoji"] = emoji
    return _message_envelope(
        from_,
        "reaction",
        {"reaction": reaction},
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def revoke_message(
    from_: str,
    original_message_id: str,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    name: str = DEFAULT_NAME,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """The person deleted a message they sent (``type: "revoke"``)."""
    return _message_envelope(
        from_,
        "revoke",
        {"revoke": {"original_message_id": original_message_id}},
        phone_number_id=phone_number_id,
        name=name,
        message_id=message_id,
        timestamp=timestamp,
    )


def in_group(envelope: Mapping[str, Any], group_id: str = "120363041234567890") -> JSONDict:
    """The envelope's messages as written in a WhatsApp group (``group_id`` beside
    ``from``)."""
    envelope = copy.deepcopy(dict(envelope))
    for message in _messages(envelope):
        message["group_id"] = group_id
    return envelope


def _system_envelope(from_: str, system: JSONDict, *, phone_number_id: str,
                     message_id: str | None, timestamp: str | None) -> JSONDict:
    # System messages carry no contacts array.
    message: JSONDict = {"from": from_, "id": message_id or new_wamid(),
                         "timestamp": timestamp or _now(), "type": "system", "system": system}
    return _envelope(phone_number_id, {"messages": [message]})


def number_changed(
    old: str,
    new: str,
    *,
    new_user_id: str | None = None,
    previous_user_id: str | None = None,
    type: str = "user_changed_number",  # named like Meta's field (shadows the builtin)
    name: str = DEFAULT_NAME,
    phone_number_id: str = PHONE_NUMBER_ID,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """The person changed their number from ``old`` to ``new``: ``system.wa_id`` is the new
    one and ``system.user_id`` their new business-scoped user id (a new number brings a new
    one).  ``type`` may be the older ``"customer_changed_number"``."""
    system: JSONDict = {"body": f"User {name} changed from {old} to {new}", "wa_id": new,
                        "type": type}
    if new_user_id is not None:
        system["user_id"] = new_user_id
    if previous_user_id is not None:
        system["previous_user_id"] = previous_user_id
    return _system_envelope(old, system, phone_number_id=phone_number_id,
                            message_id=message_id, timestamp=timestamp)


def user_id_changed(
    old: str,
    new: str,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """Only the business-scoped user id of a person known by it changed (no number is
    shared): ``system.user_id`` is the new one, ``system.previous_user_id`` the old."""
    system: JSONDict = {"body": "User's business-scoped user id changed",
                        "type": "user_changed_user_id", "user_id": new,
                        "previous_user_id": old}
    message: JSONDict = {"from_user_id": old, "id": message_id or new_wamid(),
                         "timestamp": timestamp or _now(), "type": "system", "system": system}
    return _envelope(phone_number_id, {"messages": [message]})


def identity_changed(
    from_: str,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    message_id: str | None = None,
    timestamp: str | None = None,
) -> JSONDict:
    """The person's security code changed (a new phone, or WhatsApp reinstalled)."""
    system: JSONDict = {"body": "User's security code changed", "customer": from_,
                        "identity": secrets.token_urlsafe(16),
                        "type": "customer_identity_changed"}
    return _system_envelope(from_, system, phone_number_id=phone_number_id,
                            message_id=message_id, timestamp=timestamp)


def with_user_id(
    envelope: Mapping[str, Any],
    user_id: str,
    *,
    number: bool = False,
    username: str | None = "@siti",
) -> JSONDict:
    """The envelope as Meta sends it for a person with a business-scoped user id: the id in
    ``messages[].from_user_id`` and ``contacts[].user_id`` (and their ``username`` in the
    profile); their number (``from``, ``wa_id``) only when ``number`` is true."""
    envelope = copy.deepcopy(dict(envelope))
    for entry in envelope["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            for message in value.get("messages", []):
                message["from_user_id"] = user_id
                if not number:
                    message.pop("from", None)
            for contact in value.get("contacts", []):
                contact["user_id"] = user_id
                if username is not None:
                    contact.setdefault("profile", {})["username"] = username
                if not number:
                    contact.pop("wa_id", None)
    return envelope


def _messages(envelope: Mapping[str, Any]) -> list[JSONDict]:
    return [message for entry in envelope["entry"] for change in entry["changes"]
            for message in change["value"].get("messages", [])]


def _status_error(error: int | Mapping[str, Any]) -> JSONDict:
    if not isinstance(error, int):
        return dict(error)
    title = _ERROR_TITLES.get(error) or ERROR_MESSAGES.get(error, "Error").split(") ", 1)[-1]
    return {
        "code": error,
        "title": title,
        "message": title,
        "error_data": {"details": title},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


def status_update(
    recipient: str,
    message_id: str,
    status: str,
    errors: Sequence[int | Mapping[str, Any]] | None = None,
    timestamp: str | None = None,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> JSONDict:
    """A status of a message the bot sent: ``sent``, ``delivered``, ``read`` or ``failed``.

    ``errors`` are Graph error codes (expanded to ``{"code", "title", "message",
    "error_data", "href"}``) or whole error objects; a ``failed`` status without them gets
    131000.  ``sent`` and ``delivered`` carry ``conversation`` / ``pricing`` like Meta's.
    A ``recipient`` that is a business-scoped user id (a message sent with ``recipient``)
    goes in ``recipient_user_id``, and ``recipient_id`` is left out.
    """
    entry: JSONDict = {
        "id": message_id,
        "status": status,
        "timestamp": timestamp or _now(),
    }
    if recipient.isdigit():
        entry["recipient_id"] = recipient
    else:
        entry["recipient_user_id"] = recipient
    if status in ("sent", "delivered"):
        entry["conversation"] = {
            "id": secrets.token_hex(16),
            "origin": {"type": "service"},
        }
        entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if status == "failed" and not errors:
        errors = [131000]
    if errors:
        entry["errors"] = [_status_error(error) for error in errors]
    return _envelope(phone_number_id, {"statuses": [entry]})


def combine(*envelopes: Mapping[str, Any]) -> JSONDict:
    """One envelope holding the messages, statuses and contacts of all ``envelopes``.

    Changes for the same ``phone_number_id`` are merged into one ``value`` (contacts kept once
    per ``wa_id`` and ``user_id``), as Meta batches them; other numbers get their own change.
    """
    if not envelopes:
        raise ValueError("nothing to combine")
    values: dict[str, JSONDict] = {}
    for envelope in envelopes:
        for entry in envelope["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                phone_number_id = str(value["metadata"]["phone_number_id"])
                merged = values.get(phone_number_id)
                if merged is None:
                    values[phone_number_id] = copy.deepcopy(dict(value))
                    continue
                for key in ("messages", "statuses"):
                    if key in value:
                        merged.setdefault(key, []).extend(copy.deepcopy(value[key]))
                known = {(contact.get("wa_id"), contact.get("user_id"))
                         for contact in merged.get("contacts", [])}
                for contact in value.get("contacts", []):
                    key = (contact.get("wa_id"), contact.get("user_id"))
                    if key not in known:
                        merged.setdefault("contacts", []).append(copy.deepcopy(contact))
                        known.add(key)
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [{"field": "messages", "value": value} for value in values.values()],
            }
        ],
    }


async def post_webhook(
    session: aiohttp.ClientSession,
    url: str,
    payload: Mapping[str, Any] | bytes,
    app_secret: str | None,
    *,
    signature: str | None = None,
) -> tuple[int, str]:
    """POST a webhook like Meta does; return ``(HTTP status, body text)``.

    A mapping is serialised with ``json.dumps(...).encode()``; bytes are sent as they are (to
    test malformed bodies).  ``X-Hub-Signature-256`` is ``signature`` when given, else computed
    with ``app_secret``, and left out when both are ``None``.
    """
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is None and app_secret is not None:
        signature = sign(body, app_secret)
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


def verification_query(
    verify_token: str, challenge: str, mode: str = "subscribe"
) -> dict[str, str]:
    """Query parameters of Meta's subscription check (``GET`` on the webhook URL)."""
    return {"hub.mode": mode, "hub.verify_token": verify_token, "hub.challenge": challenge}
