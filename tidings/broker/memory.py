"""The in-process broker: one node, no network. The embedded default."""

from __future__ import annotations

import time

from tidings.broker.base import Broker
from tidings.model import ClientInfo, NodeInfo


class MemoryBroker(Broker):
    """Delivers a publication straight back to its own node, as a one-node cluster would."""

    shared = False

    def __init__(self, node: str, **options):
        super().__init__(node, **options)
        self._presence: dict[str, dict[str, ClientInfo]] = {}
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
        self._presence = {
            channel: {client.client: client for client in clients}
            for channel, clients in presence.items()
            if clients
        }

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        self._presence.setdefault(channel, {})[client.client] = client

    async def presence_remove(self, channel: str, client: str) -> None:
        members = self._presence.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._presence[channel]

    async def presence(self, channel: str) -> list[ClientInfo]:
        return list(self._presence.get(channel, {}).values())

    async def nodes(self) -> list[NodeInfo]:
        if self._node_info is None or time.monotonic() - self._node_seen > self.ttl:
            return []
        return [self._node_info]
