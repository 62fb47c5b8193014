"""The inbound queue's worker: every chat app's updates, stored first, handled in order
per chat by any process (models/inbound.py holds the queue itself).

A channel stores each update it is sent with `accept` before answering the platform, and
registers a handler for its stored updates. The worker claims the next update of chats
that no process holds, runs each chat's handler (different chats concurrently, one chat
at a time), and when a handler fails gives the update back with back-off: the chat waits
behind it. A failure that is not the database's (a bug, a payload the code cannot read)
sets the update aside after `max_attempts` tries, so that its chat can go on.

It wakes at once when this process stores an update, and otherwise polls, so that updates
stored by another process (a webhook that reached it) are handled here too when it has
room, within `poll_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from gotong.bot.metrics import HANDLING_SECONDS, UPDATES_HANDLED, UPDATES_RECEIVED
from gotong.models.base import process_name, utcnow
from gotong.models.inbound import (
    LeaseLost,
    QueuedUpdate,
    Stored,
    ToStore,
    claim_waiting,
    finish_inbound,
    next_turn_at,
    release_inbound,
    release_leases,
    store_batch,
)

log = logging.getLogger(__name__)

# A handler of a channel's stored updates: it handles the update and marks it handled
# (models/inbound.finish_inbound) in the same unit of work. It returns whether the chat
# may go on at once: False when its answer could not be sent now (left to a dispatcher),
# since the next answer would overtake it.
UpdateHandler = Callable[[QueuedUpdate], Awaitable[bool]]
WAIT_FINISHED_SECONDS = 10
# After a chat's update is handled here, its next one is claimable at once if its answer
# went out, else once the answer's outbox row is settled: looked for this often, for this
# long. The dispatcher writes answers down a few times a second; an answer not written
# down by then waits to be settled before its chat goes on (shorter than any reply's
# lease, after which a dispatcher may send it again).
SETTLED_AGAIN_SECONDS = 0.05
# Arrival times kept for the metrics: updates stored here and not yet handled.
ARRIVALS_KEPT = 10_000
SETTLING_SECONDS = 1.0


@dataclass(frozen=True)
class _ToStore:
    update: ToStore
    future: asyncio.Future[Stored]


@dataclass(frozen=True)
class InboundSettings:
    lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 5
    retry_base: timedelta = timedelta(seconds=1)
    retry_max: timedelta = timedelta(seconds=60)
    poll: timedelta = timedelta(seconds=1)
    concurrent_chats: int = 16


def retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential back-off with jitter: about base * 2^(attempts-1), capped."""
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** max(attempts - 1, 0))
    # Jitter spreads the retries of many updates that failed together (an outage).
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


# What the database (or the way to it) throws when it is down, locked, full or cut off:
# the update is fine and will be handled once the database is back.
DATABASE_TROUBLE: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
    sa_exc.TimeoutError, sa_exc.ResourceClosedError, ConnectionError, OSError,
    TimeoutError, sqlite3.OperationalError,
)


# PostgreSQL's classes of errors that are the server's or the connection's, not the
# statement's: connection exception, transaction rollback (a deadlock or serialization
# failure), insufficient resources (a full disk), operator intervention (a terminated
# session, a shutdown) and system error.
_TROUBLED_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")


def is_database_trouble(exc: BaseException) -> bool:
    """Whether a failure is the database's (down, locked, full, cut off), not the update's.

    Looks through SQLAlchemy's wrapping at the driver's error and its cause: a session
    PostgreSQL terminated in the middle of a query comes as a bare DBAPIError, and
    SQLite's "database is locked" from the BEGIN IMMEDIATE of a unit of work (run in an
    event hook, models/db.py) comes unwrapped.
    """
    error: BaseException | None = exc
    for _ in range(5):  # the error, the driver's under it, and what caused that
        if error is None:
            return False
        if isinstance(error, DATABASE_TROUBLE):
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and state[:2] in _TROUBLED_SQLSTATE_CLASSES:
            return True
        if type(error).__module__.startswith("asyncpg") and state is None \
                and not isinstance(error, ValueError):
            # asyncpg's own errors (a closed connection, a protocol left in the middle of
            # an operation), not the server's; its ValueErrors are bad parameters.
            return True
        error = error.orig if isinstance(error, sa_exc.DBAPIError) else error.__cause__
    return False


