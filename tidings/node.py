"""A node: one process's store, broker, hub and sessions, and the publish pipeline.

publish -> authorize (by the caller) -> store append (group commit assigns the offset) ->
local hub (no broker round trip for this node's own subscribers) -> broker -> every other
node subscribed to the channel -> its hub. Nodes ignore their own messages coming back from
the broker; the hub's offset ordering drops any duplicate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from tidings import __version__
from tidings.access import AccessControl
from tidings.auth import Authenticator
from tidings.broker import Broker, open_broker
from tidings.broker.base import BrokerError
from tidings.channels import BROADCAST, Channel, parse_channel, user_channel
from tidings.config import Settings
from tidings.errors import CloseCode, ErrorCode, TidingsError
from tidings.hub import Hub
from tidings.inbox import Inbox
from tidings.ingest import Intake
from tidings.limits import ConnectionCaps
from tidings.looplag import LoopLag
from tidings.metrics import Breakdown, Metrics
from tidings.model import ClientInfo, NodeInfo, Publication
from tidings.outbox import Outbox
from tidings.peer import Peer
from tidings.presence import PresenceMap
from tidings.protocol import voicelink
from tidings.proxy import ProxyHooks
from tidings.readstate import InboxSpec
from tidings.revocation import RevokedTokens
from tidings.store import OutcomeUnknown, Retention, Store, open_store
from tidings.store.base import (
    Append,
    BatchTimeout,
    CommitUnknown,
    Duplicate,
    Idempotency,
    StoreError,
    now_ms,
)
from tidings.supervision import Supervisor
from tidings.voice import VoiceRelay
from tidings.wheel import TimingWheel

log = logging.getLogger("tidings.node")

# Broker envelope kinds
PUBLICATION, JOIN, LEAVE, DISCONNECT = "p", "j", "l", "d"
USER_PUSH = "u"  # a push for every connection of one user (the inbox's counts)


class Node:
    def __init__(self, settings: Settings, *, store: Store | None = None,
                 broker: Broker | None = None):
        self.settings = settings
        self.name = settings.node_name
        self.store = store or open_store(settings.store, group_commit=settings.group_commit)
        self.store.shared_channel = BROADCAST  # "everyone" notifications: shared read state
        self.broker = broker or open_broker(settings.broker, self.name, ttl=settings.cluster_ttl)
        self.hub = Hub(self.store, self.broker)
        self.store.on_commit = self.hub.deliver_batch
        self._in_doubt: set[str] = set()  # channels with a publish that may or may not be stored
        self.voice = VoiceRelay(self.hub, settings, self.name)
        self.outbox = Outbox()
        self.revoked = RevokedTokens(settings.security, self._close_revoked)
        self.auth = Authenticator(settings, self.revoked.__contains__)
        self.caps = ConnectionCaps(settings.security)
        self.started = now_ms()
        self.sessions: dict[str, "SessionLike"] = {}
        # every session, filed by when it next needs a look from the tick
        self.wheel: TimingWheel["SessionLike"] = TimingWheel(self._tick_interval)
        self.by_user: dict[str, set["SessionLike"]] = {}
        self.presence = PresenceMap()
        self.draining = False
        self.sessions_opened = 0
        self.cluster_nodes = 0  # live nodes the broker listed at the latest heartbeat
        self.metrics = Metrics(self.name, {
            "connections": lambda: len(self.sessions),
            "sessions_opened_total": lambda: self.sessions_opened,
            "users": lambda: len(self.by_user),
            "channels": lambda: len(self.hub.channels),
            "deliveries_total": lambda: self.hub.deliveries,
            "broker_received_total": lambda: self.broker.received,
            "broker_read_total": lambda: self.broker.read,
            "broker_published_total": lambda: self.broker.published,
            "store_batches_total": lambda: self.store.batches_committed,
            "store_publications_total": lambda: self.store.publications_committed,
            "gaps_filled_total": lambda: self.hub.gaps_filled,
            "broker_subscriptions": lambda: len(self.broker.subscriptions),
            "tasks": lambda: len(asyncio.all_tasks()),
            "event_loop_lag_max_seconds": lambda: self.loop_lag.worst,
            "voice_frames_relayed_total": lambda: self.voice.relayed,
            "voice_frames_dropped_total": lambda: self.voice.dropped,
            "voice_frames_refused_total": lambda: self.voice.refused,
            "voice_frames_from_nodes_total": lambda: self.voice.from_nodes,
            "voice_frames_to_nodes_total": lambda: self.voice.uplink_count("sent"),
            "voice_frames_to_nodes_dropped_total": lambda: self.voice.uplink_count("dropped"),
            "voice_frames_to_nodes_failed_total": lambda: self.voice.uplink_count("failed"),
            "voice_envelopes_malformed_total": lambda: self.voice.malformed,
            "revoked_tokens": lambda: len(self.revoked),
            "store_queued": lambda: self.store.queued,
            "store_stalled_seconds": self.store.stalled_for,
            "store_failing": lambda: float(self.store.last_failure is not None),
            "broker_connected": lambda: float(self.broker.connected),
            "cluster_nodes": lambda: self.cluster_nodes,
            "draining": lambda: float(self.draining),
            "outgoing_bytes": lambda: sum(s.conn.buffered() for s in self.sessions.values()),
        }, restarts=self._restarts, breakdowns=(
            Breakdown("tidings_protocol_connections", "Open connections by protocol and transport",
                      ["protocol", "transport"], self.connections_by_protocol),
            Breakdown("tidings_subscriptions", "Local subscriptions by channel namespace",
                      ["namespace"], self.subscriptions_by_namespace),
            Breakdown("tidings_ingest_connected", "Ingest sources consuming (1) or reconnecting "
                      "(0), by source", ["source"],
                      lambda: {(s.name,): float(s.connected) for s in self.intake.sources}),
        ))
        self.access = AccessControl(self.auth, self.caps,
                                    ProxyHooks(settings.security.proxy, self.metrics),
                                    self.metrics, lambda user: len(self.by_user.get(user, ())))
        self.supervisor = Supervisor()  # the node's periodic loops
        self.loop_lag = LoopLag(self.metrics.loop_lag, settings.resilience.loop_lag_interval)
        self._tasks: set[asyncio.Task] = set()
        self.inbox = Inbox(self.store, self.push_to_user)
        self.intake = Intake(self, settings.message_center, self.metrics.registry)
        self.store.observe_commit = self.metrics.store_commit_seconds.observe

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        await self.broker.start(self._on_broker_message, self._on_broker_reconnect)
        await self.revoked.start(self.hub, self.store)
        await self._heartbeat()
        every = self._every
        self.supervisor.spawn("heartbeat", every(self.settings.cluster_ttl / 3, self._heartbeat))
        self.supervisor.spawn("resync", every(10.0, self._resync))
        self.supervisor.spawn("expire", every(30.0, self.store.expire))
        self.supervisor.spawn("tick", every(self._tick_interval, self._tick))
        self.supervisor.spawn("loop-lag", self.loop_lag.run)
        await self.intake.start()

    async def drain(self) -> None:
        """Refuse new sessions, tell every client to reconnect elsewhere, wait for them to go.

        Runs while the port still answers, so a load balancer sees /health turn 503.
        """
        self.draining = True
        for session in list(self.sessions.values()):
            session.close(CloseCode.SHUTDOWN, "node shutting down: reconnect to another node")
        deadline = time.monotonic() + self.settings.shutdown_grace
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Drain (if not done yet), then close the broker and the store."""
        if not self.draining:
            await self.drain()
        await self.intake.stop()
        await self.supervisor.stop()
        await self.voice.close()
        await self.revoked.stop()
        await self.access.proxy.close()
        await self.hub.close()
        await self.broker.close()
        await self.store.close()

    @staticmethod
    def _every(seconds: float, job: Callable) -> Callable:
        """A loop running `job` every `seconds`; a failure reaches the supervisor."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                await job()

        return loop

    def _restarts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for supervisor in (self.supervisor, self.broker.supervisor, self.store.supervisor):
            for task, count in supervisor.restarts.items():
                counts[task] = counts.get(task, 0) + count
        return counts

    def connections_by_protocol(self) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {}
        for session in self.sessions.values():
            key = (session.peer.protocol or "unknown", session.peer.transport)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def subscriptions_by_namespace(self) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {}
        for name in list(self.hub.channels):
            key = (name.partition(":")[0],)
            counts[key] = counts.get(key, 0) + self.hub.local_subscribers(name)
        return counts

    @property
    def _tick_interval(self) -> float:
        return min(1.0, self.settings.pong_timeout / 4, self.settings.ping_interval / 4)

    async def _tick(self) -> None:
        """Ping sessions that are due, close the ones that stopped answering or never connected.

        Only the sessions filed for now or sooner are looked at; each says when it next
        needs a look and is filed for then (tidings.wheel).
        """
        now = time.monotonic()
        wheel = self.wheel
        for session in wheel.pop_due(now):
            then = session.tick(now)
            if then is not None:
                wheel.file(session, then)

    async def _heartbeat(self) -> None:
        info = NodeInfo(self.name, len(self.sessions), len(self.by_user), self.started,
                        __version__, f"{self.settings.host}:{self.settings.port}")
        presence = self.presence.snapshot()
        try:
            await self.broker.heartbeat(info, presence)
            self.cluster_nodes = len(await self.broker.nodes())
        except BrokerError as exc:
            log.warning("heartbeat failed: %s", exc)

    # ---- sessions --------------------------------------------------------------------

    def attach(self, session: "SessionLike") -> None:
        """A new connection, connected or not: the node pings it and drains it."""
        self.sessions_opened += 1
        self.sessions[session.client] = session
        self.wake(session)

    def wake(self, session: "SessionLike") -> None:
        """Look at `session` at the next tick: a deadline of its may have moved earlier
        (it connected, holds a token that expires sooner, negotiated heart-beats)."""
        self.wheel.file(session, time.monotonic())

    def identify(self, session: "SessionLike") -> None:
        """The connection has authenticated as `session.user`."""
        self.by_user.setdefault(session.user, set()).add(session)

    def detach(self, session: "SessionLike") -> None:
        self.sessions.pop(session.client, None)
        self.wheel.discard(session)
        sessions = self.by_user.get(session.user)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.by_user[session.user]

    def channel(self, name: object) -> Channel:
        return parse_channel(name, self.settings)

    # ---- publishing ------------------------------------------------------------------

    async def publish(self, channel: Channel, data: bytes, *, source: str | None = None,
                      sender: str | None = None,
                      idempotency_key: str | None = None) -> Publication:
        """Store (if the namespace keeps history) and deliver one publication cluster-wide.

        A publication to a `user:` channel with a `source` is also a message in that user's
        inbox. With `idempotency_key` (already scoped by the caller), a key used for this
        channel within `idempotency_window` stores and delivers nothing: the publication
        returned is the first one's place (channel, offset, epoch, time).
        """
        started = time.perf_counter()
        if channel.options.stored:
            key, inbox = self._store_terms(channel, source, idempotency_key)
            try:
                pub = await self.store.append(
                    channel.name, data, retention=_retention(channel), source=source,
                    sender=sender, within=self.settings.resilience.publish_timeout,
                    idempotency=key, inbox=inbox,
                )
            except OutcomeUnknown as exc:
                exc.late.add_done_callback(functools.partial(self._deliver_late, {channel.name}))
                raise _outcome_unknown(exc) from None
            except CommitUnknown as exc:  # stored or not: the next resync delivers it if it is
                self._in_doubt.add(channel.name)
                raise _outcome_unknown(exc) from None
            if isinstance(pub, Duplicate):
                return Publication(pub.channel, pub.offset, pub.epoch, data, pub.time, source,
                                   sender)
        else:
            pub = Publication(channel.name, 0, "", data, now_ms(), source, sender)
        self.hub.deliver(pub)
        if self.broker.shared:  # the in-process broker would drop it: no envelope to build
            await self._to_broker(channel.name, PUBLICATION, pub.to_dict())
        self.metrics.count(self.metrics.published, channel.namespace)
        self.metrics.publish_seconds.observe(time.perf_counter() - started)
        return pub

    async def publish_many(self, items: Sequence[tuple[Channel, bytes, str | None, str | None]]
                           ) -> None:
        """Store and deliver a batch of (channel, data, source, idempotency key) at once.

        For a caller holding many publications (an ingest batch): one hand-over to the
        store's group commit and one wait, instead of a task and a wait per publication.
        Every one stored is delivered; StoreError if any was not (or may not be) stored.
        """
        started = time.perf_counter()
        appends = []
        for channel, data, source, idempotency_key in items:
            if not channel.options.stored:
                raise ValueError(f"{channel.name} keeps nothing: publish it alone")
            key, inbox = self._store_terms(channel, source, idempotency_key)
            appends.append(Append(channel.name, data, _retention(channel), source, None, key,
                                  inbox))
        try:
            results = await self.store.append_many(
                appends, within=self.settings.resilience.publish_timeout)
        except BatchTimeout as exc:
            names = {channel.name for channel, *_ in items}
            for late in exc.late:
                late.add_done_callback(functools.partial(self._deliver_late, names))
            raise
        failure: StoreError | None = None
        delivered = []
        for (channel, *_), result in zip(items, results):
            if isinstance(result, StoreError):
                failure = result
                if isinstance(result, CommitUnknown):
                    self._in_doubt.add(channel.name)
            elif isinstance(result, Publication):  # a Duplicate was delivered the first time
                self.hub.deliver(result)
                delivered.append(result)
                self.metrics.count(self.metrics.published, channel.namespace)
        if self.broker.shared:
            await asyncio.gather(*(self._to_broker(pub.channel, PUBLICATION, pub.to_dict())
                                   for pub in delivered))
        elapsed = time.perf_counter() - started
        for _ in delivered:
            self.metrics.publish_seconds.observe(elapsed)
        if failure is not None:
            raise failure

    def _store_terms(self, channel: Channel, source: str | None,
                     idempotency_key: str | None) -> tuple[Idempotency | None, InboxSpec | None]:
        """The idempotency key and the inbox entry (for `user:` channels) of a publication."""
        center = self.settings.message_center
        key = (Idempotency(idempotency_key, center.idempotency_window)
               if idempotency_key is not None else None)
        inbox = None
        if source is not None and channel.owner is not None:
            kept = center.retention_of(source)
            inbox = InboxSpec(channel.owner, kept.max_messages, kept.max_age)
        return key, inbox

    def _deliver_late(self, channels: set[str], committed: asyncio.Future) -> None:
        """A publication whose caller stopped waiting was stored after all: deliver it. If
        its commit ended in doubt, the next resync looks at `channels` (where it went)."""
        if committed.cancelled():
            return
        if (error := committed.exception()) is not None:
            if isinstance(error, CommitUnknown):
                self._in_doubt |= channels
            return
        pub = committed.result()
        if isinstance(pub, Duplicate):  # delivered when it was first stored
            return
        self.hub.deliver(pub)
        self.supervisor.spawn("late-delivery",
                              lambda: self._to_broker(pub.channel, PUBLICATION, pub.to_dict()))

    async def announce(self, kind: str, channel: str, client: ClientInfo) -> None:
        """A join or leave event, to local subscribers and the rest of the cluster."""
        self.hub.deliver_event("join" if kind == JOIN else "leave", channel, client)
        self.voice.member_changed(channel, joined=kind == JOIN)
        await self._to_broker(channel, kind, client.to_dict())

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        self.presence.add(channel, client)
        await self.broker.presence_add(channel, client)

    async def presence_remove(self, channel: str, client: str) -> None:
        self.presence.remove(channel, client)
        await self.broker.presence_remove(channel, client)

    async def disconnect_user(self, user: str, *, reconnect: bool, client: str | None = None) -> int:
        """Close a user's sessions on every node (only nodes holding the user get the order)."""
        body = {"user": user, "reconnect": reconnect, "client": client}
        closed = self._disconnect_local(body)
        await self._to_broker(user_channel(user), DISCONNECT, body)
        return closed

    async def push_to_user(self, user: str, kind: str, body: dict,
                           skip_client: str | None = None) -> None:
        """A push for every connection of `user` on every node, but `skip_client`."""
        envelope = {"user": user, "kind": kind, "body": body, "skip": skip_client}
        self._push_local(envelope)
        await self._to_broker(user_channel(user), USER_PUSH, envelope)

    def _push_local(self, envelope: dict) -> None:
        for session in list(self.by_user.get(envelope["user"], ())):
            if session.client != envelope.get("skip"):
                session.push(envelope["kind"], envelope["body"])

    def _disconnect_local(self, body: dict) -> int:
        code = CloseCode.DISCONNECTED if body["reconnect"] else CloseCode.FORCE_DISCONNECTED
        closed = 0
        for session in list(self.by_user.get(body["user"], ())):
            if body.get("client") in (None, session.client):
                session.close(code, "disconnected by the server")
                closed += 1
        return closed

    # ---- revoked tokens --------------------------------------------------------------

    async def revoke(self, jti: str, exp: float | None = None) -> None:
        """Revoke a token id on every node (see tidings.revocation)."""
        if len(self.revoked) >= self.revoked.capacity:
            raise TidingsError(ErrorCode.LIMIT_EXCEEDED,
                               f"{self.revoked.capacity} tokens are revoked already "
                               "(security.max_revocations)")
        await self.publish(self.revoked.channel, self.revoked.entry(jti, exp))

    def _close_revoked(self, jti: str) -> None:
        for session in list(self.sessions.values()):
            if jti in session.token_ids():
                session.close(CloseCode.TOKEN_REVOKED, "token revoked")

    # ---- the broker ------------------------------------------------------------------

    async def _to_broker(self, channel: str, kind: str, body: dict) -> None:
        if not self.broker.shared:
            return
        payload = orjson.dumps({"o": self.name, "k": kind, "b": body})
        started = time.perf_counter()
        try:
            await self.broker.publish(channel, payload)
            self.metrics.broker_publish_seconds.observe(time.perf_counter() - started)
        except BrokerError as exc:
            # Stored publications still reach other nodes: their hubs read the gap back.
            log.warning("broker publish to %s failed: %s", channel, exc)

    def _on_broker_message(self, channel: str, payload: bytes) -> None:
        if voicelink.is_voice(payload):
            self.voice.from_node(channel, payload)
            return
        try:
            envelope = orjson.loads(payload)
            if envelope["o"] == self.name:
                return
            kind, body = envelope["k"], envelope["b"]
            if kind == PUBLICATION:
                self.hub.deliver(Publication.from_dict(body))
            elif kind in (JOIN, LEAVE):
                self.hub.deliver_event("join" if kind == JOIN else "leave", channel,
                                       ClientInfo.from_dict(body))
                self.voice.member_changed(channel, joined=kind == JOIN)
            elif kind == DISCONNECT:
                self._disconnect_local(body)
            elif kind == USER_PUSH:
                self._push_local(body)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("dropping a malformed broker message on %s: %s", channel, exc)

    async def _resync(self) -> None:
        """The periodic resync. A broker between nodes may drop messages silently, so every
        stored channel is compared with the store. The in-process broker loses nothing: only
        a publish that ended in doubt can be stored yet undelivered, so only its channels
        are compared, instead of a store read per connection (its `user:` channel) each pass."""
        channels, self._in_doubt = self._in_doubt, set()
        try:
            if self.broker.shared:
                await self.hub.resync()
            elif channels:
                await self.hub.resync(channels)
        except BaseException:
            self._in_doubt |= channels  # looked at again next time
            raise

    async def _on_broker_reconnect(self) -> None:
        log.info("broker connection restored: filling gaps from the store")
        await self.hub.resync()
        await self._heartbeat()

    # ---- cluster ---------------------------------------------------------------------

    async def nodes(self) -> list[NodeInfo]:
        return await self.broker.nodes()


def _outcome_unknown(cause: Exception) -> TidingsError:
    return TidingsError(ErrorCode.OUTCOME_UNKNOWN,
                        f"outcome unknown ({cause}): retry with the same idempotency key")


def _retention(channel: Channel) -> Retention:
    return Retention(channel.options.history_size, channel.options.history_ttl)


class SessionLike(Protocol):
    """What the node needs of a session (see tidings.session.Session)."""

    client: str
    user: str
    peer: Peer
    conn: "Buffered"

    def close(self, code: int, reason: str) -> None: ...

    def token_ids(self) -> set[str]:
        """The `jti` of every token this session holds (connection and subscriptions)."""

    def tick(self, now: float) -> float | None:
        """Do what is due at `now` (monotonic); when to look again, None once closed."""

    def push(self, kind: str, body: dict) -> None: ...


class Buffered(Protocol):
    def buffered(self) -> int:
        """Bytes written to the socket but not yet taken by the kernel."""
