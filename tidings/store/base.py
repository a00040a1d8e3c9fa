"""The store interface: durable, per-channel ordered history with gap-free offsets.

Every stored publication gets the next offset of its channel. The store is the source of
truth for ordering: the live path (broker, hub) may drop or reorder, and whatever it loses
is read back from here by offset.

Appends go through group commit: requests that arrive while a batch is being written wait
and are written together in the next batch, so a burst of N publishes costs one transaction
and one fsync instead of N, and no publish is acknowledged before its batch is durable.

A caller may bound its wait (`append(..., within=seconds)`). Past the bound, a request
still queued is withdrawn, so the caller knows it was not stored (StoreError); one already
inside a commit may yet be stored, so the caller hears OutcomeUnknown, which carries the
request's future for whoever must act once the commit settles. `stalled_for()` tells how
long the oldest outstanding work has waited, for health checks and for refusing new work
at once while commits are stuck.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tidings.coalesce import CoalescedCalls
from tidings.deadlines import Deadlines
from tidings.model import AckPosition, HistoryPage, Publication, StreamPosition
from tidings.readstate import InboxCounts, InboxMessage, InboxSpec, InboxView, ReadChange
from tidings.supervision import Supervisor

log = logging.getLogger("tidings.store")


class StoreError(Exception):
    """The store could not do what was asked (connection lost, disk full, ...)."""


class CommitUnknown(StoreError):
    """The database connection died while a batch was committing: it may be stored or not.

    Said instead of a plain StoreError so that nobody is told "not stored" about a
    publication whose COMMIT may have gone through just before the connection went.
    """


class OutcomeUnknown(Exception):
    """A bounded append ran out of time while its batch was being committed.

    The publication may or may not be stored; `late` resolves when that is known.
    """

    def __init__(self, waited: float, late: asyncio.Future):
        super().__init__(f"no answer from the store within {waited:g} s")
        self.late = late


class RecoveryImpossible(Exception):
    """The asked-for position can no longer be recovered; `reason` says why."""

    def __init__(self, reason: str, position: StreamPosition):
        super().__init__(reason)
        self.reason = reason
        self.position = position


@dataclass(slots=True, frozen=True)
class Retention:
    """How much history a channel keeps: at most `size` publications, none older than `ttl` s.

    `ttl` of 0 keeps publications until `size` pushes them out.
    """

    size: int
    ttl: float = 0.0


@dataclass(slots=True)
class AppendRequest:
    channel: str
    data: bytes
    retention: Retention
    source: str | None
    sender: str | None
    time: int
    future: asyncio.Future
    queued: float = 0.0  # time.monotonic() when it was queued
    idempotency: "Idempotency | None" = None
    inbox: InboxSpec | None = None

    @property
    def expires(self) -> int | None:
        """When the publication stops being served (ms), or None if only size trims it."""
        ttl = self.retention.ttl
        return self.time + int(ttl * 1000) if ttl else None

    def stored(self, offset: int, epoch: str) -> Publication:
        return Publication(self.channel, offset, epoch, self.data, self.time, self.source,
                           self.sender)

    def row(self, offset: int) -> tuple:
        """The publications-table row: channel, offset, time, expires, data, source, sender."""
        return (self.channel, offset, self.time, self.expires, self.data, self.source,
                self.sender)

    def inbox_row(self, offset: int) -> tuple | None:
        """The inbox-table row (recipient, offset, source, time, expires, data), or None if
        the publication is no inbox message (it needs an inbox spec and a source)."""
        spec = self.inbox
        if spec is None or self.source is None:
            return None
        age = int(spec.max_age * 1000)
        return (spec.user, offset, self.source, self.time, self.time + age if age else None,
                self.data)


@dataclass(slots=True, frozen=True)
class Append:
    """One publication to store, as `Store.append_many` takes them (see `Store.append`)."""

    channel: str
    data: bytes
    retention: Retention
    source: str | None = None
    sender: str | None = None
    idempotency: "Idempotency | None" = None
    inbox: InboxSpec | None = None


class BatchTimeout(StoreError):
    """`append_many` ran out of time: `late` are the appends whose commit was under way.

    The queued ones were withdrawn (not stored); each late one may yet be stored, and its
    future says so when its commit settles.
    """

    def __init__(self, waited: float, late: list[asyncio.Future]):
        super().__init__(f"the store did not commit the batch within {waited:g} s")
        self.late = late


@dataclass(slots=True, frozen=True)
class Idempotency:
    """An append that must happen once per `key` and channel within `window` seconds."""

    key: str
    window: float


@dataclass(slots=True, frozen=True)
class Duplicate:
    """The answer to an append whose idempotency key was already used: the first one's place.

    Nothing was stored; the publication it names was delivered when it was first appended.
    """

    channel: str
    offset: int
    epoch: str
    time: int


def _ignore(seconds: float) -> None:
    """The commit observer of a store nobody measures."""


def now_ms() -> int:
    return int(time.time() * 1000)


def repeats_in_batch(batch: Sequence[AppendRequest]) -> dict[int, int]:
    """Requests that repeat the idempotency key (and channel) of an earlier one in the batch.

    Maps each such request's index to the index of the first one: that one is appended (or
    found in the store), the repeats get its place.
    """
    first: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    for index, request in enumerate(batch):
        if request.idempotency is None:
            continue
        key = (request.idempotency.key, request.channel)
        if key in first:
            repeats[index] = first[key]
        else:
            first[key] = index
    return repeats


def resolve_repeats(results: list, repeats: dict[int, int]) -> None:
    """Give every in-batch repeat the place its first request got."""
    for index, first in repeats.items():
        done = results[first]
        results[index] = done if isinstance(done, Duplicate) else Duplicate(
            done.channel, done.offset, done.epoch, done.time)


# Per kind of read-state change: what it sets, and which rows it actually changes
# (0/1 integers in every backend).
CHANGE_SETS = {
    "read": ("is_read = 1, is_seen = 1", "is_read = 0"),
    "unread": ("is_read = 0", "is_read = 1"),
    "seen": ("is_seen = 1", "is_seen = 0"),
    "archive": ("is_archived = 1", "is_archived = 0"),
}


def change_filter(change: ReadChange) -> list[tuple[str, object]]:
    """The conditions (column test, value) that pick the messages a change touches."""
    terms: list[tuple[str, object]] = []
    if change.offset is not None:
        terms.append(("offset =", change.offset))
    if change.source is not None:
        terms.append(("source =", change.source))
    if change.upto is not None:
        terms.append(("offset <=", change.upto))
    return terms


def cursor_column(change: ReadChange) -> str | None:
    """The shared notifications' cursor a change moves (`read_upto` or `seen_upto`), if any.

    `read` of a shared source or of everything moves the read cursor, `seen` the seen
    cursor; reading one offset, `unread` and `archive` concern the user's own messages.
    """
    if change.kind == "read" and change.offset is None and (change.shared
                                                             or change.source is None):
        return "read_upto"
    if change.kind == "seen":
        return "seen_upto"
    return None


class Store(ABC):
    """Durable channel history. Subclasses implement the `_`-prefixed primitives."""

    def __init__(self, *, group_commit: bool = True, max_batch: int = 1000):
        self._max_batch = max_batch if group_commit else 1
        self._pending: list[AppendRequest] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._closing = False
        self._committing_since: float | None = None
        self.last_failure: str | None = None  # the latest failed commit's error, until one succeeds
        # Told of each committed batch's new publications before any waiter hears of them:
        # the node hands them to its hub together (see Hub.deliver_batch).
        self.on_commit: Callable[[list[Publication]], None] | None = None
        self.supervisor = Supervisor()  # runs the writer (and a backend's own loops)
        self._deadlines = Deadlines()  # the bounds of appends made `within` some time
        self.batches_committed = 0
        self.publications_committed = 0
        self.observe_commit: Callable[[float], None] = _ignore
        """Told each durable batch's commit time in seconds (the node's histogram)."""
        # a reconnect storm asks for thousands of positions and ranges at once (coalesce.py)
        self.position_reads: CoalescedCalls[str, StreamPosition] = CoalescedCalls(
            self._positions)
        self.range_reads: CoalescedCalls[tuple[str, int, int], list[Publication]] = \
            CoalescedCalls(self._read_ranges)
        # the channel whose sourced publications are every user's shared notifications
        self.shared_channel: str | None = None

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self._open()
        self._writer = self.supervisor.spawn("store-writer", self._write_loop)

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        self._deadlines.cancel()
        if self._writer is not None:
            await asyncio.wait({self._writer})
        await self.supervisor.stop()
        await self._close()

    # ---- the interface ---------------------------------------------------------------

    async def append(
        self,
        channel: str,
        data: bytes,
        *,
        retention: Retention,
        source: str | None = None,
        sender: str | None = None,
        within: float | None = None,
        idempotency: Idempotency | None = None,
        inbox: InboxSpec | None = None,
    ) -> Publication | Duplicate:
        """Store one publication; returns it with its offset once its batch is durable.

        With `within`, answers within that many seconds: StoreError if it was not stored
        (refused at once while commits have been stalled longer than `within`, or withdrawn
        from the queue), OutcomeUnknown if its batch was still being committed.
        With `idempotency`, a key already used for this channel within its window stores
        nothing and returns the first append's place (Duplicate). With `inbox`, the
        publication also becomes a message in that user's inbox, in the same transaction.
        """
        if self._closing:
            raise StoreError("store is closing")
        queued = time.monotonic()
        if within is not None and (stalled := queued - self._oldest_work(queued)) > within:
            raise StoreError(f"store commits stalled for {stalled:.1f} s: not stored")
        future = asyncio.get_running_loop().create_future()
        request = AppendRequest(channel, data, retention, source, sender, now_ms(), future,
                                queued, idempotency, inbox)
        self._pending.append(request)
        self._wakeup.set()
        if within is not None:
            self._deadlines.add(within, future, lambda: self._overdue(request, within))
        return await future

    def _overdue(self, request: AppendRequest, within: float) -> None:
        """Answer the caller of an append still unanswered after `within` seconds.

        Still queued: withdrawn, so certainly not stored. Inside a commit: its caller hears
        OutcomeUnknown, and the request's result goes to the `late` future it carries.
        """
        caller = request.future
        if request in self._pending:
            self._pending.remove(request)
            caller.set_exception(
                StoreError(f"store did not commit within {within:g} s: not stored"))
            return
        late = asyncio.get_running_loop().create_future()
        request.future = late
        caller.set_exception(OutcomeUnknown(within, late))

    @property
    def queued(self) -> int:
        """Appends waiting for a commit to start."""
        return len(self._pending)

    async def append_many(self, appends: Sequence[Append], *,
                          within: float) -> list[Publication | Duplicate | StoreError]:
        """Queue many publications at once (one wakeup of the writer, one wait) for a caller
        that has a batch, such as ingest; each one's place, or the StoreError it met.

        Each append succeeds or fails on its own (a batch may span two commits). Past
        `within` seconds the ones still queued are withdrawn and BatchTimeout is raised.
        """
        if self._closing:
            raise StoreError("store is closing")
        if (stalled := self.stalled_for()) > within:
            raise StoreError(f"store commits stalled for {stalled:.1f} s: not stored")
        loop = asyncio.get_running_loop()
        queued, at = time.monotonic(), now_ms()
        requests = [AppendRequest(a.channel, a.data, a.retention, a.source, a.sender, at,
                                  loop.create_future(), queued, a.idempotency, a.inbox)
                    for a in appends]
        self._pending.extend(requests)
        self._wakeup.set()
        futures = [request.future for request in requests]
        _, unsettled = await asyncio.wait(futures, timeout=within)
        if unsettled:
            mine = {id(request) for request in requests}
            kept = []
            for request in self._pending:  # withdraw the ones not yet in a commit
                if id(request) in mine:
                    request.future.cancel()
                else:
                    kept.append(request)
            self._pending = kept
            raise BatchTimeout(within, [f for f in unsettled if not f.cancelled()])
        return [f.exception() or f.result() for f in futures]  # type: ignore[misc]

    def stalled_for(self) -> float:
        """Seconds the oldest unfinished work (a commit under way, a queued append) has waited."""
        now = time.monotonic()
        return now - self._oldest_work(now)

    def _oldest_work(self, now: float) -> float:
        """When the oldest unfinished work started (`now` if there is none); asked per append,
        so it builds nothing."""
        oldest = now
        if self._pending and self._pending[0].queued < oldest:
            oldest = self._pending[0].queued
        if self._committing_since is not None and self._committing_since < oldest:
            oldest = self._committing_since
        return oldest

    async def history(
        self, channel: str, *, limit: int, since: int | None = None, reverse: bool = False
    ) -> HistoryPage:
        """A page of history.

        Forward (oldest first): offsets greater than `since` (or from the oldest kept).
        Reverse (newest first): offsets smaller than `since` (or from the newest).
        """
        pubs, position = await self._history(channel, limit, since, reverse)
        return HistoryPage(pubs, position)

    async def positions(self, channels: Sequence[str]) -> dict[str, StreamPosition]:
        """Current top offset and epoch of each channel (offset 0 for a channel never written)."""
        return await self.position_reads.get_many(list(channels))

    async def recover(
        self, channel: str, offset: int, epoch: str, *, max_publications: int
    ) -> tuple[list[Publication], StreamPosition]:
        """Every publication after (`offset`, `epoch`), in order, or RecoveryImpossible."""
        position = await self.position_reads.get(channel)
        if epoch != position.epoch:
            raise RecoveryImpossible(
                f"epoch changed from {epoch!r} to {position.epoch!r}: history was reset",
                position,
            )
        if offset > position.offset:
            raise RecoveryImpossible(
                f"offset {offset} is ahead of the stream (last offset {position.offset})",
                position,
            )
        missed = position.offset - offset
        if missed == 0:
            return [], position
        if missed > max_publications:
            raise RecoveryImpossible(
                f"{missed} publications missed, more than the recovery limit "
                f"{max_publications}",
                position,
            )
        pubs = await self.read_range(channel, offset, position.offset)
        if not pubs or pubs[0].offset != offset + 1:
            raise RecoveryImpossible(
                f"history no longer reaches back to offset {offset + 1}", position
            )
        return pubs, position

    async def read_range(self, channel: str, after: int, upto: int) -> list[Publication]:
        """Stored publications with `after` < offset <= `upto`, oldest first."""
        return await self.range_reads.get((channel, after, upto))

    async def _read_ranges(self, ranges: list[tuple[str, int, int]]
                           ) -> dict[tuple[str, int, int], list[Publication]]:
        """Ranges asked for at once: one read per channel, covering all of its ranges."""
        by_channel: dict[str, list[tuple[str, int, int]]] = {}
        for key in ranges:
            by_channel.setdefault(key[0], []).append(key)
        reads = await asyncio.gather(*(
            self._read_range(channel, min(k[1] for k in keys), max(k[2] for k in keys))
            for channel, keys in by_channel.items()))
        result: dict[tuple[str, int, int], list[Publication]] = {}
        for keys, pubs in zip(by_channel.values(), reads):
            for key in keys:
                _, after, upto = key
                result[key] = [pub for pub in pubs if after < pub.offset <= upto]
        return result

    async def expire(self) -> int:
        """Drop publications older than their retention ttl; returns how many.

        Expired inbox messages and idempotency keys past their window go too.
        """
        return await self._expire(now_ms())

    # ---- acknowledged positions (STOMP subscriptions with client acks) ---------------

    @abstractmethod
    async def load_ack_position(self, user: str, subscription: str) -> AckPosition | None:
        """What `user` acknowledged on its subscription id `subscription`, if anything."""

    @abstractmethod
    async def save_ack_positions(
        self, positions: dict[tuple[str, str], AckPosition | None]
    ) -> None:
        """Store (user, subscription id) -> position in one transaction; None deletes."""
    # ---- the inbox -------------------------------------------------------------------

    async def inbox_view(self, user: str, *, limit: int) -> InboxView:
        """Exact counts per source and each source's `limit` newest messages."""
        return await self._inbox_view(user, limit, now_ms())

    async def inbox_page(self, user: str, source: str, *, before: int | None,
                         limit: int) -> tuple[InboxCounts, list[InboxMessage]]:
        """That source's messages with offsets below `before` (or the newest), newest first."""
        return await self._inbox_page(user, source, before, limit, now_ms())

    async def inbox_change(self, user: str, change: ReadChange) -> tuple[int, InboxCounts]:
        """Apply a read-state change; how many messages it changed and the counts after it.

        Raises NoSuchMessage when `change.offset` names no message of the user's inbox.
        """
        if change.shared and self.shared_channel is None:
            raise StoreError("this store has no shared channel")
        return await self._inbox_change(user, change, now_ms())

    # ---- group commit ----------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._committing_since = batch[0].queued
            started = time.perf_counter()
            try:
                pubs = await self._commit(batch)
            except Exception as exc:  # the whole batch failed: every waiter hears why
                # A backend says "not stored" with a StoreError of its own; anything else
                # may have come after the COMMIT went through: nobody is told "not stored".
                error = exc if isinstance(exc, StoreError) else CommitUnknown(
                    f"commit failed unexpectedly: {exc!r}")
                self.last_failure = str(error)
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            finally:
                self._committing_since = None
            self.last_failure = None
            self.observe_commit(time.perf_counter() - started)
            self.batches_committed += 1
            self.publications_committed += len(batch)
            if self.on_commit is not None:
                self._tell_committed(pubs)
            for request, pub in zip(batch, pubs):
                if not request.future.done():
                    request.future.set_result(pub)

    def _tell_committed(self, results: list[Publication | Duplicate]) -> None:
        """A failing listener is a bug to log; it must not fail a commit that succeeded."""
        try:
            self.on_commit([pub for pub in results if isinstance(pub, Publication)])
        except Exception:
            log.exception("handing a committed batch over failed")

    # ---- what each backend implements ------------------------------------------------

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _commit(self, batch: list[AppendRequest]) -> list[Publication | Duplicate]:
        """Write the whole batch in one durable transaction; publications in batch order.

        A request whose idempotency key (with its channel) is still within its window, in
        the store or earlier in the same batch, is answered with a Duplicate and not stored.

        Offsets within one channel follow the order of the batch, and stay gap-free when
        several nodes append to the same channel at once.
        """

    @abstractmethod
    async def _history(
        self, channel: str, limit: int, since: int | None, reverse: bool
    ) -> tuple[list[Publication], StreamPosition]: ...

    @abstractmethod
    async def _positions(self, channels: list[str]) -> dict[str, StreamPosition]: ...

    @abstractmethod
    async def _read_range(self, channel: str, after: int, upto: int) -> list[Publication]: ...

    @abstractmethod
    async def _expire(self, now: int) -> int: ...

    @abstractmethod
    async def _inbox_view(self, user: str, limit: int, now: int) -> InboxView: ...

    @abstractmethod
    async def _inbox_page(self, user: str, source: str, before: int | None, limit: int,
                          now: int) -> tuple[InboxCounts, list[InboxMessage]]: ...

    @abstractmethod
    async def _inbox_change(self, user: str, change: ReadChange,
                            now: int) -> tuple[int, InboxCounts]:
        """One transaction: change the flags, bump the user's version, count again."""
