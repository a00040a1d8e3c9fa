"""Server-to-client WebSocket frames (RFC 6455), built once and written to many sockets.

Frames from a server are never masked, so the bytes of a frame do not depend on the
recipient: the hub builds a publication's frame once and writes the same object to every
socket that should get it.
"""

from __future__ import annotations

import struct

TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One final, unmasked frame carrying `payload`."""
    first = 0x80 | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


def text(payload: bytes) -> bytes:
    return frame(payload, TEXT)


def close(code: int, reason: str = "") -> bytes:
    # at most 123 bytes of reason, cut on a character boundary so it stays valid UTF-8
    cut = reason.encode()[:123].decode("utf-8", "ignore").encode()
    return frame(struct.pack("!H", code) + cut, CLOSE)
