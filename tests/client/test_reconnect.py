"""The reconnect rule and the backoff: from the close code alone, with full jitter."""

from __future__ import annotations

import random

import pytest

from tidings.client.reconnect import Backoff, should_reconnect


@pytest.mark.parametrize("code", [4000, 4004, 4005, 4006, 4007, 4008, 4009, 4499, 1006, 1011])
def test_reconnects_on_4000_to_4499_lost_and_server_error(code):
    assert should_reconnect(code)


@pytest.mark.parametrize("code", [1000, 1003, 1009, 4500, 4501, 4502, 4503, 4999])
def test_does_not_reconnect_on_4500_to_4999_or_client_faults(code):
    assert not should_reconnect(code)


def test_delay_of_each_attempt_stays_under_its_exponential_ceiling():
    backoff, rng = Backoff(base=0.5, cap=20.0), random.Random(7)
    for attempt in range(12):
        ceiling = min(20.0, 0.5 * 2 ** attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)


def test_full_jitter_spreads_delays_over_the_whole_range():
    backoff, rng = Backoff(base=1.0, cap=10.0), random.Random(1)
    delays = [backoff.delay(20, rng) for _ in range(1000)]  # ceiling is the cap
    assert min(delays) < 1.0 and max(delays) > 9.0
    assert 4.0 < sum(delays) / len(delays) < 6.0


def test_a_huge_attempt_number_is_capped_not_an_overflow():
    assert 0 <= Backoff(base=0.5, cap=3.0).delay(10_000) <= 3.0
