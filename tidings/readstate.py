"""The message center's values: inbox messages, per-source counts and read-state changes.

A user's inbox holds every publication to their `user:<id>` channel that names a `source`
(the backend system that sent it), and the shared notifications: every publication with a
`source` on the shared channel (`broadcast`, "everyone"), stored once for all users and
read through a cursor per user and source, so a broadcast costs no write per user. Each message is known by its offset in that channel and
carries three flags: `read`, `seen` (the badge was cleared without reading) and `archived`
(hidden from the list and the counts). The store computes every count from these rows, so
counts are exact at any size and under concurrent writers; nothing here is a cache.

This module holds values only; the store persists them and `tidings.inbox` serves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import orjson


@dataclass(slots=True, frozen=True)
class InboxSpec:
    """What an append to `user:<user>` adds to that user's inbox, and how long it keeps it.

    `max_messages` per (user, source): older ones are dropped in the same transaction;
    `max_age` seconds (0: no age limit): expired ones vanish from lists and counts at once.
    """

    user: str
    max_messages: int
    max_age: float = 0.0


@dataclass(slots=True, frozen=True)
class InboxMessage:
    offset: int  # in the user's `user:<id>` channel
    source: str
    time: int  # ms since the Unix epoch
    data: bytes  # raw JSON, as published
    read: bool
    seen: bool

    def to_dict(self) -> dict:
        return {"offset": self.offset, "source": self.source, "time": self.time,
                "data": orjson.Fragment(self.data), "read": self.read, "seen": self.seen}


@dataclass(slots=True, frozen=True)
class SourceCounts:
    total: int  # messages not archived
    unread: int
    unseen: int

    def to_dict(self) -> dict:
        return {"total": self.total, "unread": self.unread, "unseen": self.unseen}


@dataclass(slots=True, frozen=True)
class InboxCounts:
    """Exact counts of one user's inbox, as of one snapshot.

    `version` grows with every read-state change of the user (not with new messages), so a
    client that gets two `inbox` pushes out of order keeps the higher one. `offset` is the
    highest offset of any message the user's inbox holds (archived ones included): the
    counts include everything up to it, so a client adds a `pub` with a source to its
    counts only if its offset is higher.
    """

    sources: dict[str, SourceCounts]
    version: int
    offset: int = 0
    shared: dict[str, SourceCounts] = field(default_factory=dict)
    shared_offset: int = 0  # the shared channel's top offset the `shared` counts include

    @property
    def unread(self) -> int:
        return sum(c.unread for c in (*self.sources.values(), *self.shared.values()))

    @property
    def unseen(self) -> int:
        return sum(c.unseen for c in (*self.sources.values(), *self.shared.values()))

    def to_dict(self) -> dict:
        out = {"unread": self.unread, "unseen": self.unseen, "version": self.version,
               "offset": self.offset,
               "sources": {name: c.to_dict() for name, c in sorted(self.sources.items())}}
        if self.shared:  # only users who have shared notifications see the key
            out["shared"] = {name: c.to_dict() for name, c in sorted(self.shared.items())}
            out["shared_offset"] = self.shared_offset
        return out


@dataclass(slots=True, frozen=True)
class InboxView:
    """Counts plus the newest messages of each source (newest first)."""

    counts: InboxCounts
    messages: dict[str, list[InboxMessage]] = field(default_factory=dict)
    shared_messages: dict[str, list[InboxMessage]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = self.counts.to_dict()
        for name, source in out["sources"].items():
            source["messages"] = [m.to_dict() for m in self.messages.get(name, [])]
        for name, source in out.get("shared", {}).items():
            source["messages"] = [m.to_dict() for m in self.shared_messages.get(name, [])]
        return out


ChangeKind = Literal["read", "unread", "seen", "archive"]


@dataclass(slots=True, frozen=True)
class ReadChange:
    """One read-state change of one user's inbox.

    Which messages it touches: `offset` alone (one message); `source` with `upto` (that
    source's messages up to and including offset `upto`); `source` alone (all of that
    source); nothing (the whole inbox). `seen` takes a source or nothing; `unread` and
    `archive` take one offset.

    `shared`: a `read` of a source (up to `upto`, an offset of the shared channel) among
    the shared notifications instead of the user's own. Shared notifications have a read
    and a seen cursor per user and source, not flags per message: `read` of everything and
    `seen` move those cursors too, and nothing else touches them.
    """

    kind: ChangeKind
    offset: int | None = None
    source: str | None = None
    upto: int | None = None
    shared: bool = False

    def to_dict(self) -> dict:
        out: dict = {}
        if self.offset is not None:
            out["offset"] = self.offset
        if self.source is not None:
            out["source"] = self.source
        if self.upto is not None:
            out["upto"] = self.upto
        if self.shared:
            out["shared"] = True
        return out


class NoSuchMessage(Exception):
    """A change named an offset that is not (or no longer) in the user's inbox."""
