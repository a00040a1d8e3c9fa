"""The connection caps and the command token bucket, on their own (the clock is the test's)."""

from __future__ import annotations

import pytest

from tidings.config import Security
from tidings.limits import CommandBucket, ConnectionCaps, Refusal


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_takes_a_burst_then_refuses():
    bucket = CommandBucket(rate=10, burst=5, clock=Clock())
    assert [bucket.take() for _ in range(7)] == [True] * 5 + [False] * 2


def test_the_bucket_refills_at_the_rate_up_to_the_burst():
    clock = Clock()
    bucket = CommandBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        bucket.take()
    clock.now += 0.2  # two tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 100
    assert sum(bucket.take() for _ in range(10)) == 5


def test_retry_after_says_when_the_next_command_is_taken():
    clock = Clock()
    bucket = CommandBucket(rate=10, burst=1, clock=clock)
    bucket.take()
    assert not bucket.take()
    wait = bucket.retry_after()
    clock.now += wait * 0.99
    assert not bucket.take()
    clock.now += bucket.retry_after()
    assert bucket.take()


def test_a_client_sending_into_an_empty_bucket_ends_up_flooding():
    bucket = CommandBucket(rate=10, burst=5, clock=Clock())
    for _ in range(5):
        assert bucket.take()
    refused = 0
    while not bucket.flooding:
        assert not bucket.take()
        refused += 1
    assert refused == 5  # a whole burst of refused commands


def test_a_client_that_waits_as_told_never_floods():
    clock = Clock()
    bucket = CommandBucket(rate=10, burst=2, clock=clock)
    for _ in range(200):
        if not bucket.take():
            clock.now += bucket.retry_after()
        assert not bucket.flooding


def _caps(**limits) -> ConnectionCaps:
    return ConnectionCaps(Security(**limits))


def test_the_total_cap_refuses_with_503_and_a_release_frees_a_place():
    caps = _caps(max_connections=2)
    first = caps.admit("10.0.0.1")
    caps.admit("10.0.0.2")
    with pytest.raises(Refusal) as refused:
        caps.admit("10.0.0.3")
    assert (refused.value.status, refused.value.reason) == (503, "max_connections")
    first.release()
    first.release()  # twice is harmless
    assert caps.total == 1
    caps.admit("10.0.0.3")


def test_the_per_address_cap_refuses_with_429_and_counts_each_address():
    caps = _caps(max_connections_per_address=2)
    places = [caps.admit("10.0.0.1"), caps.admit("10.0.0.1")]
    with pytest.raises(Refusal) as refused:
        caps.admit("10.0.0.1")
    assert (refused.value.status, refused.value.reason) == (429, "max_connections_per_address")
    caps.admit("10.0.0.2")
    places[0].release()
    caps.admit("10.0.0.1")
    for place in places[1:]:
        place.release()
    assert caps.by_address == {"10.0.0.1": 1, "10.0.0.2": 1}


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "::1"])
def test_loopback_peers_count_toward_the_total_only(address):
    caps = _caps(max_connections_per_address=1, max_connections=5)
    for _ in range(5):
        caps.admit(address)
    assert caps.by_address == {}
    with pytest.raises(Refusal):
        caps.admit(address)


def test_zero_means_no_cap():
    caps = _caps(max_connections=0, max_connections_per_address=0, max_connections_per_user=0)
    for _ in range(1000):
        caps.admit("10.0.0.1")
    assert caps.user_full(10**6) is None


def test_the_per_user_cap():
    caps = _caps(max_connections_per_user=3)
    assert caps.user_full(2) is None
    assert "3" in caps.user_full(3)
