"""The in-process broker: one node, no network. The embedded default."""

from __future__ import annotations

import time

from tidings.broker.base import Broker
from tidings.model import ClientInfo, NodeInfo
from tidings.presence import PresenceMap


class MemoryBroker(Broker):
    """Delivers a publication straight back to its own node, as a one-node cluster would."""

    shared = False

    def __init__(self, node: str, **options):
        super().__init__(node, **options)
        self._presence = PresenceMap()
        self._node_info: NodeInfo | None = None
        self._node_seen = 0.0

    async def _connect(self) -> None:
        pass

    async def _disconnect(self) -> None:
        pass

    async def _publish(self, channel: str, payload: bytes) -> None:
        if channel in self._active:
            self._deliver(channel, payload)

    async def _subscribe_many(self, channels: list[str]) -> None:
        pass

    async def _unsubscribe_many(self, channels: list[str]) -> None:
        pass

    async def heartbeat(self, node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> None:
        self._node_info = node
        self._node_seen = time.monotonic()
        self._presence.replace(presence)

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        self._presence.add(channel, client)

    async def presence_remove(self, channel: str, client: str) -> None:
        self._presence.remove(channel, client)

    async def presence(self, channel: str) -> list[ClientInfo]:
        return self._presence.members(channel)

    async def nodes(self) -> list[NodeInfo]:
        if self._node_info is None or time.monotonic() - self._node_seen > self.ttl:
            return []
        return [self._node_info]
