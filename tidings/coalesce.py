"""Calls asked for at once are made at once: group commit for look-ups and small writes.

When thousands of clients reconnect together (a node died, its clients came here), each one
asks the store for the same few things: the position of its channels, the publications it
missed. One read each would queue thousands of round trips behind each other. Instead,
reads run in rounds: the first key asked starts a round; keys asked while it is under way
wait and all go in the next round, one `fetch` for all of them. A burst of N look-ups costs
a few round trips, however large N is.

A round starts after the key was asked for, so its answer is never older than the question:
coalescing never hands a caller a stale read. A caller that gives up (is cancelled) leaves
the round to the others; a failed fetch fails every caller of that round, and the next
round starts afresh. The same goes for idempotent writes (a presence entry): each is
written no earlier than asked, together with the others of its round.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CoalescedCalls(Generic[K, V]):
    def __init__(self, fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]]):
        self._fetch = fetch
        self._next: dict[K, asyncio.Future] = {}  # keys waiting for the next round
        self._round: asyncio.Task | None = None
        self.rounds = 0  # fetches made, for tests and metrics

    async def get(self, key: K) -> V:
        """The value of `key`, read no earlier than now, together with whoever else asks."""
        return await asyncio.shield(self._ask(key))

    async def get_many(self, keys: list[K]) -> dict[K, V]:
        values = await asyncio.shield(asyncio.gather(*(self._ask(key) for key in keys)))
        return dict(zip(keys, values))

    def _ask(self, key: K) -> asyncio.Future:
        future = self._next.get(key)
        if future is None:
            future = self._next[key] = asyncio.get_running_loop().create_future()
        if self._round is None:
            self._round = asyncio.get_running_loop().create_task(
                self._rounds(), context=contextvars.Context())  # serves every caller alike
        return future

    async def _rounds(self) -> None:
        """One fetch per round, until nobody is waiting."""
        batch: dict[K, asyncio.Future] = {}
        try:
            while self._next:
                batch, self._next = self._next, {}
                self.rounds += 1
                try:
                    values = await self._fetch(list(batch))
                except Exception as exc:  # every caller of this round hears it
                    for future in batch.values():
                        _settle(future, exc=exc)
                    continue
                for key, future in batch.items():
                    if key in values:
                        _settle(future, values[key])
                    else:
                        _settle(future, exc=KeyError(key))
        finally:  # cancelled (the store is closing): nobody may wait forever
            for future in (*batch.values(), *self._next.values()):
                future.cancel()
            self._next = {}
            self._round = None


def _settle(future: asyncio.Future, value: object = None, *,
            exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(value)
    else:
        future.set_exception(exc)
        future.exception()  # retrieved: a caller that gave up must not be warned about
