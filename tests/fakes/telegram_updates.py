"""Factories for Telegram ``Update`` dicts, shaped exactly like the Bot API sends them.

Every dict parses with ``telegram.Update.de_json(update, bot)``.  Messages are in private chats,
where the chat id equals the user id; ``date`` is an integer Unix time.  Feed them to
:meth:`tests.fakes.telegram_api.FakeTelegramAPI.push_update` or POST them to a webhook::

    updates = UpdateFactory()
    siti = TgUser(id=111)
    fake.push_update(updates.command(siti, "start"))
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["TgUser", "UpdateFactory"]

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class TgUser:
    """A Telegram user: a person, unless ``is_bot``."""

    id: int
    first_name: str = "Siti"
    language_code: str | None = "id"
    username: str | None = None
    last_name: str | None = None
    is_bot: bool = False

    def to_dict(self) -> JSONDict:
        """The ``User`` object as Telegram sends it (absent fields are omitted)."""
        user: JSONDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name is not None:
            user["last_name"] = self.last_name
        if self.username is not None:
            user["username"] = self.username
        if self.language_code is not None:
            user["language_code"] = self.language_code
        return user

    def private_chat(self) -> JSONDict:
        """The ``Chat`` object of the private chat with this user (chat id == user id)."""
        chat: JSONDict = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name is not None:
            chat["last_name"] = self.last_name
        if self.username is not None:
            chat["username"] = self.username
        return chat


def _utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets and lengths."""
    return len(text.encode("utf-16-le")) // 2


