"""Flood limits and arrival waits shared by the fake API servers.

The fake Telegram and WhatsApp servers both refuse sends the way the real services do when a
client sends too fast, and both let a test wait until enough requests or messages have arrived.
:class:`RateWindow` is one sliding window; :class:`FloodLimits` puts an overall window together
with one window per private chat and one per group, and counts the sends it refuses (in total
and per chat).  :class:`ChangeNotifier` wakes every waiter when a fake records something, so a
wait ends as soon as its condition holds rather than on the next tick of a polling loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["GROUP_WINDOW_SECONDS", "ChangeNotifier", "FloodLimits", "RateWindow"]

#: Length of the sliding window of the per-group limit (Telegram counts groups per minute).
GROUP_WINDOW_SECONDS = 60.0

ChatKey = TypeVar("ChatKey", bound=Hashable)
Result = TypeVar("Result")


class RateWindow:
    """Sliding-window limiter: at most ``capacity`` hits in any ``window`` seconds.

    A hit is allowed once the hit ``capacity`` places before it is at least ``window`` seconds
    old (with capacity 1 and window 1.0, hits must be at least 1.0 s apart).
    """

    def __init__(self, capacity: int, window: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.capacity = capacity
        self.window = window
        self._hits: deque[float] = deque()

    @classmethod
    def from_rate(cls, rate: float, period: float = 1.0) -> RateWindow:
        """A window allowing ``rate`` hits per ``period`` seconds.

        Rates of at least one hit per period give a window of ``period`` and a capacity of
        ``floor(rate)`` (30/s -> 30 hits in any second, 20/min -> 20 hits in any 60 s).
        Smaller rates stretch the window to hold one hit (0.5/s -> 1 hit in any 2 s).
        """
        if rate <= 0:
            raise ValueError("rate must be positive")
        if period <= 0:
            raise ValueError("period must be positive")
        if rate >= 1:
            return cls(math.floor(rate), period)
        return cls(1, period / rate)

    def retry_after(self, now: float) -> int | None:
        """Seconds to wait if one more hit now would exceed the limit, else ``None``."""
        while self._hits and self._hits[0] <= now - self.window:
            self._hits.popleft()
        if len(self._hits) < self.capacity:
            return None
        return max(1, math.ceil(self._hits[0] + self.window - now))

    def hit(self, now: float) -> None:
        self._hits.append(now)


class FloodLimits(Generic[ChatKey]):
    """The send limits of one fake: overall, per private chat and per group; ``None`` is off.

    A send has to fit in the overall window and in the window of its chat: a group's window
    when the send goes to a group, otherwise the private chat's.  Only accepted sends use up
    room in the windows.  Refused sends are counted in :attr:`violations` and, per chat, in
    :attr:`violations_by_chat`.  A fresh instance has empty windows and no violations, which is
    how the fakes reset their limits.
    """

    def __init__(
        self,
        *,
        overall_per_second: float | None = None,
        per_chat_per_second: float | None = None,
        per_group_per_minute: float | None = None,
    ) -> None:
        self._overall_window = (
            RateWindow.from_rate(overall_per_second) if overall_per_second is not None else None
        )
        self._chat_rate = per_chat_per_second
        self._group_rate = per_group_per_minute
        # Created on a chat's first send: the fakes never learn the chats in advance.
        self._chat_windows: dict[ChatKey, RateWindow] = {}
        self._group_windows: dict[ChatKey, RateWindow] = {}
        #: Sends refused because a limit was exceeded.
        self.violations = 0
        #: :attr:`violations` per chat of the refused send.
        self.violations_by_chat: dict[ChatKey, int] = {}

    def admit(self, chat: ChatKey, now: float, *, group: bool = False) -> int | None:
        """Accept a send to ``chat`` at ``now`` (``None``) or refuse it.

        A refusal is counted as a violation and gives the whole number of seconds (at least 1)
        until the send would fit in every window it exceeds.
        """
        windows = self._windows(chat, group)
        waits = [w for w in (window.retry_after(now) for window in windows) if w is not None]
        if waits:
            self.violations += 1
            self.violations_by_chat[chat] = self.violations_by_chat.get(chat, 0) + 1
            return max(waits)
        for window in windows:
            window.hit(now)
        return None

    def _windows(self, chat: ChatKey, group: bool) -> list[RateWindow]:
        """The windows a send to ``chat`` has to fit in."""
        windows: list[RateWindow] = []
        if group:
            if self._group_rate is not None:
                if chat not in self._group_windows:
                    self._group_windows[chat] = RateWindow.from_rate(
                        self._group_rate, GROUP_WINDOW_SECONDS
                    )
                windows.append(self._group_windows[chat])
        elif self._chat_rate is not None:
            if chat not in self._chat_windows:
                self._chat_windows[chat] = RateWindow.from_rate(self._chat_rate)
            windows.append(self._chat_windows[chat])
        if self._overall_window is not None:
            windows.append(self._overall_window)
        return windows


class ChangeNotifier:
    """Wakes every coroutine waiting for "something changed" (notify is callable from sync code)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        # A fresh event per change: waiters that arrive later wait for the next change.
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        """Wait for the next :meth:`notify`, or at most ``seconds``."""
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await event.wait()

    async def wait_until(
        self,
        ready: Callable[[], Result | None],
        timeout: float,  # noqa: ASYNC109 - a deadline for the wait, not for an I/O call
    ) -> Result | None:
        """What ``ready`` returns once it returns something, or ``None`` after ``timeout``.

        ``ready`` is asked again after every :meth:`notify`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = ready()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await self.wait(remaining)
