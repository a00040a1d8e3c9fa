"""The timing wheel: what comes out of a pass, and when, against a plain dict of due times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.wheel import TimingWheel


def test_an_item_comes_out_once_its_time_has_come_and_not_before():
    wheel: TimingWheel[str] = TimingWheel(1.0)
    wheel.file("a", 10.5)
    assert wheel.pop_due(10.4) == []  # same slot, not due yet
    assert wheel.pop_due(10.5) == ["a"]
    assert wheel.pop_due(20.0) == []  # out once: the caller files it again
    assert len(wheel) == 0


def test_a_pass_empties_the_slots_gone_by_and_takes_only_the_due_of_the_current_one():
    wheel: TimingWheel[str] = TimingWheel(1.0)
    for item, due in (("early", 3.2), ("late-in-slot", 5.9), ("in-slot", 5.1), ("later", 6.0)):
        wheel.file(item, due)
    assert sorted(wheel.pop_due(5.5)) == ["early", "in-slot"]
    assert len(wheel) == 2
    assert sorted(wheel.pop_due(6.0)) == ["late-in-slot", "later"]


def test_filing_sooner_moves_an_item_and_filing_later_leaves_it():
    wheel: TimingWheel[str] = TimingWheel(1.0)
    wheel.file("a", 30.0)
    wheel.file("a", 12.0)  # a deadline moved earlier
    wheel.file("a", 40.0)  # later changes nothing: found out when it comes out
    assert wheel.pop_due(11.9) == []
    assert wheel.pop_due(12.0) == ["a"]
    assert wheel.pop_due(40.0) == []  # not left behind in its first bucket


def test_an_item_filed_for_a_time_gone_by_comes_out_at_the_next_pass():
    wheel: TimingWheel[str] = TimingWheel(1.0)
    assert wheel.pop_due(100.0) == []
    wheel.file("a", 50.0)
    assert wheel.pop_due(100.2) == ["a"]


def test_a_discarded_item_never_comes_out():
    wheel: TimingWheel[str] = TimingWheel(1.0)
    wheel.file("a", 1.0)
    wheel.file("b", 1.0)
    wheel.discard("a")
    wheel.discard("never-filed")
    assert wheel.pop_due(2.0) == ["b"]


def test_a_pass_looks_at_no_item_of_a_later_slot():
    """What the node's tick rests on: a thousand items not due cost a pass nothing."""
    wheel: TimingWheel[Spy] = TimingWheel(1.0)
    items = [Spy() for _ in range(1000)]
    for n, item in enumerate(items):
        wheel.file(item, 2.0 + n % 25)
    Spy.hashed = 0
    assert wheel.pop_due(1.9) == []
    assert Spy.hashed == 0


class Spy:
    hashed = 0  # how often any instance was looked up

    def __hash__(self) -> int:
        Spy.hashed += 1
        return id(self)


def test_the_resolution_is_positive():
    with pytest.raises(ValueError):
        TimingWheel(0)


operations = st.lists(st.one_of(
    st.tuples(st.just("file"), st.integers(0, 9), st.floats(0, 60, allow_nan=False)),
    st.tuples(st.just("discard"), st.integers(0, 9), st.just(0.0)),
    st.tuples(st.just("pop"), st.just(0), st.floats(0, 5, allow_nan=False)),
), max_size=80)


@given(operations, st.sampled_from([0.1, 1.0, 2.5]))
def test_a_pass_returns_exactly_what_is_filed_for_then_or_sooner(ops, resolution):
    wheel: TimingWheel[int] = TimingWheel(resolution)
    model: dict[int, float] = {}
    now = 0.0
    for op, item, value in ops:
        if op == "file":
            model[item] = min(model.get(item, value), value)
            wheel.file(item, value)
        elif op == "discard":
            model.pop(item, None)
            wheel.discard(item)
        else:
            now += value  # time goes forward, in steps of any size
            due = {i for i, t in model.items() if t <= now}
            assert sorted(wheel.pop_due(now)) == sorted(due)
            for i in due:
                del model[i]
        assert len(wheel) == len(model)