class InboundQueue:
    def __init__(self, engine: AsyncEngine, settings: InboundSettings,
                 clock: Callable[[], datetime] = utcnow, owner: str | None = None) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self.owner = owner or process_name()
        self._handlers: dict[str, UpdateHandler] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # The chats this process is handling now, by their task. An update stored for one
        # of them cannot be claimed before that task ends (the chat's older update waits
        # in it): storing it does not wake the worker, the task's end does.
        self._holding: dict[asyncio.Task[None], tuple[str, str]] = {}
        # Chats whose last answer this process sent itself, until when that counts as
        # settled (the dispatcher writes it down meanwhile).
        self._answered: dict[str, float] = {}
        # Updates to store, and the task storing them (one transaction for those waiting).
        self._to_store: list[_ToStore] = []
        self._storing: asyncio.Task[None] | None = None
        self._answered_at = 0.0
        # When each update this process stored came (for the metrics' handling time).
        self._arrived: dict[tuple[str, str], float] = {}
        # Updates finished here (handled, recorded only, or set aside), for tests and
        # health.
        self.finished = 0
        self._finished = asyncio.Condition()

    def register(self, channel: str, handler: UpdateHandler) -> None:
        self._handlers[channel] = handler

    @property
    def channels(self) -> list[str]:
        return sorted(self._handlers)

    def wake(self) -> None:
        self._wake.set()

    # --- storing ----------------------------------------------------------------------

    async def accept(self, channel: str, external_id: str, chat_id: str,
                     payload: dict[str, Any], *, seen_only: bool = False,
                     kind: str = "message") -> Stored:
        """Store an update before the platform is answered, and wake the worker.

        `seen_only` records an update that no one answers as seen, finished at once and
        without its payload: a replay of it is dropped, and nothing is left to handle.

        Updates arriving together share one transaction (a group commit): the first
        writes at once, and those that come while it writes go in the next one.
        """
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._to_store.append(_ToStore(
            ToStore(channel, external_id, chat_id, payload, seen_only), future))
        if self._storing is None or self._storing.done():
            self._storing = asyncio.create_task(self._store_waiting())
        stored = await future
        if stored is Stored.NEW:
            UPDATES_RECEIVED.labels(channel, kind).inc()
        if seen_only:
            if stored is Stored.NEW:
                await self._count_finished()
        elif stored is not Stored.DONE:
            self._arrived[(channel, external_id)] = time.monotonic()
            while len(self._arrived) > ARRIVALS_KEPT:
                del self._arrived[next(iter(self._arrived))]
            if (channel, chat_id) not in self._holding.values():
                self._wake.set()
        return stored

    async def _store_waiting(self) -> None:
        while self._to_store:
            batch, self._to_store = self._to_store, []
            try:
                async with self._engine.begin() as connection:
                    results = await store_batch(
                        connection, [item.update for item in batch], self._clock())
            except BaseException as exc:
                # Nothing of the batch is stored: each caller fails (the platform is not
                # answered 200, and sends again).
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(
                            exc if isinstance(exc, Exception) else asyncio.CancelledError())
                if not isinstance(exc, Exception):
                    raise
                continue
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)

    async def finish_alone(self, update: QueuedUpdate) -> None:
        """Mark an update handled that needed no unit of work of its own (one the
        conversations ignore); LeaseLost when another process holds it now."""
        async with self._engine.begin() as connection:
            if not await finish_inbound(connection, update.id, update.owner, self._clock()):
                raise LeaseLost()

    # --- working ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Handle stored updates until `stop` is set; then finish those in hand."""
        stopping = asyncio.create_task(stop.wait())
        failures = 0
        try:
            while not stop.is_set():
                try:
                    wait = await self._step()
                    failures = 0
                except Exception as exc:
                    # The database is away: look again soon, then less and less often.
                    failures += 1
                    log.error("inbound queue step failed: %s", type(exc).__name__)
                    wait = retry_delay(failures, self._settings.retry_base,
                                       self._settings.retry_max).total_seconds()
                if wait > 0:
                    await self._sleep(wait, stopping)
        finally:
            stopping.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run_until_idle(self) -> None:
        """Handle until nothing waits, retries included (for tests); updates another
        process holds count as waiting until their lease runs out."""
        while True:
            wait = await self._step()
            if not self._tasks and wait > 0:
                async with self._engine.connect() as connection:
                    if await next_turn_at(connection, self.channels) is None:
                        return
            await self._sleep(min(wait, 0.05) if wait > 0 else 0.01, None)

    async def _sleep(self, seconds: float, stopping: asyncio.Task[bool] | None) -> None:
        waking = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait([waking, *([stopping] if stopping else [])], timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waking.cancel()

    async def _step(self) -> float:
        """Claim and start what there is room for; the seconds until looking again."""
        self._wake.clear()
        room = self._settings.concurrent_chats - len(self._tasks)
        if room <= 0 or not self._handlers:
            return self._settings.poll.total_seconds()
        now = self._clock()
        async with self._engine.begin() as connection:
            claimed = await claim_waiting(connection, self.owner, self.channels, now,
                                          self._settings.lease, room,
                                          self._answered_here())
        for chat in claimed:
            task = asyncio.create_task(self._handle_chat(chat))
            self._tasks.add(task)
            self._holding[task] = (chat[0].channel, chat[0].chat_id)
            task.add_done_callback(self._done)
        if len(claimed) == room or self._wake.is_set():
            return 0.0
        poll = self._settings.poll.total_seconds()
        if time.monotonic() - self._answered_at < SETTLING_SECONDS:
            # A chat answered here a moment ago waits until its answer is settled (by the
            # dispatcher, in a batch a few times a second), then its next update is due.
            poll = min(poll, SETTLED_AGAIN_SECONDS)
        if self._tasks:
            # Busy: a finishing update wakes the loop (its chat may have another).
            return poll
        async with self._engine.connect() as connection:
            turn = await next_turn_at(connection, self.channels)
        if turn is None:
            return poll
        return max(0.01, min(poll, (turn - now).total_seconds()))

    def _answered_here(self) -> list[str]:
        """Chats whose last answer this process sent itself a moment ago."""
        now = time.monotonic()
        for chat in [c for c, until in self._answered.items() if until <= now]:
            del self._answered[chat]
        return list(self._answered)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._holding.pop(task, None)
        self._answered_at = time.monotonic()
        # Its chat may have another update (stored here meanwhile, or by another process),
        # and there is room for one more chat.
        self._wake.set()

    async def _handle_chat(self, updates: list[QueuedUpdate]) -> None:
        """A chat's claimed updates, one after another, as long as each goes well."""
        for position, update in enumerate(updates):
            rest = [later.id for later in updates[position + 1:]]
            handler = self._handlers[update.channel]
            # Its answer is about to be written, and sent: until then the chat's earlier
            # answer, sent here, no longer lets another claim take the chat.
            self._answered.pop(update.chat_id, None)
            try:
                go_on = await handler(update)
            except LeaseLost:
                log.warning("inbound update %d was taken over by another process", update.id)
                return
            except Exception as exc:
                await self._failed(update, exc, rest)
                return
            UPDATES_HANDLED.labels(update.channel, "handled").inc()
            arrived = self._arrived.pop((update.channel, update.external_id), None)
            if arrived is not None:  # stored by this process: its wait is known here
                HANDLING_SECONDS.labels(update.channel).observe(time.monotonic() - arrived)
            await self._count_finished()
            if go_on:
                self._answered[update.chat_id] = time.monotonic() + SETTLING_SECONDS
            else:
                # The answer waits for a dispatcher: the chat's next update waits for it.
                if rest:
                    await self._release(rest, update.owner)
                return

    async def _release(self, update_ids: list[int], owner: str) -> None:
        try:
            async with self._engine.begin() as connection:
                await release_leases(connection, update_ids, owner)
        except Exception as exc:
            # The leases run out by themselves; the updates are then claimed again.
            log.warning("could not give back %d inbound updates: %s", len(update_ids),
                        type(exc).__name__)

    async def _failed(self, update: QueuedUpdate, exc: Exception, rest: list[int]) -> None:
        attempts = update.attempts + 1
        reason = type(exc).__name__
        now = self._clock()
        settings = self._settings
        retry_at: datetime | None = now + retry_delay(attempts, settings.retry_base,
                                                      settings.retry_max)
        if is_database_trouble(exc):
            # Not the update's fault: it waits, with its chat, until the database is back.
            log.warning("inbound update %d (%s) failed on the database (%s); retrying",
                        update.id, update.channel, reason)
        elif attempts >= settings.max_attempts:
            retry_at = None
            # Its id and the kind of error only: the update itself holds personal data.
            log.error("inbound update %d (%s) set aside after %d attempts: %s", update.id,
                      update.channel, attempts, reason)
        else:
            log.error("inbound update %d (%s) failed (attempt %d): %s", update.id,
                      update.channel, attempts, reason)
        try:
            async with self._engine.begin() as connection:
                await release_inbound(connection, update.id, update.owner, now, reason,
                                      retry_at)
                # The chat's later updates wait behind it (or go on, if it is set aside).
                await release_leases(connection, rest, update.owner)
        except Exception as release_error:
            # The lease runs out by itself; the update is then claimed again.
            log.warning("could not release inbound update %d: %s", update.id,
                        type(release_error).__name__)
        UPDATES_HANDLED.labels(update.channel,
                               "retry" if retry_at is not None else "set_aside").inc()
        if retry_at is None:
            await self._count_finished()

    async def _count_finished(self) -> None:
        async with self._finished:
            self.finished += 1
            self._finished.notify_all()

    async def wait_finished(self, count: int) -> None:
        """Wait until `count` updates have been finished here in all."""
        async with asyncio.timeout(WAIT_FINISHED_SECONDS), self._finished:
            await self._finished.wait_for(lambda: self.finished >= count)
