"""Small charts for the admin console: a node's figures sampled every few seconds.

A sample reads counters the node keeps anyway (connections, publications, deliveries,
event-loop lag) and turns the counters into rates against the previous sample; the newest
`keep` samples are kept. The same pass finds the busiest channels: each channel's
publications since the previous sample. One sample is one walk over the node's channels
every `interval` seconds, and only on a node whose console is on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SERIES = ("connections", "users", "publications", "deliveries", "loop_lag")


@dataclass(frozen=True, slots=True)
class Reading:
    """Cumulative figures at one moment (the sampler turns counters into rates)."""

    connections: int
    users: int
    publications: float  # accepted since start
    deliveries: float  # written to local sessions since start
    lag_sum: float  # event-loop lag histogram: sum and count since start
    lag_count: float
    channels: dict[str, tuple[int, int]]  # channel -> (publications since start, subscribers)


class Trends:
    def __init__(self, read: Callable[[], Reading], *, interval: float = 2.0, keep: int = 90,
                 busiest: int = 10):
        self._read = read
        self.interval = interval
        self.busiest_count = busiest
        self.points: deque[dict] = deque(maxlen=keep)
        self.busiest: list[dict] = []
        self._last: Reading | None = None
        self._last_at = 0.0

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def sample(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        reading = self._read()
        last, elapsed = self._last, now - self._last_at
        if last is not None and elapsed > 0:
            lags = reading.lag_count - last.lag_count
            self.points.append({
                "time": int(now * 1000),
                "connections": reading.connections,
                "users": reading.users,
                "publications": max(0.0, reading.publications - last.publications) / elapsed,
                "deliveries": max(0.0, reading.deliveries - last.deliveries) / elapsed,
                "loop_lag": (reading.lag_sum - last.lag_sum) / lags if lags > 0 else 0.0,
            })
            self.busiest = self._busiest(last.channels, reading.channels, elapsed)
        self._last, self._last_at = reading, now

    def _busiest(self, before: dict[str, tuple[int, int]], now: dict[str, tuple[int, int]],
                 elapsed: float) -> list[dict]:
        rates = []
        for channel, (published, subscribers) in now.items():
            earlier = before.get(channel, (0, 0))[0]
            rates.append((max(0, published - earlier) / elapsed, subscribers, channel))
        rates.sort(key=lambda item: (-item[0], -item[1], item[2]))
        return [{"channel": channel, "rate": rate, "subscribers": subscribers}
                for rate, subscribers, channel in rates[: self.busiest_count]]

    def series(self) -> dict[str, list]:
        """Column per figure, oldest first: what the page's charts draw."""
        points = list(self.points)
        return {name: [point[name] for point in points] for name in ("time", *SERIES)}
