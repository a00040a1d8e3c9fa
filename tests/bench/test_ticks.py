"""bench.ticks on a few sessions: both passes run and time every simulated second."""

from __future__ import annotations

from bench import ticks


async def test_both_passes_time_every_simulated_second():
    for one_pass in (ticks.every_session, ticks.wheel):
        took = await ticks.timed(50, 3, one_pass)
        assert len(took) == 3 and all(t >= 0 for t in took)
