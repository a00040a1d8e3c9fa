"""The binary voice frame, sans-I/O: bytes in, a typed VoiceFrame out; a frame out, bytes.

Voice travels as WebSocket binary frames on `/ws`, each one Opus packet (or fallback PCM, or
a whispered text line) behind a small header naming the channel, the sender, a sequence
number and the sender's clock. The node parses the header, never the audio: it checks who
may send where, names the sender itself, and relays the same bytes to every listener.
docs/protocol.md (Voice frames) is the reference; this module is its parser. It must never
touch a socket, so it can be fuzzed on its own.

Layout (big-endian):

    0   u8   version (1)
    1   u8   kind: 1 Opus, 2 PCM (16-bit little-endian, 16 kHz mono), 3 UTF-8 text
    2   u8   flags: bit 0 whisper (a target follows the sender); other bits must be 0
    3   u8   channel length C (1-255)
    4   u32  sequence number (the sender's, wrapping)
    8   u32  timestamp (the sender's clock in ms, wrapping)
    12  C    channel, ASCII
    ..  u8   sender length S, then S bytes: 0 from a client (the node fills it in)
    ..  u8   target length T, then T bytes: only with the whisper flag (1-200)
    ..       payload, to the end of the frame
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
WHISPER = 0x01
FIXED = struct.Struct("!BBBBII")  # version, kind, flags, channel length, seq, timestamp
MAX_USER = 200


class Kind(IntEnum):
    OPUS = 1
    PCM = 2
    TEXT = 3


class VoiceFormatError(ValueError):
    """Bytes that are not a voice frame; the message says which part is wrong."""


@dataclass(slots=True, frozen=True)
class VoiceFrame:
    kind: Kind
    seq: int
    timestamp: int
    channel: str
    sender: str
    target: str | None  # the one member a whisper is for
    payload: bytes

    @property
    def audio(self) -> bool:
        return self.kind != Kind.TEXT


def parse(data: bytes) -> VoiceFrame:
    """One binary frame -> VoiceFrame, or VoiceFormatError."""
    if len(data) < FIXED.size:
        raise VoiceFormatError(f"a voice frame has at least {FIXED.size} header bytes")
    version, kind, flags, channel_len, seq, timestamp = FIXED.unpack_from(data)
    if version != VERSION:
        raise VoiceFormatError(f"unknown voice frame version {version}")
    if kind not in Kind._value2member_map_:
        raise VoiceFormatError(f"unknown payload kind {kind}")
    if flags & ~WHISPER:
        raise VoiceFormatError(f"unknown flag bits {flags & ~WHISPER:#04x}")
    if channel_len == 0:
        raise VoiceFormatError("the channel is empty")
    at = FIXED.size
    channel, at = _ascii(data, at, channel_len, "channel")
    sender, at = _field(data, at, "sender")
    target = None
    if flags & WHISPER:
        target, at = _field(data, at, "whisper target")
        if not target:
            raise VoiceFormatError("a whisper needs a target")
    payload = data[at:]
    if kind == Kind.TEXT:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise VoiceFormatError("a text payload must be UTF-8") from None
    return VoiceFrame(Kind(kind), seq, timestamp, channel, sender, target, payload)


def _field(data: bytes, at: int, name: str) -> tuple[str, int]:
    if at >= len(data):
        raise VoiceFormatError(f"the frame ends before the {name} length")
    size = data[at]
    if size > MAX_USER:
        raise VoiceFormatError(f"the {name} is longer than {MAX_USER} bytes")
    return _ascii(data, at + 1, size, name)


def _ascii(data: bytes, at: int, size: int, name: str) -> tuple[str, int]:
    end = at + size
    if end > len(data):
        raise VoiceFormatError(f"the frame ends inside the {name}")
    raw = data[at:end]
    if not raw.isascii():
        raise VoiceFormatError(f"the {name} must be ASCII")
    return raw.decode("ascii"), end


def encode(frame: VoiceFrame) -> bytes:
    """The frame's bytes (the node sends this with the sender filled in)."""
    channel = frame.channel.encode("ascii")
    sender = frame.sender.encode("ascii")
    flags = WHISPER if frame.target is not None else 0
    parts = [FIXED.pack(VERSION, frame.kind, flags, len(channel), frame.seq & 0xFFFFFFFF,
                        frame.timestamp & 0xFFFFFFFF),
             channel, bytes((len(sender),)), sender]
    if frame.target is not None:
        target = frame.target.encode("ascii")
        parts += [bytes((len(target),)), target]
    parts.append(frame.payload)
    return b"".join(parts)


def with_sender(data: bytes, frame: VoiceFrame, sender: str) -> bytes:
    """The client's frame `data` (parsed as `frame`) with the sender named by the node.

    Cheaper than `encode`: the bytes around the sender field are reused as they are.
    """
    at = FIXED.size + len(frame.channel)
    rest = at + 1 + len(frame.sender)
    name = sender.encode("ascii")
    return b"".join((data[:at], bytes((len(name),)), name, data[rest:]))
