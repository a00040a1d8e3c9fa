"""Presence entries held in this process: channel -> client id -> ClientInfo."""

from __future__ import annotations

from tidings.model import ClientInfo


class PresenceMap:
    """The node's own presence, and the in-memory state of brokers that keep it locally."""

    def __init__(self) -> None:
        self._channels: dict[str, dict[str, ClientInfo]] = {}

    def add(self, channel: str, client: ClientInfo) -> None:
        self._channels.setdefault(channel, {})[client.client] = client

    def remove(self, channel: str, client: str) -> None:
        members = self._channels.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._channels[channel]

    def members(self, channel: str) -> list[ClientInfo]:
        return list(self._channels.get(channel, {}).values())

    def snapshot(self) -> dict[str, list[ClientInfo]]:
        return {channel: list(members.values()) for channel, members in self._channels.items()}

    def replace(self, snapshot: dict[str, list[ClientInfo]]) -> None:
        self._channels = {}
        for channel, clients in snapshot.items():
            for client in clients:
                self.add(channel, client)

    def __bool__(self) -> bool:
        return bool(self._channels)
