"""Trend samples: counters become rates against the previous sample; busiest channels by rate."""

from __future__ import annotations

from tidings.admin.trends import Reading, Trends


def _reading(publications: float, channels: dict, lag: tuple[float, float] = (0.0, 0.0)):
    return Reading(connections=3, users=2, publications=publications, deliveries=publications * 2,
                   lag_sum=lag[0], lag_count=lag[1], channels=channels)


def test_the_first_sample_only_sets_the_baseline_then_rates_follow():
    readings = iter([_reading(10, {"room:a": (10, 1)}, (0.01, 10)),
                     _reading(30, {"room:a": (14, 1), "room:b": (16, 5)}, (0.05, 20))])
    trends = Trends(lambda: next(readings), keep=5)
    trends.sample(now=100.0)
    assert trends.series()["time"] == [] and trends.busiest == []
    trends.sample(now=102.0)
    series = trends.series()
    assert series["publications"] == [10.0] and series["deliveries"] == [20.0]
    assert series["connections"] == [3] and series["users"] == [2]
    assert abs(series["loop_lag"][0] - 0.004) < 1e-9  # 0.04 s over 10 wake-ups
    assert trends.busiest == [{"channel": "room:b", "rate": 8.0, "subscribers": 5},
                              {"channel": "room:a", "rate": 2.0, "subscribers": 1}]


def test_only_the_newest_samples_are_kept_and_a_reset_counter_is_no_negative_rate():
    values = iter([50, 60, 10, 20, 30])
    trends = Trends(lambda: _reading(next(values), {"room:a": (0, 1)}), keep=2)
    for second in range(5):
        trends.sample(now=float(second))
    assert trends.series()["publications"] == [10.0, 10.0]
    assert trends.series()["time"] == [3000, 4000]
