"""The dispatcher: sends the outbox, in order per chat, within each platform's limits.

It claims rows that are due and first in line for their chat, sends each through its
channel (waiting for a slot under the channel's limits, best priority first), and writes
what became of them in small batches. Transient failures are retried with exponential
back-off and jitter, or after the platform's "retry after"; a row that fails too often
is marked failed with the reason; a person who blocked the bot is marked unreachable.

It wakes at once when this process commits outbox rows, and otherwise polls: rows
written by another process (a broadcast from the command line, say) are found within
`poll_seconds`. It also writes the reminders of unfinished registrations.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gotong.bot.channels.delivery import (
    Delivered,
    DeliveryError,
    Done,
    Held,
    NotOurs,
    OutcomeUnknown,
    Pace,
    RetryLater,
    Sender,
    Undeliverable,
    Unreachable,
    still_leased,
)
from gotong.bot.metrics import RATE_LIMIT_WAITS, SENDS
from gotong.bot.ratelimit import Limiter, Limits
from gotong.handlers.catalog import Catalog
from gotong.handlers.conversations import FORMS
from gotong.handlers.notices import claimed_replies
from gotong.models.base import process_name, utcnow
from gotong.models.coverage import count_uncovered
from gotong.models.db import refresh_queue_statistics, refresh_statistics
from gotong.models.digest import send_digests
from gotong.models.erasure import erase_expired
from gotong.models.failures import note_unreached
from gotong.models.inbound import prune_inbound
from gotong.models.number_asks import forget_old
from gotong.models.outbox import Claimed, Failure
from gotong.models.person import LinkedDelivery, route_to_person
from gotong.models.presence import announce_presence, withdraw_presence
from gotong.models.reminders import queue_reminders
from gotong.models.sending import Outcome, Result, claim, extend_leases, next_due_at, prune, record
from gotong.models.support import alert_unanswered, prune_messages

log = logging.getLogger(__name__)

# Results are written at least this often while sends are in flight.
FLUSH_SECONDS = 0.05
FLUSH_BATCH = 200
# Rows claimed ahead of sending: this many seconds' worth at the channel's rate.
HORIZON_SECONDS = 2.0
MIN_HORIZON = 16
# Direct replies are answered before any notification.
REPLY_PRIORITY = (-1, 0)
STATISTICS_EVERY = timedelta(days=1)
RETENTION_EVERY = timedelta(days=1)
# Batches of retention per day at most (what is left waits for the next day).
RETENTION_MAX_BATCHES = 100
# Support messages past their days are looked for this often: it reads the outbox too.
SUPPORT_PRUNE_EVERY = timedelta(hours=1)
# Sends of one row that may go out with no answer: the first, and one retry.
MAX_UNANSWERED = 2
# How often a dispatcher says it is alive and looks how many share each platform's limit.
PRESENCE_EVERY = timedelta(seconds=1)


@dataclass(frozen=True)
class DispatchSettings:
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=2)
    retry_max: timedelta = timedelta(minutes=10)
    poll: timedelta = timedelta(seconds=2)
    lease: timedelta = timedelta(seconds=60)
    reminder_after: timedelta = timedelta(hours=24)
    reminder_check: timedelta = timedelta(minutes=1)
    keep: timedelta = timedelta(days=30)
    keep_inbound: timedelta = timedelta(days=7)
    digest_interval: timedelta = timedelta(hours=1)
    # Support conversations nobody took within this alert the aggregator's staff; their
    # messages are kept this long.
    support_answer_within: timedelta = timedelta(minutes=30)
    support_keep: timedelta = timedelta(days=30)
    linked_delivery: LinkedDelivery = LinkedDelivery.LAST_USED
    # Personal data of requests and pledges closed this long ago is erased, daily.
    retention: timedelta = timedelta(days=365)
    # A number's "no" to a proxy's question counts this long (proxy.declined_days).
    declined_keep: timedelta = timedelta(days=30)


def backoff(attempts: int, settings: DispatchSettings) -> timedelta:
    """Exponential back-off with jitter: about base * 2^(attempts-1), capped."""
    ceiling = min(settings.retry_max.total_seconds(),
                  settings.retry_base.total_seconds() * 2 ** max(attempts - 1, 0))
    # Jitter spreads the retries of many rows that failed together (an outage).
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Catalog,
        senders: Mapping[str, Sender],
        limits: Mapping[str, Limits],
        settings: DispatchSettings,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
    ) -> None:
        self._engine = engine
        # Who holds the rows this dispatcher claims (and its process's direct replies).
        self.owner = owner or process_name()
        self._catalog = catalog
        self._senders = dict(senders)
        self._limiters = {channel: Limiter(limits[channel]) for channel in senders}
        for channel, limiter in self._limiters.items():
            limiter.on_wait = RATE_LIMIT_WAITS.labels(channel).inc
        self._settings = settings
        self._clock = clock
        self._channels = sorted(senders)
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._results: list[Result] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # When to claim next while idle, and when results were last written.
        self._look_at = clock()
        self._flushed_at = 0.0
        # Rows this process has claimed and not yet settled, with their lease's end (None
        # once another process has taken the row over: it is neither sent nor renewed).
        self._held: dict[int, datetime | None] = {}
        rate = max(lim.per_second for lim in limits.values()) if limits else 30.0
        # A chat's next message waits this long after its last was answered, whichever
        # process sent that one.
        self._chat_gap = timedelta(seconds=max(
            (1.0 / lim.per_chat_per_second for lim in limits.values()), default=0.0))
        self._presence_at: datetime | None = None
        # Whether another process has been seen sending on one of our channels.
        self._shared = False
        self._horizon = max(MIN_HORIZON, math.ceil(rate * HORIZON_SECONDS))
        self._next_reminders: datetime | None = None
        self._next_support_prune: datetime | None = None
        # When the operator's digest (requests no aggregator covers) is next written.
        self._next_operator_digest: datetime | None = None
        # Refreshed at start by `open_services`, then daily from here.
        self._next_statistics: datetime | None = clock() + STATISTICS_EVERY
        # Retention runs at the first housekeeping, then daily.
        self._next_retention: datetime | None = None
        # Dialogs that may be reminded of, and the menu item that resumes each.
        self._dialogs = {form.name: form.menu_item for form in FORMS.values()
                         if form.menu_item is not None}

    # --- what other parts of the process call -----------------------------------------

    def wake(self) -> None:
        """Rows were committed: look for them now rather than at the next poll."""
        self._wake.set()

    def pace_reply(self, channel: str, chat_id: str) -> tuple[Pace, Done]:
        limiter = self._limiters.get(channel)

        async def acquire() -> None:
            if limiter is not None:
                await limiter.acquire(chat_id, REPLY_PRIORITY, paced=False)

        def release(may_arrive_for: float = 0.0) -> None:
            if limiter is not None:
                limiter.release(chat_id, paced=False, may_arrive_for=may_arrive_for)

        return acquire, release

    def _still_ours(self, lease_until: datetime) -> bool:
        """Whether a row leased until then may still be sent: not once its lease is near
        its end, since another process may take it over then (a process held up, by a
        pause or a slow database, must not send what another is sending)."""
        return still_leased(lease_until, self._clock(), self._settings.lease)

    def settle_reply(self, row_id: int, contact_id: int, channel: str,
                     outcome: Delivered | DeliveryError) -> None:
        """A channel sent (or failed to send) a direct reply; write it with the rest."""
        limiter = self._limiters.get(channel)
        if isinstance(outcome, RetryLater) and outcome.retry_after and limiter is not None:
            limiter.pause(outcome.retry_after)
        self._results.append(self._result(row_id, contact_id, channel, 0, 0, outcome))
        self._changed.set()

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` is set; then finish what is in flight."""
        log.info("dispatcher started (%s)", ", ".join(self._channels))
        stopping = asyncio.create_task(stop.wait())
        try:
            await self._join()
            while not stop.is_set():
                try:
                    await self._step()
                except Exception as exc:
                    # A database hiccup must not end notifications for good.
                    log.error("dispatcher step failed: %s", type(exc).__name__)
                    await asyncio.sleep(self._settings.poll.total_seconds())
                await self._wait(stopping)
        finally:
            stopping.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._flush()
            await self._leave()
            log.info("dispatcher stopped")

    async def run_until_idle(self) -> None:
        """Send until no row waits any more, retries included (for `gotong dispatch
        --until-idle` and tests)."""
        await self._join()
        try:
            await self._until_idle()
        finally:
            await self._leave()

    async def _until_idle(self) -> None:
        while True:
            self._wake.set()
            await self._step()
            if not self._tasks and not self._results and await self._next_due() is None:
                return
            await self._wait(None)

    async def _wait(self, stopping: asyncio.Task[bool] | None) -> None:
        """Sleep until there is something to do: rows committed here, results to write,
        sends in flight, or the next poll or retry."""
        if self._tasks:
            # Busy: write results and claim more a few times a second, not per message.
            timeout = FLUSH_SECONDS
        elif self._results:
            timeout = max(0.0, FLUSH_SECONDS - (time.monotonic() - self._flushed_at))
        else:
            next_at = min(self._look_at, self._presence_at or self._look_at)
            timeout = max(0.0, (next_at - self._clock()).total_seconds())
        waits: list[asyncio.Task[bool]] = [asyncio.create_task(self._wake.wait())]
        if not self._results:
            waits.append(asyncio.create_task(self._changed.wait()))
        try:
            await asyncio.wait([*waits, *([stopping] if stopping else [])], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        if self._changed.is_set() and not self._wake.is_set():
            # A reply was settled: gather the others that follow it into one write.
            await asyncio.sleep(max(0.0, FLUSH_SECONDS - (time.monotonic() - self._flushed_at)))

    async def _next_due(self) -> datetime | None:
        async with self._engine.connect() as connection:
            return await next_due_at(connection, self._channels)

    async def _step(self) -> int:
        """Write results; and when woken, busy or due, queue reminders, claim and start
        rows. Returns the rows claimed or skipped."""
        now = self._clock()
        look = self._wake.is_set() or bool(self._tasks) or now >= self._look_at
        self._wake.clear()
        self._changed.clear()
        await self._flush()
        # Even when idle: a process that may send must count in the others' shares.
        await self._keep_presence()
        if not look:
            return 0
        await self._housekeeping()
        await self._renew_leases()
        room = self._horizon - len(self._tasks)
        rows: list[Claimed] = []
        skipped = 0
        if room > 0:
            async with self._engine.connect() as connection, connection.begin():
                rows, skipped = await claim(connection, self._channels, now, room,
                                            self._settings.lease, self.owner, self._chat_gap)
                rows = await route_to_person(connection, rows, self._settings.linked_delivery,
                                             self._channels)
        if skipped:
            log.info("skipped %d outbox rows (opted out, unreachable, overtaken or outdated)",
                     skipped)
        for row in rows:
            if row.id in self._held:
                continue  # still ours: its lease ran out only while the loop was held up
            self._held[row.id] = now + self._settings.lease
            task = asyncio.create_task(self._send(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not self._tasks:
            # Idle: look again at the next poll, or when a retry or a lease falls due.
            due = await self._next_due()
            self._look_at = now + self._settings.poll
            if due is not None:
                self._look_at = max(now, min(self._look_at, due))
        return len(rows) + skipped

    # --- sharing the platforms' limits with other processes ----------------------------

    async def _join(self) -> None:
        """Say this process sends now, and wait until the others can have seen it before
        sending: until then they still count on the whole of their shares."""
        if not self._channels:
            return
        try:
            await self._keep_presence(force=True)
        except Exception as exc:
            log.error("could not join the other senders: %s", type(exc).__name__)
        if self._shared:
            for limiter in self._limiters.values():
                limiter.pause(PRESENCE_EVERY.total_seconds() * 1.5)

    async def _keep_presence(self, force: bool = False) -> None:
        """Every PRESENCE_EVERY: say this process is alive, and take its share of each
        channel's limit among the processes alive."""
        now = self._clock()
        if not force and self._presence_at is not None and now < self._presence_at:
            return
        self._presence_at = now + PRESENCE_EVERY
        async with self._engine.connect() as connection, connection.begin():
            senders = await announce_presence(connection, self.owner, self._channels, now,
                                              PRESENCE_EVERY * 3)
        for channel, count in senders.items():
            self._limiters[channel].share(count)
        self._shared = any(count > 1 for count in senders.values()) or self._shared

    async def _leave(self) -> None:
        if not self._channels:
            return
        try:
            async with self._engine.connect() as connection, connection.begin():
                await withdraw_presence(connection, self.owner)
        except Exception as exc:
            log.warning("could not withdraw from the senders: %s", type(exc).__name__)

    async def _renew_leases(self) -> None:
        """Keep the rows this process holds (waiting for a slot, say a long "retry
        after") from looking abandoned to other dispatchers, or to our own claims."""
        now = self._clock()
        due = [row_id for row_id, until in self._held.items()
               if until is not None and until - now < self._settings.lease / 2]
        if not due:
            return
        until = now + self._settings.lease
        async with self._engine.connect() as connection, connection.begin():
            kept = await extend_leases(connection, due, until, self.owner)
        for row_id in due:
            if row_id in kept:
                self._held[row_id] = until
            else:
                # Taken over while this process was held up: no longer ours to send,
                # and not ours to renew (nor to report again) at the next step.
                self._held[row_id] = None
        if len(kept) < len(due):
            log.warning("%d outbox rows were taken over by another dispatcher while this "
                        "one was held up; it will not send them", len(due) - len(kept))

    async def _housekeeping(self) -> None:
        """Every minute: queue the reminders, digests and support alerts that are due,
        refresh the queues' statistics, and forget old settled rows and support
        messages."""
        now = self._clock()
        if self._next_reminders is not None and now < self._next_reminders:
            return
        self._next_reminders = now + self._settings.reminder_check
        await self.queue_reminders()
        await self.queue_digests()
        await self.tend_support()
        await self.operator_digest()
        if self._next_statistics is None or now >= self._next_statistics:
            # The data grows; the statistics are gathered again once a day.
            self._next_statistics = now + STATISTICS_EVERY
            await refresh_statistics(self._engine)
        else:
            # The queues swing within minutes: their statistics every minute.
            await refresh_queue_statistics(self._engine)
        pruned = await prune(self._engine, now - self._settings.keep)
        if pruned:
            log.info("forgot %d settled outbox rows", pruned)
        forgotten = await prune_inbound(self._engine, now - self._settings.keep_inbound)
        if forgotten:
            log.info("forgot %d inbound updates past their window", forgotten)
        if self._next_retention is None or now >= self._next_retention:
            self._next_retention = now + RETENTION_EVERY
            await self.erase_expired()

    async def erase_expired(self) -> int:
        """Erase the personal data past `privacy.retention_days`, in small transactions
        that hold no lock for long (the loop does so daily). Returns the rows erased."""
        erased = 0
        for _ in range(RETENTION_MAX_BATCHES):
            async with AsyncSession(self._engine, expire_on_commit=False) as session, \
                    session.begin():
                batch = await erase_expired(session, self._clock(), self._settings.retention)
            erased += batch.total
            if not batch.more:
                break
        # The numbers asked for proxies: refusals past their period, days gone by.
        async with AsyncSession(self._engine, expire_on_commit=False) as session, \
                session.begin():
            await forget_old(session, self._clock(), self._settings.declined_keep)
        if erased:
            log.info("erased the personal data of %d requests, pledges and drafts past "
                     "their retention", erased)
        return erased

    async def queue_reminders(self) -> int:
        """Write the reminders that are due now (the loop does so every minute)."""
        async with AsyncSession(self._engine, expire_on_commit=False) as session, \
                session.begin():
            queued = await queue_reminders(session, self._channels, self._dialogs,
                                           self._clock(), self._settings.reminder_after)
        if queued:
            log.info("queued %d reminders", queued)
            self._wake.set()
        return queued

    async def queue_digests(self) -> int:
        """Write the digests that are due now (the loop does so every minute)."""
        async with AsyncSession(self._engine, expire_on_commit=False) as session, \
                session.begin():
            now = self._clock()
            # Staff hear of their households that could not be reached with the rest.
            await note_unreached(session, now)
            queued = await send_digests(session, now, self._settings.digest_interval)
        if queued:
            log.info("queued %d digests", queued)
            self._wake.set()
        return queued

    async def tend_support(self) -> int:
        """Alert the staff of support conversations nobody took in time (the loop does so
        every minute), and forget the support messages past their days (every hour); the
        alerts."""
        now = self._clock()
        async with AsyncSession(self._engine, expire_on_commit=False) as session, \
                session.begin():
            alerted = await alert_unanswered(session, now,
                                             self._settings.support_answer_within)
            forgotten = 0
            if self._next_support_prune is None or now >= self._next_support_prune:
                self._next_support_prune = now + SUPPORT_PRUNE_EVERY
                forgotten = await prune_messages(session,
                                                 now - self._settings.support_keep)
        if alerted:
            log.info("alerted staff of %d support conversations nobody took", alerted)
            self._wake.set()
        if forgotten:
            log.info("forgot %d support messages past their days", forgotten)
        return alerted
    async def operator_digest(self) -> int:
        """The operator's digest, in the log once per digest interval: how many requests
        wait where no aggregator covers the area (`gotong uncovered` lists them). Counts
        only: never who they are."""
        now = self._clock()
        if self._next_operator_digest is not None and now < self._next_operator_digest:
            return -1
        self._next_operator_digest = now + self._settings.digest_interval
        async with AsyncSession(self._engine) as session:
            waiting = await count_uncovered(session)
        if waiting:
            log.warning("%d %s where no aggregator covers the area: see `gotong uncovered`",
                        waiting, "request waits" if waiting == 1 else "requests wait")
        return waiting

    async def _flush(self) -> None:
        self._flushed_at = time.monotonic()
        while self._results:
            batch, self._results = self._results[:FLUSH_BATCH], self._results[FLUSH_BATCH:]
            async with self._engine.connect() as connection, connection.begin():
                lost = await record(connection, batch, self.owner)
            for result in batch:
                self._held.pop(result.row_id, None)
            if lost:
                log.warning("%d outbox rows were taken over by another dispatcher before "
                            "this one settled them (it was held up past their lease)",
                            len(lost))

    # --- sending one row --------------------------------------------------------------

    async def _send(self, row: Claimed) -> None:
        sender = self._senders[row.channel]
        limiter = self._limiters[row.channel]
        priority = (row.priority, row.id)

        async def acquire() -> None:
            await limiter.acquire(row.chat_id, priority)
            # Checked after the wait for a slot, just before the message goes: a row
            # taken over meanwhile is another dispatcher's to send.
            until = self._held.get(row.id)
            if until is None or not self._still_ours(until):
                limiter.release(row.chat_id)
                raise NotOurs("the row's lease ran out")

        def release(may_arrive_for: float = 0.0) -> None:
            limiter.release(row.chat_id, may_arrive_for=may_arrive_for)

        outcome: Delivered | DeliveryError
        try:
            replies, edit = claimed_replies(self._catalog, row)
            outcome = await sender.deliver(row.chat_id, replies, skip=row.parts_sent,
                                           edit_message_id=edit, pace=(acquire, release),
                                           language=row.language, row=row)
        except NotOurs:
            log.warning("outbox row %d was not sent: its lease ran out while this "
                        "dispatcher was held up", row.id)
            self._held.pop(row.id, None)
            return
        except DeliveryError as exc:
            outcome = exc
        except Exception as exc:
            # A bug in rendering or sending: keep the row, retry it, and say so.
            log.exception("unexpected error while sending outbox row %d", row.id)
            outcome = RetryLater(f"unexpected {type(exc).__name__}")
        if isinstance(outcome, RetryLater) and outcome.retry_after:
            limiter.pause(outcome.retry_after)
        self._results.append(self._result(row.id, row.contact_id, row.channel, row.attempts,
                                          row.parts_sent, outcome, row.timeouts))

    def _result(self, row_id: int, contact_id: int, channel: str, attempts: int,
                parts_sent: int, outcome: Delivered | DeliveryError, timeouts: int = 0
                ) -> Result:
        result = self._outcome(row_id, contact_id, channel, attempts, parts_sent, outcome,
                               timeouts)
        SENDS.labels(channel, result.outcome.name.lower()).inc()
        return result

    def _outcome(self, row_id: int, contact_id: int, channel: str, attempts: int,
                 parts_sent: int, outcome: Delivered | DeliveryError, timeouts: int
                 ) -> Result:
        now = self._clock()
        if isinstance(outcome, Delivered):
            return Result(row_id, Outcome.SENT, now, platform_message_id=outcome.message_id,
                          parts_sent=outcome.parts_sent)
        parts = parts_sent + outcome.sent
        if isinstance(outcome, Held):
            return Result(row_id, Outcome.HELD, now, platform_message_id=outcome.message_id,
                          error=outcome.reason, parts_sent=parts)
        if isinstance(outcome, Unreachable):
            log.info("a %s contact is unreachable: %s", channel, outcome.reason)
            return Result(row_id, Outcome.UNREACHABLE, now, error=outcome.description,
                          parts_sent=parts, contact_id=contact_id,
                          failure=Failure.UNREACHABLE)
        attempts += 1
        if isinstance(outcome, OutcomeUnknown):
            if timeouts >= MAX_UNANSWERED - 1:
                # Two copies may be out already: a third is not sent.
                log.warning("outbox row %d got no answer %d times; it may have arrived",
                            row_id, timeouts + 1)
                return Result(row_id, Outcome.UNCERTAIN, now, error=outcome.description,
                              parts_sent=parts, timed_out=True)
            return Result(row_id, Outcome.RETRY, now, error=outcome.description,
                          next_attempt_at=now + backoff(attempts, self._settings),
                          parts_sent=parts, timed_out=True)
        if isinstance(outcome, RetryLater) and attempts < self._settings.max_attempts:
            wait = timedelta(seconds=outcome.retry_after) if outcome.retry_after \
                else backoff(attempts, self._settings)
            return Result(row_id, Outcome.RETRY, now, error=outcome.description,
                          next_attempt_at=now + wait, parts_sent=parts)
        log.warning("outbox row %d failed after %d attempts: %s", row_id, attempts,
                    outcome.reason)
        # Refused for good with its own reason; else tried until given up on.
        failure = outcome.failure if isinstance(outcome, Undeliverable) else Failure.GAVE_UP
        return Result(row_id, Outcome.FAILED, now, error=outcome.description,
                      parts_sent=parts, failure=failure)

