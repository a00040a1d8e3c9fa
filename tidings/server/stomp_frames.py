"""STOMP MESSAGE frames, made once per publication per distinct subscription id.

A MESSAGE frame names the subscription id its client chose, so one frame cannot serve every
STOMP client of a room; but most clients number their subscriptions alike (`sub-0`,
`sub-1`, ...), so a frame made for one id serves every session that subscribed with that id.
`MessageFrames` is that shared codec, one per (transport framing, STOMP version, subscription
id, ack mode), kept in `FrameCache` while any subscription uses it. The hub groups
recipients by codec, so a room publication costs one encoding per distinct id.

`SessionFrames` is each STOMP session's own codec: it serves the channels every session is
subscribed to from the start (its `user:<id>` channel and `broadcast`), which several STOMP
subscriptions of one session can share, and the frames that are the session's alone (ERROR
on a server-side close, heart-beats).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from tidings.acks import AckLedger, TooManyUnacked
from tidings.errors import CloseCode
from tidings.model import ClientInfo, Publication
from tidings.protocol import stomp

_ephemeral_ids = itertools.count(1)  # message ids in channels without offsets


class Framing(Protocol):
    """How one transport carries a STOMP frame (a WebSocket message, a SockJS frame...)."""

    def wrap(self, frame: bytes) -> bytes: ...


@dataclass(slots=True, frozen=True)
class FrameKey:
    framing: Framing
    version: str
    subscription: str
    acked: bool  # frames carry an `ack` header


def message_id(offset: int, subscription: str) -> str:
    """`<offset>.<subscription>`: also the `ack` header, so ACK finds both from one value."""
    return f"{offset}.{subscription}"


def parse_ack_id(value: str) -> tuple[str, int | None]:
    """(subscription id, offset) of a message id; offset None for messages nothing keeps."""
    offset, _, subscription = value.partition(".")
    return subscription, int(offset) if offset.isdigit() and offset.isascii() else None


def body_of(data: bytes) -> tuple[bytes, str]:
    """A publication's JSON as a MESSAGE body: a JSON string travels as its text."""
    if data[:1] == b'"':
        return orjson.loads(data).encode(), "text/plain;charset=utf-8"
    return data, "application/json"


class MessageFrames:
    """MESSAGE frames of one subscription id, cached for the publication being fanned out."""

    def __init__(self, key: FrameKey, topic_destination: Callable[[str], str]):
        self.key = key
        self._topic_destination = topic_destination
        self._last: tuple[Publication, str] | None = None
        self._frame = b""

    def frame(self, pub: Publication, destination: str) -> bytes:
        last = self._last
        if last is not None and last[0] is pub and last[1] == destination:
            return self._frame
        self._last = (pub, destination)
        self._frame = self.key.framing.wrap(self.encode(pub, destination))
        return self._frame

    def encode(self, pub: Publication, destination: str) -> bytes:
        key = self.key
        offset = pub.offset if pub.offset else f"e{next(_ephemeral_ids)}"
        ident = f"{offset}.{key.subscription}"
        body, content_type = body_of(pub.data)
        headers = [("destination", destination), ("subscription", key.subscription),
                   ("message-id", ident), ("content-type", content_type)]
        if key.acked:
            headers.append(("ack", ident))
        if pub.offset:
            headers += [("offset", str(pub.offset)), ("epoch", pub.epoch)]
        headers.append(("time", str(pub.time)))
        if pub.sender is not None:
            headers.append(("sender", pub.sender))
        if pub.source is not None:
            headers.append(("source", pub.source))
        return stomp.encode("MESSAGE", headers, body, version=key.version)

    # the hub's codec, for room subscriptions without client acks

    def pub_frame(self, pub: Publication) -> bytes:
        return self.frame(pub, self._topic_destination(pub.channel))

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes:
        return b""  # join and leave are not shown to STOMP clients


