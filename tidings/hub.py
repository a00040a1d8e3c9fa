"""The hub: which local sessions listen to which channel, and delivery to them in order.

Every stored channel reaches a node along two paths that can disagree: publications made on
this node (delivered at once, no broker round trip) and publications from other nodes (via
the broker, which may delay, reorder across publishers, or drop). The hub keeps, per
channel, the next offset it expects and delivers strictly in offset order: an early arrival
waits in `pending`; a duplicate (our own publication echoed by the broker) is dropped; a gap
that does not close by itself within `gap_wait` is read back from the store. So each local
session sees every publication once, in order, whichever node published it.

Each publication is encoded once per codec and the same frame bytes are written to every
recipient of that codec. A codec belongs to a subscription, not to a connection: every native
session shares one, while a STOMP subscription's frames carry the subscription id its client
chose, so STOMP subscriptions with the same id share a codec and the rest get one each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tidings.broker.base import Broker
from tidings.channels import Channel
from tidings.model import ClientInfo, Publication, StreamPosition
from tidings.store.base import Store

log = logging.getLogger("tidings.hub")


class Codec(Protocol):
    """Turns hub events into the frame bytes one protocol writes to its sockets.

    A codec whose frames are whole WebSocket frames may say `joinable = True`: several of
    them then go to a subscriber as one joined write (see `deliver_batch`).
    """

    def pub_frame(self, pub: Publication) -> bytes: ...

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes: ...


class Subscriber(Protocol):
    codec: Codec
    """The codec for subscriptions that do not name one of their own."""

    def write(self, frame: bytes) -> None:
        """Queue bytes for the socket; must not touch the hub (it may be mid-delivery)."""

    def lost_sync(self, channel: str) -> None:
        """The hub cannot deliver `channel` without a hole: end the session so it recovers."""

    user: str
    """Whose connection this is (a whisper goes to one user's connections only)."""

    def write_droppable(self, frame: bytes) -> bool:
        """Queue a frame that may be lost (voice); False when dropped because it is behind."""


@dataclass(eq=False, slots=True)  # one per channel, so one per connected user
class ChannelState:
    name: str
    stored: bool
    ready: asyncio.Future
    next: int = 1  # the offset the hub delivers next (stored channels)
    epoch: str = ""
    groups: dict[Codec, dict[Subscriber, None]] = field(default_factory=dict)
    codecs: dict[Subscriber, Codec] = field(default_factory=dict)  # every subscriber's codec
    catching_up: dict[Subscriber, list[Publication]] = field(default_factory=dict)
    skipping: dict[Subscriber, int] = field(default_factory=dict)  # sub -> offset seen through
    pending: dict[int, Publication] = field(default_factory=dict)
    early: list[Publication] = field(default_factory=list)
    fill_scheduled: bool = False
    published: int = 0  # publications fanned out here (the admin console's channel rates)

    def subscribers(self) -> Iterable[Subscriber]:
        for members in self.groups.values():
            yield from members
        yield from self.catching_up
        yield from self.skipping

    def count(self) -> int:
        """How many subscribers, without walking them (a scrape counts every channel's)."""
        return (sum(len(members) for members in self.groups.values()) + len(self.catching_up)
                + len(self.skipping))

    def empty(self) -> bool:
        return not (any(self.groups.values()) or self.catching_up or self.skipping)


class Hub:
    def __init__(self, store: Store, broker: Broker, *, gap_wait: float = 0.2):
        self.store = store
        self.broker = broker
        self.gap_wait = gap_wait
        self.channels: dict[str, ChannelState] = {}
        self.deliveries = 0
        self.gaps_filled = 0
        self._tasks: set[asyncio.Task] = set()

    # ---- subscriptions ---------------------------------------------------------------

    async def subscribe(
        self,
        sub: Subscriber,
        channel: Channel,
        *,
        since: tuple[int, str] | None = None,
        recovery_max: int = 0,
        codec: Codec | None = None,
    ) -> tuple[list[Publication], StreamPosition]:
        """Add `sub` to `channel`; with `since` (offset, epoch), also what it missed.

        Frames of this subscription are made by `codec` (default: `sub.codec`).

        Returns the publications to hand the client with the reply and the position the
        client is at once it has them. The caller must write its reply before it next
        awaits: from the moment this returns, live publications go to `sub` directly.
        Raises RecoveryImpossible (and leaves `sub` out) when `since` cannot be recovered.
        """
        state = await self._state(channel)
        state.codecs[sub] = codec or sub.codec
        if not state.stored:
            self._add_live(state, sub)
            return [], StreamPosition(0, "")
        if since is None:
            self._add_live(state, sub)
            return [], StreamPosition(state.next - 1, state.epoch)
        buffer: list[Publication] = []
        state.catching_up[sub] = buffer
        try:
            recovered, _ = await self.store.recover(
                channel.name, since[0], since[1], max_publications=recovery_max
            )
        except BaseException:
            state.codecs.pop(sub, None)
            raise
        finally:
            state.catching_up.pop(sub, None)
        stored_upto = recovered[-1].offset if recovered else since[0]
        merged = recovered + [pub for pub in buffer if pub.offset > stored_upto]
        # Hand over only what the live stream has passed; the rest arrives live.
        live_point = state.next - 1
        merged = [pub for pub in merged if pub.offset <= live_point]
        seen = merged[-1].offset if merged else since[0]
        if seen > live_point:
            # the client is ahead of this node's live stream: let the hub catch up first
            state.skipping[sub] = seen
        else:
            self._add_live(state, sub)
        return merged, StreamPosition(max(seen, live_point), state.epoch)

    def unsubscribe(self, sub: Subscriber, channel: str) -> None:
        state = self.channels.get(channel)
        if state is None:
            return
        codec = state.codecs.pop(sub, None)
        members = state.groups.get(codec)
        if members is not None:
            members.pop(sub, None)
            if not members:
                del state.groups[codec]
        state.catching_up.pop(sub, None)
        state.skipping.pop(sub, None)
        if state.empty() and state.ready.done():
            del self.channels[channel]
            self._spawn(self.broker.unsubscribe(channel))

    def local_subscribers(self, channel: str) -> int:
        state = self.channels.get(channel)
        return state.count() if state else 0

    def _add_live(self, state: ChannelState, sub: Subscriber) -> None:
        state.groups.setdefault(state.codecs[sub], {})[sub] = None

    async def _state(self, channel: Channel) -> ChannelState:
        while (state := self.channels.get(channel.name)) is not None:
            await asyncio.shield(state.ready)
            if self.channels.get(channel.name) is state:
                return state
            # the channel was dropped (its last subscriber left) while we waited: start anew
        state = ChannelState(
            channel.name, channel.options.stored, asyncio.get_running_loop().create_future()
        )
        self.channels[channel.name] = state
        try:
            await self.broker.subscribe(channel.name)
            position = StreamPosition(0, "")
            if state.stored:
                position = (await self.store.positions([channel.name]))[channel.name]
        except BaseException as exc:
            del self.channels[channel.name]
            state.ready.set_exception(exc)
            state.ready.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        self._start_at(state, position)
        return state

    def _start_at(self, state: ChannelState, position: StreamPosition) -> None:
        """Open `state` for delivery from `position`, then deliver what arrived meanwhile."""
        state.next, state.epoch = position.offset + 1, position.epoch
        state.ready.set_result(None)
        early, state.early = state.early, []
        for pub in sorted(early, key=lambda p: p.offset):
            self.deliver(pub)

    # ---- delivery --------------------------------------------------------------------

    def deliver(self, pub: Publication) -> None:
        """A publication for this node's subscribers, from this node or the broker."""
        state = self.channels.get(pub.channel)
        if state is None:
            return
        if not state.ready.done():
            state.early.append(pub)
        elif state.stored:
            self._accept(state, pub)
        else:
            self._fanout(state, pub)

    def deliver_batch(self, pubs: list[Publication]) -> None:
        """A committed group-commit batch, handed over before its publishers hear of it.

        A channel's publications in one batch are consecutive offsets: where the channel is
        open and nothing waits before them, each subscriber gets them in one write (one call
        per subscriber instead of one per publication, the fan-out's main cost); otherwise
        they take the one-by-one path. Either way `deliver` of the same publication later
        (the publisher's own call, a broker echo) finds it delivered and drops it.
        """
        runs: dict[str, list[Publication]] = {}
        for pub in pubs:
            runs.setdefault(pub.channel, []).append(pub)
        for channel, run in runs.items():
            state = self.channels.get(channel)
            if state is None:
                continue
            if len(run) > 1 and self._continues(state, run):
                state.published += len(run)
                self.deliveries += self._write_live(state, run)
                state.next += len(run)
            else:
                for pub in run:
                    self.deliver(pub)

    @staticmethod
    def _continues(state: ChannelState, run: list[Publication]) -> bool:
        """`run` is exactly what `state` delivers next, to live subscribers only."""
        if not (state.stored and state.ready.done()) or state.pending:
            return False
        if state.catching_up or state.skipping:
            return False  # they join the live stream publication by publication
        return all(pub.epoch == state.epoch and pub.offset == state.next + index
                   for index, pub in enumerate(run))

    def deliver_event(self, kind: str, channel: str, client: ClientInfo) -> None:
        """A join or leave event: to every live subscriber of `channel`, not stored."""
        state = self.channels.get(channel)
        if state is None or not state.ready.done():
            return
        for codec, members in tuple(state.groups.items()):
            frame = codec.event_frame(kind, channel, client)
            if not frame:  # this codec's protocol does not show the event
                continue
            for sub in tuple(members):
                sub.write(frame)

    def _accept(self, state: ChannelState, pub: Publication) -> None:
        if pub.epoch != state.epoch:
            log.warning("channel %s epoch changed to %s: history was reset", state.name, pub.epoch)
            self._lose_sync(state)
            return
        if pub.offset < state.next:
            return  # already delivered (our own publication, echoed by the broker)
        if pub.offset > state.next:
            state.pending[pub.offset] = pub
            self._schedule_fill(state)
            return
        self._fanout(state, pub)
        state.next += 1
        while state.pending:
            waiting = state.pending.pop(state.next, None)
            if waiting is None:
                break
            self._fanout(state, waiting)
            state.next += 1

    def _fanout(self, state: ChannelState, pub: Publication) -> None:
        state.published += 1
        delivered = self._write_live(state, (pub,))
        for buffer in state.catching_up.values():
            buffer.append(pub)
        if state.skipping:
            for sub, seen in tuple(state.skipping.items()):
                if pub.offset > seen:
                    del state.skipping[sub]
                    sub.write(state.codecs[sub].pub_frame(pub))
                    self._add_live(state, sub)
                    delivered += 1
        self.deliveries += delivered

    @staticmethod
    def _write_live(state: ChannelState, run: Sequence[Publication]) -> int:
        """Consecutive publications to the live subscribers, encoded once per codec (a
        joinable codec's frames as one write); returns the deliveries made."""
        delivered = 0
        for codec, members in tuple(state.groups.items()):
            # an empty frame: nothing of that publication is for these subscribers
            frames = [frame for frame in map(codec.pub_frame, run) if frame]
            if not frames:
                continue
            delivered += len(members) * len(frames)
            if len(frames) > 1 and getattr(codec, "joinable", False):
                frames = [b"".join(frames)]
            for sub in tuple(members):
                for frame in frames:
                    sub.write(frame)
        return delivered

    # ---- binary relay (voice) --------------------------------------------------------

    def relay(self, channel: str, frame: bytes, *, exclude: object = None,
              to_user: str | None = None) -> tuple[int, int]:
        """One binary frame of an ephemeral channel to its live subscribers, never stored.

        The same `frame` bytes go to every recipient but `exclude` (the sender), or only to
        the connections of `to_user` (a whisper). A listener that is behind loses the frame
        rather than queueing it ahead of its text (see Session.write_droppable).
        Returns (delivered, dropped).
        """
        state = self.channels.get(channel)
        if state is None or state.stored or not state.ready.done():
            return 0, 0
        delivered = dropped = 0
        for members in state.groups.values():
            for sub in members:
                if sub is exclude or (to_user is not None and sub.user != to_user):
                    continue
                if sub.write_droppable(frame):
                    delivered += 1
                else:
                    dropped += 1
        self.deliveries += delivered
        return delivered, dropped

    # ---- gaps ------------------------------------------------------------------------

    def _schedule_fill(self, state: ChannelState) -> None:
        if state.fill_scheduled:
            return
        state.fill_scheduled = True
        loop = asyncio.get_running_loop()
        loop.call_later(self.gap_wait, lambda: self._spawn(self._fill(state, None)))

    async def _fill(self, state: ChannelState, upto: int | None) -> None:
        """Read what the live path lost from the store and deliver it in order."""
        state.fill_scheduled = False
        if self.channels.get(state.name) is not state:
            return
        if upto is None:
            if not state.pending:
                return
            upto = min(state.pending) - 1
        if upto < state.next:
            return
        try:
            missing = await self.store.read_range(state.name, state.next - 1, upto)
        except Exception:
            log.exception("reading %s from the store to fill a gap failed", state.name)
            self._schedule_fill(state)
            return
        self.gaps_filled += 1
        for pub in missing:
            self._accept(state, pub)
        if state.next <= upto:  # the store no longer has them: the hole cannot be filled
            log.warning("channel %s: offsets %d..%d are gone from the store", state.name,
                        state.next, upto)
            self._lose_sync(state)

    async def resync(self, only: Collection[str] | None = None) -> None:
        """Compare every stored channel (or those named in `only`) with the store and fill
        what the live path lost.

        Run after a broker reconnect, and periodically for brokers that drop silently.
        """
        stored = [s for s in self.channels.values() if s.stored and s.ready.done()
                  and (only is None or s.name in only)]
        if not stored:
            return
        positions = await self.store.positions([s.name for s in stored])
        for state in stored:
            top = positions[state.name]
            if top.epoch != state.epoch:
                self._lose_sync(state)
            elif top.offset >= state.next:
                await self._fill(state, top.offset)

    def _lose_sync(self, state: ChannelState) -> None:
        """End every session of `state` (they recover on reconnect), then restart it afresh."""
        for sub in list(state.subscribers()):
            sub.lost_sync(state.name)
        state.pending.clear()
        state.ready = asyncio.get_running_loop().create_future()
        self._spawn(self._restart(state))

    async def _restart(self, state: ChannelState) -> None:
        while True:
            try:
                position = (await self.store.positions([state.name]))[state.name]
                break
            except Exception:
                log.exception("reading the position of %s failed; retrying", state.name)
                await asyncio.sleep(1.0)
        self._start_at(state, position)

    # ---- housekeeping ----------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
