"""What a channel can send, and how sending can fail, in terms every channel shares."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from gotong.handlers.messages import Reply
from gotong.models.outbox import Claimed

log = logging.getLogger(__name__)

# Waits for a slot under the platform's limits before each message, and frees it after.
Pace = Callable[[], Awaitable[None]]
Done = Callable[[], None]


class DeliveryError(Exception):
    """Sending failed after `sent` messages of the row had gone out.

    `reason` names the kind of failure and may be logged; `detail` is the platform's own
    description, which can quote what was sent, and is kept only with the outbox row.
    """

    def __init__(self, reason: str, sent: int = 0, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.detail = detail

    @property
    def description(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


class RetryLater(DeliveryError):
    """A network error, a server error, or flood control: try again later."""

    def __init__(self, reason: str, sent: int = 0, detail: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(reason, sent, detail)
        self.retry_after = retry_after


class Unreachable(DeliveryError):
    """The person blocked the bot or no longer exists on the platform."""


class Undeliverable(DeliveryError):
    """The platform refuses this message for good (it would refuse it again)."""


class Held(DeliveryError):
    """Not sent now: kept until the person writes (WhatsApp's 24-hour window closed).

    `message_id` is that of the template telling them there is news, if one was sent.
    """

    def __init__(self, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.message_id = message_id


@dataclass(frozen=True)
class Delivered:
    """Every message of the row went out; the platform's id of the last one."""

    message_id: str | None
    parts_sent: int  # messages of the row in all, those of earlier attempts included


class Sender(Protocol):
    """A channel, as the dispatcher sees it."""

    channel: str

    async def deliver(self, chat_id: str, replies: Sequence[Reply], *, skip: int = 0,
                      edit_message_id: int | None = None,
                      pace: tuple[Pace, Done] | None = None, language: str | None = None,
                      row: Claimed | None = None) -> Delivered:
        """Send the replies' messages from the `skip`th on; raise a DeliveryError.

        `row` is the outbox row being sent, when the dispatcher sends it.
        """
        ...


class Channel(Sender, Protocol):
    """A chat app as the composition root sees it: it sends, takes updates between
    `start` and `stop`, and serves its webhook (or sockets) on the process's web app."""

    outbox: ReplyOutbox | None

    async def start(self) -> None:
        """Start taking updates (and serving the replies to them)."""
        ...

    async def open_for_sending(self) -> None:
        """Connect for sending only (a dispatcher process): no updates are taken."""
        ...

    async def stop(self) -> None:
        ...

    def add_routes(self, app: web.Application) -> None:
        """Its routes on the process's web app (none where it takes no webhook)."""
        ...


class ReplyOutbox(Protocol):
    """Where a channel settles the outbox row of a direct reply it sent itself."""

    def pace_reply(self, channel: str, chat_id: str) -> tuple[Pace, Done]:
        """Slot-keeping for a reply: within the channel's overall limit."""
        ...

    def settle_reply(self, row_id: int, contact_id: int, channel: str,
                     outcome: Delivered | DeliveryError) -> None:
        ...

    def wake(self) -> None:
        """Rows are due now (released by a person's message, say)."""
        ...


def split_text(text: str, limit: int) -> list[str]:
    """Cut text into messages of at most `limit` characters, at line breaks where
    possible."""
    chunks = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
        chunks.append(text[:cut])
        text = text[cut:].lstrip("\n")
    chunks.append(text)
    return chunks


async def send_reply(sender: Sender, outbox: ReplyOutbox | None, chat_id: str,
                     replies: Sequence[Reply], reply_id: int | None, contact_id: int, *,
                     edit_message_id: int | None = None, language: str | None = None) -> None:
    """Send the answer to an update, within the channel's limits, and settle its outbox
    row; a reply that cannot go now is left to the dispatcher."""
    if not replies:
        return
    pace = outbox.pace_reply(sender.channel, chat_id) if outbox is not None else None
    outcome: Delivered | DeliveryError
    try:
        outcome = await sender.deliver(chat_id, replies, edit_message_id=edit_message_id,
                                       pace=pace, language=language)
    except DeliveryError as exc:
        log.info("a reply could not be sent now (%s)", exc.reason)
        outcome = exc
    if outbox is not None and reply_id is not None:
        outbox.settle_reply(reply_id, contact_id, sender.channel, outcome)
