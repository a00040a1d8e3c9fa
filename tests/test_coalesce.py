"""Look-ups asked for at once are fetched in rounds: few fetches, none older than its question."""

from __future__ import annotations

import asyncio

import pytest

from tidings.coalesce import CoalescedCalls


class Source:
    """Answers each fetch with the round's number, after a pause the test controls."""

    def __init__(self) -> None:
        self.fetches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail = False

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.fetches.append(keys)
        await self.release.wait()
        if self.fail:
            raise RuntimeError("store down")
        return {key: len(self.fetches) for key in keys if key != "missing"}


async def test_keys_asked_during_a_round_go_together_in_the_next_one():
    source = Source()
    reads = CoalescedCalls(source.fetch)
    first = asyncio.ensure_future(reads.get("a"))
    await asyncio.sleep(0)  # round 1 is under way with "a" alone
    later = [asyncio.ensure_future(reads.get(f"k{n % 50}")) for n in range(1000)]
    await asyncio.sleep(0)
    source.release.set()
    assert await first == 1
    assert set(await asyncio.gather(*later)) == {2}  # asked after round 1 began: round 2
    assert [len(keys) for keys in source.fetches] == [1, 50]
    assert reads.rounds == 2


async def test_get_many_answers_every_key():
    source = Source()
    source.release.set()
    reads = CoalescedCalls(source.fetch)
    assert await reads.get_many(["x", "y", "x"]) == {"x": 1, "y": 1}
    assert source.fetches == [["x", "y"]]


async def test_a_failed_round_fails_its_callers_and_the_next_round_starts_afresh():
    source = Source()
    reads = CoalescedCalls(source.fetch)
    source.fail = True
    source.release.set()
    outcomes = await asyncio.gather(reads.get("a"), reads.get("b"), return_exceptions=True)
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
    source.fail = False
    assert await reads.get("a") == 2


async def test_a_key_the_fetch_does_not_answer_is_a_key_error():
    source = Source()
    source.release.set()
    with pytest.raises(KeyError):
        await CoalescedCalls(source.fetch).get("missing")


async def test_a_caller_that_gives_up_leaves_the_round_to_the_others():
    source = Source()
    reads = CoalescedCalls(source.fetch)
    quitter = asyncio.ensure_future(reads.get("a"))
    stayer = asyncio.ensure_future(reads.get("a"))
    await asyncio.sleep(0)
    quitter.cancel()
    source.release.set()
    assert await stayer == 1
    assert quitter.cancelled()
    await asyncio.sleep(0)
    assert reads._round is None  # nothing left running once nobody waits
