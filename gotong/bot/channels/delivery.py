"""What a channel can send, and how sending can fail, in terms every channel shares."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from aiohttp import web

from gotong.handlers.messages import Reply
from gotong.models.outbox import Claimed, Failure

log = logging.getLogger(__name__)

# Waits for a slot under the platform's limits before each message, and frees it after.
Pace = Callable[[], Awaitable[None]]


class Done(Protocol):
    def __call__(self, may_arrive_for: float = 0.0) -> None:
        """The message's request has ended. A request whose answer never came may still
        reach the platform for `may_arrive_for` seconds: its slot stays taken till then."""
        ...


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


class OutcomeUnknown(RetryLater):
    """The platform did not answer in time: the message may have arrived or not.

    Sent again, once, with a longer wait for the answer; never counted as a failure.
    """


class NotOurs(DeliveryError):
    """The row's lease is no longer this process's (it was held up past it): another
    process sends the row now, so this one must neither send nor settle it."""


class Unreachable(DeliveryError):
    """The person blocked the bot or no longer exists on the platform."""


class Undeliverable(DeliveryError):
    """The platform refuses this message for good (it would refuse it again); `failure`
    says why in the word staff are shown."""

    def __init__(self, reason: str, sent: int = 0, detail: str = "",
                 failure: Failure = Failure.REFUSED) -> None:
        super().__init__(reason, sent, detail)
        self.failure = failure


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

    async def api_problem(self) -> str | None:
        """What keeps its API from answering (for /readyz); None when it answers."""
        ...


class ApiWatch:
    """When a chat app's API last answered, and a probe for when that was too long ago: an
    app that is busy is known to answer without asking it anything."""

    def __init__(self, probe: Callable[[], Awaitable[object]], fresh_seconds: float = 60.0,
                 probe_seconds: float = 5.0) -> None:
        self._probe = probe
        self.fresh_seconds = fresh_seconds
        self._probe_seconds = probe_seconds
        self._answered_at: float | None = None

    def answered(self) -> None:
        self._answered_at = time.monotonic()

    async def problem(self) -> str | None:
        """None if the API answered within the last minute or answers a probe now."""
        at = self._answered_at
        if at is not None and time.monotonic() - at < self.fresh_seconds:
            return None
        try:
            async with asyncio.timeout(self._probe_seconds):
                await self._probe()
        except Exception as exc:
            return f"no answer ({type(exc).__name__})"
        self.answered()
        return None


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


# A row is not sent in the last moments of its lease: another process may take it then.
LEASE_MARGIN = timedelta(seconds=2)


def still_leased(lease_until: datetime, now: datetime, lease: timedelta) -> bool:
    """Whether a row leased until then may still be sent now: not once its lease is near
    its end (a process held up, by a pause or a slow database, must not send what another
    may be sending)."""
    return now < lease_until - min(LEASE_MARGIN, lease / 4)


def _within_lease(pace: tuple[Pace, Done], lease_until: datetime, lease: timedelta,
                  clock: Callable[[], datetime]) -> tuple[Pace, Done]:
    """The pace of a reply that is sent only while its row's lease holds, checked after
    the wait for a slot, just before each message goes."""
    acquire, release = pace

    async def acquire_within() -> None:
        await acquire()
        if not still_leased(lease_until, clock(), lease):
            release()
            raise NotOurs("the reply's lease ran out")

    return acquire_within, release


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
                     edit_message_id: int | None = None, language: str | None = None,
                     lease: tuple[datetime, timedelta, Callable[[], datetime]] | None = None
                     ) -> bool:
    """Send the answer to an update, within the channel's limits, and settle its outbox
    row; a reply that cannot go now is left to the dispatcher. With `lease` (the row's
    lease end, its length, and the clock that set it) nothing is sent once it is over.

    Returns whether the answer went out (or there was none): if not, the chat's next
    answer must wait for it."""
    if not replies:
        return True
    pace = outbox.pace_reply(sender.channel, chat_id) if outbox is not None else None
    if pace is not None and lease is not None:
        pace = _within_lease(pace, *lease)
    outcome: Delivered | DeliveryError
    try:
        outcome = await sender.deliver(chat_id, replies, edit_message_id=edit_message_id,
                                       pace=pace, language=language)
    except NotOurs:
        # Held up past the reply's lease: a dispatcher sends it (unless a newer reply to
        # the chat has overtaken it), and settles it.
        log.warning("a reply's lease ran out before it was sent; left to the dispatcher")
        return False
    except DeliveryError as exc:
        log.info("a reply could not be sent now (%s)", exc.reason)
        outcome = exc
    if outbox is not None and reply_id is not None:
        outbox.settle_reply(reply_id, contact_id, sender.channel, outcome)
    return isinstance(outcome, Delivered)
