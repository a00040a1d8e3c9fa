"""Voice between nodes, sans-I/O: the binary envelope a node puts on the broker for voice.

A voice room's members may sit on different nodes. The node a member speaks through checks
the frame and names the sender, then hands the stamped frame (the very bytes its own
listeners get) to the other nodes through the broker, on the room's channel, so only nodes
with members of that room receive it. The envelope adds the origin node (a node drops its
own frames coming back) and a kind; it stays binary, so an Opus packet costs its own bytes
on the broker, not a base64 copy inside JSON. Speaking and silent events, decided by the
speaker's node, travel the same way. This module never touches the broker or a socket.

Layout (big-endian):

    0   u8   marker 0x00 (a node's JSON envelope starts with `{`, never with 0x00)
    1   u8   kind: 1 voice frame, 2 speaking, 3 silent
    2   u16  origin length N (1-65535), then N bytes: the origin node's name, UTF-8
    ..       body, to the end: kind 1 the stamped voice frame (docs/protocol.md, Voice
             frames); kinds 2 and 3 the speaker's ClientInfo as JSON
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MARKER = 0x00
HEAD = struct.Struct("!BBH")  # marker, kind, origin length


class LinkKind(IntEnum):
    FRAME = 1
    SPEAKING = 2
    SILENT = 3


class VoiceLinkError(ValueError):
    """Bytes that are no voice envelope; the message says which part is wrong."""


@dataclass(slots=True, frozen=True)
class Envelope:
    kind: LinkKind
    origin: str
    body: bytes


def is_voice(payload: bytes) -> bool:
    """True for a voice envelope, False for any other broker message of a node."""
    return payload[:1] == b"\x00"


def pack(kind: LinkKind, origin: str, body: bytes) -> bytes:
    name = origin.encode("utf-8")
    if not 0 < len(name) <= 0xFFFF:
        raise VoiceLinkError("the origin node's name must be 1-65535 bytes")
    return b"".join((HEAD.pack(MARKER, kind, len(name)), name, body))


def unpack(payload: bytes) -> Envelope:
    """A broker message -> Envelope, or VoiceLinkError."""
    if len(payload) < HEAD.size:
        raise VoiceLinkError(f"a voice envelope has at least {HEAD.size} header bytes")
    marker, kind, size = HEAD.unpack_from(payload)
    if marker != MARKER:
        raise VoiceLinkError(f"no voice envelope (starts with {marker:#04x})")
    if kind not in LinkKind._value2member_map_:
        raise VoiceLinkError(f"unknown envelope kind {kind}")
    if size == 0:
        raise VoiceLinkError("the origin is empty")
    end = HEAD.size + size
    if end > len(payload):
        raise VoiceLinkError("the envelope ends inside the origin")
    try:
        origin = payload[HEAD.size:end].decode("utf-8")
    except UnicodeDecodeError:
        raise VoiceLinkError("the origin must be UTF-8") from None
    return Envelope(LinkKind(kind), origin, payload[end:])
