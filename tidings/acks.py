"""Server-side acknowledged positions of STOMP subscriptions (`ack: client`, `client-individual`).

Most STOMP libraries keep no offsets, so Tidings keeps them: per user and subscription id,
how far the client has acknowledged, in the store (so a client that reconnects to any node
with the same subscription id gets everything it had not acknowledged).

`AckLedger` is the pure part: which delivered messages of one subscription are settled.
`AckPositions` writes positions to the store, every session's changes of one moment in one
transaction, without making the session wait unless it asked for a receipt.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from tidings.model import AckPosition
from tidings.store.base import Store, StoreError

log = logging.getLogger("tidings.acks")


class Settled(Enum):
    PENDING = "pending"
    ACKED = "acked"
    NACKED = "nacked"  # not consumed: stays unacknowledged, delivered again on resubscribe


class TooManyUnacked(Exception):
    """A subscription has more unacknowledged messages than the limit allows."""


class AckLedger:
    """The delivered, not yet settled messages of one subscription, and the position to store.

    `ack: client` is cumulative (an ACK settles every pending message up to it);
    `client-individual` settles one message. A NACKed message is not acknowledged: the
    stored position stays before it, so it comes again when the client subscribes again.
    """

    def __init__(self, destination: str, offset: int, epoch: str, *, cumulative: bool,
                 limit: int, acked: tuple[int, ...] = ()):
        self.destination = destination
        self.offset = offset  # every delivered offset up to here is acknowledged
        self.epoch = epoch
        self.cumulative = cumulative
        self.limit = limit
        self._open: dict[int, Settled] = {o: Settled.ACKED for o in sorted(acked) if o > offset}

    def delivered(self, offset: int) -> None:
        if offset in self._open or offset <= self.offset:
            return  # delivered again (a recovered message acknowledged individually before)
        if len(self._open) >= self.limit:
            raise TooManyUnacked(f"more than {self.limit} unacknowledged messages")
        out_of_order = bool(self._open) and offset < next(reversed(self._open))
        self._open[offset] = Settled.PENDING
        if out_of_order:  # a recovered message noted after a live one: keep offset order
            self._open = dict(sorted(self._open.items()))

    def start_at(self, offset: int, epoch: str) -> None:
        """Where a new subscription stands (known once subscribed; deliveries may precede it)."""
        self.offset, self.epoch = offset, epoch
        self._open = {o: s for o, s in self._open.items() if o > offset}

    def ack(self, offset: int) -> bool:
        """Settle `offset` (and, cumulatively, what came before it); True if anything changed."""
        return self._settle(offset, Settled.ACKED)

    def nack(self, offset: int) -> bool:
        return self._settle(offset, Settled.NACKED)

    def _settle(self, offset: int, state: Settled) -> bool:
        if self._open.get(offset) is not Settled.PENDING:
            return False  # unknown, or settled already
        if self.cumulative:
            for known, settled in self._open.items():
                if known > offset:
                    break
                if settled is Settled.PENDING:
                    self._open[known] = state
        else:
            self._open[offset] = state
        while self._open:
            first = next(iter(self._open))
            if self._open[first] is not Settled.ACKED:
                break
            del self._open[first]
            self.offset = first
        return True

    def position(self) -> AckPosition:
        acked = tuple(o for o, s in self._open.items() if s is Settled.ACKED)
        return AckPosition(self.destination, self.offset, self.epoch, acked)


class AckPositions:
    """Writes acknowledged positions to the store, batching what every session changed.

    `save` returns at once with a future: the session goes on, and awaits the future only
    when the client asked for a receipt or is leaving. The latest position of a key wins;
    everything pending when a write starts goes into that one transaction.
    """

    def __init__(self, store: Store):
        self.store = store
        self._pending: dict[tuple[str, str], AckPosition | None] = {}
        self._waiters: list[asyncio.Future] = []
        self._writing: dict[tuple[str, str], AckPosition | None] = {}
        self._writer: asyncio.Task | None = None

    async def load(self, user: str, subscription: str) -> AckPosition | None:
        key = (user, subscription)
        for unwritten in (self._pending, self._writing):  # read this node's own writes
            if key in unwritten:
                return unwritten[key]
        return await self.store.load_ack_position(user, subscription)

    def save(self, user: str, subscription: str, position: AckPosition | None) -> asyncio.Future:
        """Store `position` (None forgets the subscription); the future is done once durable."""
        self._pending[(user, subscription)] = position
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return future

    async def _write(self) -> None:
        try:
            while self._pending:
                self._writing, self._pending = self._pending, {}
                waiters, self._waiters = self._waiters, []
                try:
                    await self.store.save_ack_positions(self._writing)
                except Exception as exc:  # every waiter hears it; positions stay as they were
                    error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                    log.warning("storing %d acknowledged positions failed: %s",
                                len(self._writing), error)
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(error)
                            waiter.exception()  # retrieved: a session that does not wait is fine
                else:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                finally:
                    self._writing = {}
        finally:
            self._writer = None
