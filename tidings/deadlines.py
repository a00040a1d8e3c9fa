"""Many bounded waits, one timer: what a per-request `asyncio.wait_for` would cost per call.

Every publish waits for its group commit with a bound (`resilience.publish_timeout`).
`wait_for` arms a loop timer per call and wraps the future twice (`shield`, a waiter); on the
direct-message path, where every message is its own publish, that was the largest single
cost in the profile (about a fifth of the node's CPU, most of it arming timers). Here a
bounded wait is one entry in a FIFO queue per bound, and one timer, re-armed at most every
`resolution` seconds, expires what is overdue: a wait is told of its timeout between its
bound and its bound plus `resolution`.

Waits with the same bound are queued in the order they start, so each queue is sorted by
deadline and expiring is popping from its head; a wait that ended in time is dropped when
its deadline comes round, with no bookkeeping when it ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

RESOLUTION = 0.05  # seconds a timeout may be told late


class Deadlines:
    def __init__(self, resolution: float = RESOLUTION):
        self.resolution = resolution
        self._queues: dict[float, deque[tuple[float, asyncio.Future, Callable[[], None]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def add(self, within: float, future: asyncio.Future, expire: Callable[[], None]) -> None:
        """Call `expire()` once `within` seconds have passed, unless `future` is done by then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        queue = self._queues.get(within)
        if queue is None:
            queue = self._queues[within] = deque()
        queue.append((deadline, future, expire))
        if self._timer is None or deadline < self._armed_at:
            self._arm(loop, deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_at = when
        self._timer = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        soonest = None
        for within, queue in list(self._queues.items()):
            while queue and queue[0][0] <= now:
                _, future, expire = queue.popleft()
                if not future.done():
                    expire()
            if not queue:
                del self._queues[within]
            elif soonest is None or queue[0][0] < soonest:
                soonest = queue[0][0]
        if soonest is not None:
            self._arm(loop, max(soonest, now + self.resolution))

    def cancel(self) -> None:
        """Forget every wait (the owner is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queues.clear()
