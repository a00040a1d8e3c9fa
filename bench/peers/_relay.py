"""What the three bare relays share: server frames and one write per socket per loop tick.

`BARE_MODE=coalesce` (the default, the ceiling): every frame relayed within one event-loop
tick is joined once and the same bytes are written to each subscriber with one write, the
best a one-room broadcast can do and the same trick Tidings' outbox plays. `BARE_MODE=naive`:
one write per recipient per message, what a plain broadcast loop does; kept to show what
coalescing is worth on each library.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable

MODE = os.environ.get("BARE_MODE", "coalesce")
OK = b"\x81\x02ok"


def frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (server to client)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class Coalescer:
    """Collects this tick's frames; at the end of the tick writes them to every subscriber."""

    def __init__(self, writers: Callable[[], list[Callable[[bytes], None]]]):
        self.writers = writers
        self.frames: list[bytes] = []

    def relay(self, payload: bytes) -> None:
        if not self.frames:
            asyncio.get_running_loop().call_soon(self.flush)
        self.frames.append(frame(payload))

    def flush(self) -> None:
        data = b"".join(self.frames)
        self.frames = []
        for write in self.writers():
            write(data)
