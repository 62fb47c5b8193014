"""Python work run in a thread beside the event loop, without making the loop wait long.

A thread running Python holds the GIL; the event loop, woken by a socket, asks for it and
gets it only when the interpreter's switch interval (5 ms by default) has passed. A
webhook makes several database round trips, each a wake-up, so a webhook stored while
the public page's figures are computed waited up to 5 ms at each of them: tens of ms in
all. While such work runs, the interval is made shorter, so that the loop waits about a
millisecond at each; it is put back when the last such work ends.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

# The switch interval while work runs beside the loop, in seconds. Shorter still would
# spend more of the thread's time handing the GIL back and forth.
SWITCH_INTERVAL = 0.001

P = ParamSpec("P")
T = TypeVar("T")


class _Interval:
    """The switch interval to put back, and how many pieces of work are under way (in
    every event loop of the process: the interval is the interpreter's)."""

    def __init__(self) -> None:
        self.running = 0
        self.saved = sys.getswitchinterval()
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.running == 0:
                self.saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self.saved, SWITCH_INTERVAL))
            self.running += 1

    def leave(self) -> None:
        with self._lock:
            self.running -= 1
            if self.running == 0:
                sys.setswitchinterval(self.saved)


_interval = _Interval()


async def beside_loop(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` in a thread, the loop going on meanwhile."""
    _interval.enter()
    try:
        return await asyncio.to_thread(work, *args, **kwargs)
    finally:
        _interval.leave()
