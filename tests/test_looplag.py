"""Event-loop lag: a loop blocked for a while shows in the histogram, an idle one does not."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

from tidings.looplag import BUCKETS, LoopLag


async def test_a_blocked_loop_shows_as_lag():
    histogram = Histogram("lag", "lag", registry=CollectorRegistry(), buckets=BUCKETS)
    lag = LoopLag(histogram, 0.02)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.1)
    assert lag.worst < 0.05
    time.sleep(0.3)  # blocks the loop, as a slow callback would
    await asyncio.sleep(0.05)
    task.cancel()
    assert 0.25 < lag.worst < 0.5
    samples = {s.name: s.value for s in histogram.collect()[0].samples if s.name != "lag_bucket"}
    assert samples["lag_count"] >= 5 and 0.25 < samples["lag_sum"] < 0.6