class UpdateFactory:
    """Builds ``Update`` dicts with increasing ``update_id`` (and message ids per chat).

    ``bot_id`` / ``bot_username`` describe the bot that sent the messages callback queries are
    attached to; the defaults match :class:`~tests.fakes.telegram_api.FakeTelegramAPI`.
    """

    def __init__(
        self,
        start_id: int = 1000,
        *,
        bot_id: int = 123456,
        bot_username: str = "gotong_test_bot",
        bot_first_name: str = "Gotong Test",
    ) -> None:
        self._update_ids = itertools.count(start_id)
        self._callback_ids = itertools.count(1)
        self._last_message_id: dict[int, int] = {}
        self.bot: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }

    # ------------------------------------------------------------------ building blocks

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def next_message_id(self, chat_id: int) -> int:
        """Next id of a message the user sends in ``chat_id`` (1, 2, 3... per chat)."""
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def message(self, user: TgUser, **content: Any) -> JSONDict:
        """A ``Message`` dict the user sends in the private chat, with ``content`` merged in."""
        return {
            "message_id": self.next_message_id(user.id),
            "from": user.to_dict(),
            "chat": user.private_chat(),
            "date": int(time.time()),
            **content,
        }

    def raw(self, **fields: Any) -> JSONDict:
        """An arbitrary update: ``fields`` with the next ``update_id``."""
        return {"update_id": self.next_update_id(), **fields}

    def _message_update(self, user: TgUser, **content: Any) -> JSONDict:
        return self.raw(message=self.message(user, **content))

    # ------------------------------------------------------------------ messages

    def text(self, user: TgUser, text: str) -> JSONDict:
        """A text message; a leading ``/command`` gets its ``bot_command`` entity."""
        content: JSONDict = {"text": text}
        if text.startswith("/") and len(text) > 1:
            command = text.split(maxsplit=1)[0]
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        return self._message_update(user, **content)

    def command(self, user: TgUser, command: str, args: str = "") -> JSONDict:
        """``/command args`` (the leading slash of ``command`` is optional)."""
        text = "/" + command.removeprefix("/")
        if args:
            text += " " + args
        return self.text(user, text)

    def contact(self, user: TgUser, phone_number: str, own: bool = True) -> JSONDict:
        """A shared contact: the user's own (``user_id`` set) or someone else's."""
        contact: JSONDict = {"phone_number": phone_number}
        if own:
            contact["first_name"] = user.first_name
            if user.last_name is not None:
                contact["last_name"] = user.last_name
            contact["user_id"] = user.id
        else:
            contact["first_name"] = "Budi"
        return self._message_update(user, contact=contact)

    def photo(self, user: TgUser, caption: str | None = None) -> JSONDict:
        """A photo, as the usual list of sizes (smallest first)."""
        sizes = [
            {
                "file_id": f"AgACAgUAAxkBAAI{side}",
                "file_unique_id": f"AQADp{side}",
                "file_size": side * 40,
                "width": side,
                "height": side * 3 // 4,
            }
            for side in (90, 320, 800, 1280)
        ]
        content: JSONDict = {"photo": sizes}
        if caption is not None:
            content["caption"] = caption
        return self._message_update(user, **content)

    def sticker(self, user: TgUser) -> JSONDict:
        """A regular static sticker with its thumbnail."""
        sticker: JSONDict = {
            "file_id": "CAACAgIAAxkBAAIBQmZ",
            "file_unique_id": "AgADsticker",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
            "set_name": "HotCherry",
            "file_size": 24576,
            "thumbnail": {
                "file_id": "AAMCAgADGQEAAgFCZ",
                "file_unique_id": "AQADthumb",
                "file_size": 5120,
                "width": 128,
                "height": 128,
            },
        }
        return self._message_update(user, sticker=sticker)

    def voice(self, user: TgUser, duration: int = 3) -> JSONDict:
        """A voice note (OGG/Opus)."""
        voice: JSONDict = {
            "file_id": "AwACAgUAAxkBAAIBvoice",
            "file_unique_id": "AgADvoice",
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": 9000 * duration,
        }
        return self._message_update(user, voice=voice)

    def location(self, user: TgUser, latitude: float, longitude: float) -> JSONDict:
        """A (static) location pin."""
        return self._message_update(user, location={"latitude": latitude, "longitude": longitude})

    def document(
        self,
        user: TgUser,
        file_name: str = "surat.pdf",
        mime_type: str = "application/pdf",
    ) -> JSONDict:
        """A file sent as a document."""
        document: JSONDict = {
            "file_id": "BQACAgUAAxkBAAIBdocument",
            "file_unique_id": "AgADdocument",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": 48213,
        }
        return self._message_update(user, document=document)

    def edited_text(self, user: TgUser, text: str, message_id: int | None = None) -> JSONDict:
        """``edited_message``: the user edited a text message (by default their latest one)."""
        if message_id is None:
            message_id = self._last_message_id.get(user.id) or self.next_message_id(user.id)
        now = int(time.time())
        edited: JSONDict = {
            "message_id": message_id,
            "from": user.to_dict(),
            "chat": user.private_chat(),
            "date": now - 60,
            "edit_date": now,
            "text": text,
        }
        return self.raw(edited_message=edited)

    def channel_post(self, channel_id: int, text: str) -> JSONDict:
        """``channel_post``: a post in a channel the bot is an administrator of."""
        return self.raw(channel_post={
            "message_id": self.next_message_id(channel_id),
            "sender_chat": {"id": channel_id, "type": "channel", "title": "Info Warga"},
            "chat": {"id": channel_id, "type": "channel", "title": "Info Warga"},
            "date": int(time.time()),
            "text": text,
        })

    # ------------------------------------------------------------------ groups

    @staticmethod
    def group_chat(group_id: int, chat_type: str = "group") -> JSONDict:
        """The ``Chat`` of a group (negative id; supergroups' start with -100)."""
        return {"id": group_id, "type": chat_type, "title": "Warga RT 03"}

    def group_text(self, user: TgUser, group_id: int, text: str,
                   chat_type: str = "group") -> JSONDict:
        """A text the user writes in a group the bot is in."""
        message: JSONDict = {
            "message_id": self.next_message_id(group_id),
            "from": user.to_dict(),
            "chat": self.group_chat(group_id, chat_type),
            "date": int(time.time()),
            "text": text,
        }
        return self.raw(message=message)

    def my_chat_member(self, user: TgUser, chat: JSONDict, old_status: str,
                       new_status: str) -> JSONDict:
        """``my_chat_member``: ``user`` changed the bot's membership of ``chat`` (added it
        to a group: "left" -> "member"; blocked it in private: "member" -> "kicked")."""
        bot = dict(self.bot)
        change: JSONDict = {
            "chat": chat,
            "from": user.to_dict(),
            "date": int(time.time()),
            "old_chat_member": {"user": bot, "status": old_status},
            "new_chat_member": {"user": bot, "status": new_status},
        }
        if new_status == "kicked":
            change["new_chat_member"]["until_date"] = 0
        return self.raw(my_chat_member=change)

    def bot_added(self, user: TgUser, group_id: int, chat_type: str = "group") -> JSONDict:
        """The user added the bot to a group."""
        return self.my_chat_member(user, self.group_chat(group_id, chat_type), "left",
                                   "member")

    # ------------------------------------------------------------------ callback queries

    def callback(
        self,
        user: TgUser,
        data: str,
        message_id: int,
        message_text: str = "...",
        reply_markup: JSONDict | None = None,
    ) -> JSONDict:
        """The user pressed an inline button with ``data`` under the bot's message
        ``message_id`` (whose text is ``message_text``)."""
        message: JSONDict = {
            "message_id": message_id,
            "from": dict(self.bot),
            "chat": user.private_chat(),
            "date": int(time.time()),
            "text": message_text,
        }
        if reply_markup is not None:
            message["reply_markup"] = reply_markup
        query: JSONDict = {
            "id": f"{user.id}{next(self._callback_ids):08d}",
            "from": user.to_dict(),
            "message": message,
            "chat_instance": str(-(abs(user.id) * 7919 % 10**18) - 1),
            "data": data,
        }
        return self.raw(callback_query=query)

    def inline_callback(self, user: TgUser, data: str) -> JSONDict:
        """A tap on a button of a message sent in inline mode: no ``message``, only its
        ``inline_message_id``."""
        return self.raw(callback_query={
            "id": f"{user.id}{next(self._callback_ids):08d}",
            "from": user.to_dict(),
            "inline_message_id": "AgAAAEl9AQBnY2Ff",
            "chat_instance": "-5",
            "data": data,
        })
