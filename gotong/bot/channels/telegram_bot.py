"""python-telegram-bot's bot, with the two calls of the hot path answered as plain JSON.

Every update costs a getUpdates share (in polling mode) and at least one sendMessage. PTB
turns each answer into objects: the sent `Message` (with its chat, sender and keyboard),
and each `Update` of a batch, which the channel then had to turn back into a dict to
store it. Gotong reads only the sent message's id, and stores updates as Telegram sent
them, so these two calls keep PTB's request building, timeouts and error mapping
(`RetryAfter`, `Forbidden`, `TimedOut`, ...) and skip only the parsing: a third of the
CPU the Telegram side of an update took.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telegram import InlineKeyboardMarkup, ReplyKeyboardMarkup, ReplyKeyboardRemove
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import ExtBot

from gotong.bot.channels.delivery import ApiWatch
from gotong.bot.channels.http import AiohttpRequest

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


class LeanBot(ExtBot[None]):
    def __init__(self, token: str, *, base_url: str, base_file_url: str,
                 request: AiohttpRequest, get_updates_request: AiohttpRequest) -> None:
        super().__init__(token, base_url=base_url, base_file_url=base_file_url,
                         request=request, get_updates_request=get_updates_request)
        self._polling_request = get_updates_request
        # Every call tells whether Telegram answers (for /readyz); getMe when idle. (PTB
        # freezes a bot's public attributes.)
        self._watch = ApiWatch(self.get_me)

    @property
    def watch(self) -> ApiWatch:
        return self._watch

    async def _post(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await super()._post(*args, **kwargs)
        except TelegramError as exc:
            if _answered(exc):
                self._watch.answered()
            raise
        self._watch.answered()
        return result

    async def send_text(self, chat_id: int, text: str, reply_markup: Markup | None,
                        read_timeout: float) -> int:
        """Send a text message; the id Telegram gave it."""
        result = await self._post(
            "sendMessage", {"chat_id": chat_id, "text": text, "reply_markup": reply_markup},
            read_timeout=read_timeout)
        return int(result["message_id"])

    async def get_update_payloads(self, offset: int | None, wait_seconds: int,
                                  allowed_updates: Sequence[str]) -> list[dict[str, Any]]:
        """The next updates, as Telegram sent them (`getUpdates`, long polling)."""
        result = await self._post(
            "getUpdates",
            {"offset": offset, "timeout": wait_seconds, "allowed_updates": list(allowed_updates)},
            # The call waits up to `wait_seconds` for updates before it answers.
            read_timeout=self._polling_request.read_timeout + wait_seconds)
        if not isinstance(result, list):
            raise TypeError("getUpdates did not answer with a list")
        return result


def _answered(exc: TelegramError) -> bool:
    """Whether an error is Telegram's answer (a refusal, a flood limit) rather than no
    answer at all (the network, a time-out, a token it no longer knows)."""
    if isinstance(exc, InvalidToken):
        return False
    # PTB's BadRequest is a NetworkError too, but it is Telegram's own answer.
    return isinstance(exc, BadRequest) or not isinstance(exc, NetworkError)