class FrameCache:
    """The MessageFrames in use, by key, counted so the last user's release drops them."""

    def __init__(self, topic_destination: Callable[[str], str]):
        self._topic_destination = topic_destination
        self._frames: dict[FrameKey, list] = {}  # key -> [MessageFrames, users]

    def acquire(self, key: FrameKey) -> MessageFrames:
        entry = self._frames.get(key)
        if entry is None:
            entry = self._frames[key] = [MessageFrames(key, self._topic_destination), 0]
        entry[1] += 1
        return entry[0]

    def release(self, key: FrameKey) -> None:
        entry = self._frames.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._frames[key]

    def __len__(self) -> int:
        return len(self._frames)


class AckedFrames:
    """A room subscription with client acks: the shared frame, and the delivery noted."""

    def __init__(self, frames: MessageFrames, destination: str, ledger: AckLedger,
                 overflow: Callable[[str], None]):
        self.frames = frames
        self.destination = destination
        self.ledger = ledger
        self._overflow = overflow

    def pub_frame(self, pub: Publication) -> bytes:
        if pub.offset:
            try:
                self.ledger.delivered(pub.offset)
            except TooManyUnacked as exc:
                self._overflow(str(exc))
                return b""
        return self.frames.frame(pub, self.destination)

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes:
        return b""


@dataclass(eq=False)
class SharedChannelSubscription:
    """A STOMP subscription to `user:<me>` (`/user/queue/<name>`) or `broadcast`."""

    id: str
    channel: str
    destination: str
    frames: MessageFrames
    seen: int  # offsets up to here are not delivered again
    ledger: AckLedger | None = None


@dataclass(eq=False)
class SessionFrames:
    """One STOMP session's own codec (see the module docstring)."""

    framing: Framing
    version: str = "1.2"
    overflow: Callable[[str], None] = lambda message: None
    quiet: bool = False  # an ERROR frame was written already: a close adds none
    positions: dict[str, int] = field(default_factory=dict)  # channel -> last offset seen
    shared: dict[str, list[SharedChannelSubscription]] = field(default_factory=dict)

    def add(self, sub: SharedChannelSubscription) -> None:
        self.shared.setdefault(sub.channel, []).append(sub)

    def remove(self, sub: SharedChannelSubscription) -> None:
        subs = self.shared.get(sub.channel, [])
        if sub in subs:
            subs.remove(sub)

    def pub_frame(self, pub: Publication) -> bytes:
        if pub.offset:
            self.positions[pub.channel] = pub.offset
        subs = self.shared.get(pub.channel)
        if not subs:
            return b""
        out = []
        for sub in subs:
            if pub.offset:
                if pub.offset <= sub.seen:
                    continue
                sub.seen = pub.offset
                if sub.ledger is not None:
                    try:
                        sub.ledger.delivered(pub.offset)
                    except TooManyUnacked as exc:
                        self.overflow(str(exc))
                        continue
            out.append(sub.frames.frame(pub, sub.destination))
        return out[0] if len(out) == 1 else b"".join(out)

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes:
        return b""

    def push_frame(self, kind: str, body: dict) -> bytes:
        """The server closes the session: an ERROR frame says why (not after one already)."""
        if kind != "disconnect" or self.quiet or body.get("code") == CloseCode.NORMAL:
            return b""
        return self.error_frame(body.get("reason", "closed"))

    def ping_frame(self) -> bytes:
        return self.framing.wrap(stomp.HEARTBEAT)

    def error_frame(self, message: str, receipt_id: str | None = None) -> bytes:
        headers = [("message", message)]
        if receipt_id is not None:
            headers.append(("receipt-id", receipt_id))
        headers.append(("content-type", "text/plain;charset=utf-8"))
        return self.framing.wrap(stomp.encode("ERROR", headers, message.encode(),
                                              version=self.version))

    def frame(self, command: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
        return self.framing.wrap(stomp.encode(command, headers, body, version=self.version))


def later(callback: Callable[[], None]) -> None:
    """Run `callback` after the current delivery: the hub must not see a session change mid-loop."""
    asyncio.get_running_loop().call_soon(callback)
