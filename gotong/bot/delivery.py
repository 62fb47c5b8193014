"""What a channel can send, and how sending can fail, in terms every channel shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gotong.handlers.messages import Reply
from gotong.models.outbox import Claimed

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
