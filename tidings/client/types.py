"""The values the server API and the native protocol hand a client, as typed objects.

They mirror the wire shapes of docs/protocol.md and docs/api.md; `data` is the decoded JSON
value, as published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class Publication:
    """One message of a channel; `offset` 0 and `epoch` "" in ephemeral channels."""

    channel: str
    offset: int
    epoch: str
    data: Any
    time: int  # ms since the Unix epoch, set by the node that accepted it
    source: str | None = None
    sender: str | None = None

    @classmethod
    def from_wire(cls, raw: dict) -> "Publication":
        return cls(raw["channel"], raw["offset"], raw["epoch"], raw.get("data"), raw["time"],
                   raw.get("source"), raw.get("sender"))


@dataclass(slots=True, frozen=True)
class Published:
    """Where an accepted publication landed; `offset`/`epoch` are None in ephemeral channels."""

    channel: str
    offset: int | None = None
    epoch: str | None = None


@dataclass(slots=True, frozen=True)
class HistoryPage:
    """A page of history; `offset` is the channel's last offset (0 if never written)."""

    channel: str
    offset: int
    epoch: str
    publications: list[Publication]

    @classmethod
    def from_wire(cls, raw: dict) -> "HistoryPage":
        return cls(raw["channel"], raw["offset"], raw["epoch"],
                   [Publication.from_wire(pub) for pub in raw["publications"]])


@dataclass(slots=True, frozen=True)
class Member:
    """One connection in a channel's presence, or the subject of a join/leave."""

    client: str
    user: str
    node: str
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_wire(cls, raw: dict) -> "Member":
        return cls(raw["client"], raw["user"], raw["node"], raw.get("meta") or {})


@dataclass(slots=True, frozen=True)
class Presence:
    channel: str
    clients: dict[str, Member]  # by connection id

    @classmethod
    def from_wire(cls, raw: dict) -> "Presence":
        return cls(raw["channel"],
                   {client: Member.from_wire(info) for client, info in raw["clients"].items()})


@dataclass(slots=True, frozen=True)
class NodeStatus:
    """A live node as its last heartbeat described it."""

    name: str
    connections: int
    users: int
    started: int  # ms since the Unix epoch
    version: str
    address: str = ""


@dataclass(slots=True, frozen=True)
class Info:
    node: str  # the node that answered
    version: str
    nodes: list[NodeStatus]

    @classmethod
    def from_wire(cls, raw: dict) -> "Info":
        return cls(raw["node"], raw["version"], [NodeStatus(**node) for node in raw["nodes"]])


@dataclass(slots=True, frozen=True)
class Disconnected:
    user: str
    closed_here: int  # connections closed by the node that answered; others close cluster-wide


@dataclass(slots=True, frozen=True)
class Health:
    """What `/health` said: `ok` is whether a load balancer would send clients there."""

    ok: bool
    status: str
    node: str
    body: dict


@dataclass(slots=True, frozen=True)
class Join:
    channel: str
    member: Member


@dataclass(slots=True, frozen=True)
class Leave:
    channel: str
    member: Member


@dataclass(slots=True, frozen=True)
class Reset:
    """The subscription's position could not be recovered: what was missed must be reloaded.

    The subscription goes on from the channel's current position (`offset`, `epoch`); read
    `history` (reverse pages) to rebuild what the application shows.
    """

    channel: str
    reason: str
    offset: int
    epoch: str
