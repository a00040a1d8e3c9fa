"""Event-loop lag: how late the loop wakes a task that asked to sleep, as a histogram.

Everything a node does runs on one event loop, so one slow callback (a long JSON encode, a
blocking call that slipped in, a garbage-collector pass) delays every client at once. The
lag is the cheapest honest measure of that: a task sleeps `interval` seconds again and
again and records how much later than asked it woke up (`tidings_event_loop_lag_seconds`).
The fault suite reads it to show what a fault cost the node's other clients.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLag:
    def __init__(self, histogram: Histogram, interval: float):
        self._histogram = histogram
        self._interval = interval
        self.worst = 0.0  # seconds, since start

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            lag = max(0.0, loop.time() - asked)
            self.worst = max(self.worst, lag)
            self._histogram.observe(lag)
