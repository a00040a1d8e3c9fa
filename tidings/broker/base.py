"""The broker interface: how nodes hand each other live traffic and share cluster state.

Live delivery is targeted: a node asks the broker only for the channels it has local
subscribers for, plus `broadcast` and its control subjects. Payloads are opaque bytes; the
node puts its own envelope (origin node, kind) inside.

The live path may lose messages (a broker restart, a dropped connection). That is allowed:
after `on_reconnect` fires, the node checks each channel's position in the store and fills
any gap from there. A log-based broker (Kafka, JetStream, Redis Streams) fits the same
interface: `subscribe` starts consuming a channel's subject from "now", and the store stays
the source of truth for anything older.

Cluster state (node liveness and presence) expires: each node calls `heartbeat` every few
seconds with its own state; entries of a node that stopped calling vanish after `ttl`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from tidings.model import ClientInfo, NodeInfo
from tidings.supervision import Supervisor

MessageHandler = Callable[[str, bytes], None]
ReconnectHandler = Callable[[], Awaitable[None]]


class BrokerError(Exception):
    """The broker could not do what was asked."""


class Broker(ABC):
    """Subclasses implement the `_`-prefixed primitives and the cluster-state methods.

    `subscribe`/`unsubscribe` calls made while a broker round trip is under way are
    coalesced into one `_subscribe_many`/`_unsubscribe_many` call, so a thousand clients
    joining at once cost a handful of round trips, not a thousand.
    """

    shared = True
    """False for a broker that reaches no other node: the node then skips publishing to it."""

    keeps_live = False
    """True for a log-based broker that keeps live traffic on disk for a while (Kafka): voice,
    which is never stored, does not cross it (see tidings.voice)."""

    def __init__(self, node: str, *, ttl: float = 15.0):
        self.node = node
        self.ttl = ttl
        self._handler: MessageHandler = lambda channel, payload: None
        self._on_reconnect: ReconnectHandler | None = None
        self._wanted: set[str] = set()  # channels the node wants, as of the latest call
        self._active: set[str] = set()  # channels the broker has confirmed
        # channels asked for or dropped since the last round trip (settled ones too): a
        # round compares these, not every channel, with the node has (thousands of `user:`
        # channels, one per connection, made each connect cost as much as all the others)
        self._to_add: set[str] = set()
        self._to_drop: set[str] = set()
        self._sync_lock = asyncio.Lock()
        self.supervisor = Supervisor()  # runs the backend's readers, health checks, reconnects
        self.received = 0  # messages taken from the broker, for metrics and tests
        self.published = 0

    # ---- lifecycle -------------------------------------------------------------------

    async def start(
        self, on_message: MessageHandler, on_reconnect: ReconnectHandler | None = None
    ) -> None:
        self._handler = on_message
        self._on_reconnect = on_reconnect
        await self._connect()

    async def close(self) -> None:
        await self._disconnect()
        await self.supervisor.stop()

    @property
    def connected(self) -> bool:
        """False while a network backend has lost its connection and is getting it back."""
        return True

    def _deliver(self, channel: str, payload: bytes) -> None:
        """Backends call this for every message that arrives on a subscribed channel.

        A node that fails handling one message is a bug to log and count, not a reason to
        drop the connection: the reader goes on with the next message.
        """
        self.received += 1
        try:
            self._handler(channel, payload)
        except Exception as exc:
            self.supervisor.failed("deliver", exc)

    async def _reconnected(self, *, resubscribed: bool = False) -> None:
        """Backends call this after a lost connection is back: resubscribe, then tell the node.

        `resubscribed` is for a client library that restores subscriptions by itself.
        """
        if not resubscribed:
            self._active.clear()
            self._to_add |= self._wanted
            await self._sync()
        if self._on_reconnect is not None:
            await self._on_reconnect()

    # ---- live delivery ---------------------------------------------------------------

    async def publish(self, channel: str, payload: bytes) -> None:
        self.published += 1
        await self._publish(channel, payload)

    async def subscribe(self, channel: str) -> None:
        """Returns once the broker delivers `channel` to this node."""
        self._wanted.add(channel)
        if channel not in self._active or self._sync_lock.locked():
            self._to_add.add(channel)
            await self._sync(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        if channel in self._active or self._sync_lock.locked():
            self._to_drop.add(channel)
            await self._sync(channel)

    @property
    def read(self) -> int:
        """Messages taken off the broker, wanted or not.

        The same as `received` for a broker that routes exactly; a log-based one reads
        whole partitions and keeps only its channels' messages.
        """
        return self.received

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(self._active)

    async def _sync(self, channel: str | None = None) -> None:
        """Bring the broker's subscriptions to `_wanted`, in as few round trips as possible.

        A caller that came for `channel` and finds it settled once it holds the lock (a
        round trip under way took it along) leaves at once: in a storm of thousands of
        subscribes, each would otherwise compare the whole wanted and active sets again.
        """
        async with self._sync_lock:
            if channel is not None and (channel in self._wanted) == (channel in self._active):
                return
            # Loop: a channel dropped during a round trip may be wanted again by its end.
            while True:
                wanted, active = self._wanted, self._active
                add = {c for c in self._to_add if c in wanted and c not in active}
                drop = {c for c in self._to_drop if c not in wanted and c in active}
                self._to_add.clear()
                self._to_drop.clear()
                if not add and not drop:
                    return
                if add:
                    await self._subscribe_many(sorted(add))
                    self._active |= add
                if drop:
                    await self._unsubscribe_many(sorted(drop))
                    self._active -= drop

    # ---- what each backend implements ------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    async def _publish(self, channel: str, payload: bytes) -> None: ...

    @abstractmethod
    async def _subscribe_many(self, channels: list[str]) -> None: ...

    @abstractmethod
    async def _unsubscribe_many(self, channels: list[str]) -> None: ...

    # ---- cluster state ---------------------------------------------------------------

    @abstractmethod
    async def heartbeat(self, node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> None:
        """Refresh this node's liveness and every presence entry it holds, for `ttl` s.

        `presence` is the node's whole local presence (channel -> clients); entries the
        node no longer lists may be dropped.
        """

    @abstractmethod
    async def presence_add(self, channel: str, client: ClientInfo) -> None: ...

    @abstractmethod
    async def presence_remove(self, channel: str, client: str) -> None: ...

    @abstractmethod
    async def presence(self, channel: str) -> list[ClientInfo]:
        """Every live client in `channel`, cluster-wide; a dead node's ones expire."""

    @abstractmethod
    async def nodes(self) -> list[NodeInfo]:
        """Every node that sent a heartbeat within `ttl`."""
