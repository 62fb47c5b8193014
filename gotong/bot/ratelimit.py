"""Keeping within a chat platform's flood limits, whatever the network does.

The platform counts a message when it arrives, which is some time after we start the
request and before we get the answer. So a message occupies its slot in a window from
the moment its request starts until the window has passed after its answer came back:
the next message that would exceed the limit starts only then, and cannot arrive early.
That costs one round trip per window, and never a 429.

Waiters are served in priority order: a status change waiting for a slot goes before a
broadcast that has been waiting longer.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Added to every window: the platform's clock reading and ours may differ by rounding.
MARGIN = 0.005
# How often chats with nothing in their window are forgotten.
CLEANUP_SECONDS = 10.0


@dataclass(frozen=True)
class Limits:
    per_second: float
    per_chat_per_second: float
    per_group_per_minute: float


class Window:
    """At most `capacity` messages in any `seconds`, counting those still in flight."""

    def __init__(self, capacity: int, seconds: float) -> None:
        self.capacity = capacity
        self.seconds = seconds + MARGIN
        self.in_flight = 0
        self._done: deque[float] = deque()

    @classmethod
    def per_second(cls, rate: float) -> Window:
        window = cls(1, 1.0)
        window.set_rate(rate)
        return window

    def set_rate(self, rate: float) -> None:
        """Change the limit; what is in flight or in the window keeps counting."""
        # Below one a second the window stretches (0.5/s is one message in 2 s).
        if rate >= 1:
            self.capacity, self.seconds = math.floor(rate), 1.0 + MARGIN
        else:
            self.capacity, self.seconds = 1, 1.0 / rate + MARGIN

    def delay(self, now: float) -> float | None:
        """Seconds until one more may start: 0 now, None once a message in flight ends."""
        while self._done and self._done[0] + self.seconds <= now:
            self._done.popleft()
        if self.in_flight + len(self._done) < self.capacity:
            return 0.0
        if not self._done:
            return None
        return self._done[0] + self.seconds - now

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, at: float) -> None:
        """A message's request ended; it counts until a window after `at` (which lies
        ahead of now for a message that may still be arriving)."""
        self.in_flight -= 1
        # Kept in order: the first to expire at the front.
        bisect.insort(self._done, at)

    @property
    def idle(self) -> bool:
        return not self.in_flight and not self._done


@dataclass(order=True)
class _Waiter:
    priority: tuple[int, int]
    seq: int
    chat_id: str
    paced: bool
    future: asyncio.Future[None]


class Limiter:
    """The flood limits of one channel, shared by everything that sends on it."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._overall = Window.per_second(limits.per_second)
        self._chats: dict[str, Window] = {}
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._paused_until = 0.0
        self._next_cleanup = 0.0
        # Told how long each send that had to wait for a slot waited (for the metrics).
        self.on_wait: Callable[[float], None] | None = None

    def _chat_window(self, chat_id: str) -> Window:
        window = self._chats.get(chat_id)
        if window is None:
            # Negative chat ids are groups on Telegram; their limit is per minute.
            window = Window(max(1, math.floor(self.limits.per_group_per_minute)), 60.0) \
                if chat_id.startswith("-") else Window.per_second(self.limits.per_chat_per_second)
            self._chats[chat_id] = window
        return window

    async def acquire(self, chat_id: str, priority: tuple[int, int], *,
                      paced: bool = True) -> None:
        """Wait for a slot to send one message to a chat.

        `paced=False` (answers to a person who is writing right now) waits for the
        overall limit only: a short burst of replies in one chat is allowed.
        """
        if not self._waiters and self._free(chat_id, paced):
            return  # nobody waits and there is room: no need to queue
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters,
                       _Waiter(priority, next(self._seq), chat_id, paced, future))
        self._serve()
        queued_at = self._clock()
        try:
            await future
            if self.on_wait is not None:
                self.on_wait(self._clock() - queued_at)
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(chat_id, paced=paced)  # granted just as we were cancelled
            else:
                self._waiters = [w for w in self._waiters if w.future is not future]
                heapq.heapify(self._waiters)
            raise

    def _free(self, chat_id: str, paced: bool) -> bool:
        """Take a slot at once if every window has room now."""
        now = self._clock()
        if now < self._paused_until or self._overall.delay(now) != 0.0:
            return False
        if paced:
            window = self._chat_window(chat_id)
            if window.delay(now) != 0.0:
                return False
            window.start()
        self._overall.start()
        return True

    def release(self, chat_id: str, *, paced: bool = True, may_arrive_for: float = 0.0) -> None:
        """The message's request has ended (answered or failed). One whose answer never
        came may still arrive for `may_arrive_for` seconds: it is counted as arriving
        then, at the latest."""
        now = self._clock()
        self._overall.finish(now + may_arrive_for)
        if paced:
            self._chat_window(chat_id).finish(now + may_arrive_for)
        self._serve()

    def share(self, senders: int) -> None:
        """`senders` processes send on this channel now: this one keeps to its share of
        the overall limit (each chat's own limit is kept by the outbox's claims)."""
        self._overall.set_rate(self.limits.per_second / max(1, senders))
        self._serve()

    def pause(self, seconds: float) -> None:
        """The platform asked us to wait (429): nobody sends on this channel until then."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._serve()

    def _serve(self) -> None:
        """Grant slots to waiters, best priority first, and set a timer for the rest."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        wake_in: float | None = None
        if now < self._paused_until:
            wake_in = self._paused_until - now
        else:
            kept: list[_Waiter] = []
            while self._waiters:
                waiter = heapq.heappop(self._waiters)
                if waiter.future.done():
                    continue
                overall = self._overall.delay(now)
                if overall != 0.0:
                    kept.append(waiter)
                    if overall is not None:
                        wake_in = overall if wake_in is None else min(wake_in, overall)
                    break
                chat = self._chat_window(waiter.chat_id).delay(now) if waiter.paced else 0.0
                if chat != 0.0:
                    # This chat must wait; a later waiter for another chat may go now.
                    kept.append(waiter)
                    if chat is not None:
                        wake_in = chat if wake_in is None else min(wake_in, chat)
                    continue
                self._overall.start()
                if waiter.paced:
                    self._chat_window(waiter.chat_id).start()
                waiter.future.set_result(None)
            for waiter in kept:
                heapq.heappush(self._waiters, waiter)
        self._forget_idle_chats(now)
        if self._waiters and wake_in is not None:
            self._timer = asyncio.get_running_loop().call_later(wake_in, self._serve)

    def _forget_idle_chats(self, now: float) -> None:
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + CLEANUP_SECONDS
        for chat_id in [c for c, w in self._chats.items() if w.delay(now) == 0.0 and w.idle]:
            del self._chats[chat_id]
