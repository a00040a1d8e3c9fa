"""The values that travel between the store, the broker, the hub and the protocols."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson


@dataclass(slots=True, frozen=True)
class Publication:
    """One message in a channel.

    `data` holds the payload as raw JSON bytes, exactly as the publisher sent it after
    validation: it is stored and forwarded without being parsed again, and spliced into
    outgoing frames with `orjson.Fragment`. Ephemeral channels carry offset 0 and epoch "".
    """

    channel: str
    offset: int
    epoch: str
    data: bytes
    time: int  # milliseconds since the Unix epoch, set by the node that accepted it
    source: str | None = None
    sender: str | None = None

    def to_dict(self) -> dict:
        """The wire shape shared by the native protocol, the server API and the broker."""
        out: dict = {
            "channel": self.channel,
            "offset": self.offset,
            "epoch": self.epoch,
            "data": orjson.Fragment(self.data),
            "time": self.time,
        }
        if self.source is not None:
            out["source"] = self.source
        if self.sender is not None:
            out["sender"] = self.sender
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "Publication":
        return cls(
            channel=raw["channel"],
            offset=raw["offset"],
            epoch=raw["epoch"],
            data=orjson.dumps(raw["data"]),
            time=raw["time"],
            source=raw.get("source"),
            sender=raw.get("sender"),
        )


@dataclass(slots=True, frozen=True)
class StreamPosition:
    """Where a channel's history stands: the last offset assigned and its epoch."""

    offset: int
    epoch: str


@dataclass(slots=True, frozen=True)
class HistoryPage:
    publications: list[Publication]
    position: StreamPosition


@dataclass(slots=True, frozen=True)
class ClientInfo:
    """One connection as presence and join/leave events show it."""

    client: str
    user: str
    node: str
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"client": self.client, "user": self.user, "node": self.node}
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "ClientInfo":
        return cls(raw["client"], raw["user"], raw["node"], raw.get("meta") or {})


@dataclass(slots=True, frozen=True)
class NodeInfo:
    """A live node as the cluster registry reports it."""

    name: str
    connections: int
    users: int
    started: int  # ms since epoch
    version: str
    address: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "connections": self.connections,
            "users": self.users,
            "started": self.started,
            "version": self.version,
            "address": self.address,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> "NodeInfo":
        return cls(
            raw["name"], raw["connections"], raw["users"], raw["started"], raw["version"],
            raw.get("address", ""),
        )


@dataclass(slots=True, frozen=True)
class AckPosition:
    """How far a client has acknowledged one STOMP subscription, kept by the server.

    Every publication of `destination` up to `offset` is acknowledged, and so are the
    offsets in `acked` above it (acknowledged one by one past one that was not). What a
    client that subscribes again with the same subscription id gets is everything else.
    """

    destination: str
    offset: int
    epoch: str
    acked: tuple[int, ...] = ()
