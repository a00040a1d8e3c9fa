"""Things filed by when they next need a look, so a periodic pass touches only those due.

The node looks at its sessions every second (a ping due? a pong late? a token expired?),
yet a session needs anything about once per ping interval: a pass over every session cost
an idle 19,000-connection node a third of its CPU, and would pause a 100,000-connection
node's event loop for 50 ms every second. Here each thing sits in the bucket of the slot
(`resolution` seconds wide) its due time falls in; a pass empties the buckets whose slot
has passed and takes from the current one only what is due, so its cost follows the number
due, not the number filed. A thing never comes out before its time, and always at the
first pass at or after it.

Each thing is filed once, at its soonest due time: filing it for a later time changes
nothing, filing it for a sooner one moves it. A time that only moves later (a client that
was heard from) needs no filing at all: the owner finds, when the thing comes out, that it
is not due yet and files it again for the new time. Sans-I/O: no clock, no callbacks; the
caller says what time it is.
"""

from __future__ import annotations

from collections.abc import Hashable
from heapq import heappop, heappush
from math import floor
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class TimingWheel(Generic[T]):
    def __init__(self, resolution: float):
        if resolution <= 0:
            raise ValueError("the resolution is a positive number of seconds")
        self.resolution = resolution
        self._due: dict[T, float] = {}  # what is filed, and for when
        self._buckets: dict[int, set[T]] = {}  # slot -> what is due in it
        self._slots: list[int] = []  # a heap of the slots with a bucket (or one emptied since)

    def __len__(self) -> int:
        return len(self._due)

    def file(self, item: T, due: float) -> None:
        """Have `item` come out of `pop_due` once `due` has come (a finite time, in the
        caller's clock). Already filed for that time or sooner, it stays where it is."""
        dues = self._due
        filed = dues.get(item)
        if filed is not None:
            if filed <= due:
                return
            self._unbucket(item, filed)
        dues[item] = due
        slot = floor(due / self.resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            heappush(self._slots, slot)
        bucket.add(item)

    def discard(self, item: T) -> None:
        """Take `item` off the wheel, if it is on it."""
        due = self._due.pop(item, None)
        if due is not None:
            self._unbucket(item, due)

    def pop_due(self, now: float) -> list[T]:
        """Everything filed for `now` or sooner, taken off the wheel (the caller files again
        what needs another look): every bucket of a slot before `now`'s, and what is due of
        the bucket `now` falls in. The rest is not looked at."""
        current = floor(now / self.resolution)
        slots, buckets = self._slots, self._buckets
        popped: list[T] = []
        while slots and slots[0] < current:
            bucket = buckets.pop(heappop(slots), None)
            if bucket:
                popped.extend(bucket)
        bucket = buckets.get(current)
        if bucket:
            due = self._due
            ready = [item for item in bucket if due[item] <= now]
            if len(ready) == len(bucket):
                del buckets[current]  # its heap entry goes once the slot has passed
            else:
                bucket.difference_update(ready)
            popped.extend(ready)
        for item in popped:
            del self._due[item]
        return popped

    def _unbucket(self, item: T, due: float) -> None:
        slot = floor(due / self.resolution)
        bucket = self._buckets[slot]
        bucket.discard(item)
        if not bucket:
            del self._buckets[slot]
