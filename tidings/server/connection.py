"""Writing pre-encoded frames straight to a socket, and aiohttp's WebSocket as a session's.

Every frame the server sends to a client is written to the transport as it is, so the hub
can write one frame object to thousands of transports without re-encoding it: Tidings' own
WebSocket layer (tidings.server.wsserver) and, for an upgrade on a connection aiohttp
already serves, `WebSocketConnection` both write through `TransportWrites`. On the latter,
aiohttp still reads the socket and owns the closing handshake.

Writing to a socket that is already gone must be harmless: a peer can reset its connection
at any moment, and the session only learns of it when the read side notices. asyncio's
own transports drop such writes, but uvloop's (the production loop) raise RuntimeError,
which would crash whatever was writing: a drain at SIGTERM, or the outbox flush, leaving
every later session of that tick unflushed. So every write checks the transport first.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

log = logging.getLogger("tidings.server")

CLOSE_GRACE = 2.0  # seconds a closing handshake may take before the socket is dropped


class TransportWrites:
    """`write` and `writelines` of a session's Connection, on `self.transport`."""

    __slots__ = ()
    transport: asyncio.Transport

    # Called once per session per event-loop tick (see tidings.outbox), not per recipient
    # of a publication: the check costs little.
    def write(self, frame: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(frame)

    def writelines(self, frames: list[bytes]) -> None:
        if not self.transport.is_closing():
            self.transport.writelines(frames)


class WebSocketConnection(TransportWrites):
    """aiohttp's WebSocket under a session (an upgrade on a connection aiohttp serves)."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None):
        self.ws = ws
        # None when the peer was gone before the handshake finished: a closed socket
        self.transport = transport or _GONE
        self.closing: asyncio.Task | None = None
        self.buffered = self.transport.get_write_buffer_size

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            # a close reason holds at most 123 bytes: cut on a character boundary
            message = reason.encode()[:123].decode("utf-8", "ignore").encode()
            await asyncio.wait_for(self.ws.close(code=code, message=message), CLOSE_GRACE)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            if not self.transport.is_closing():
                self.transport.abort()


class _Gone:
    """Stands in for the transport of a connection that vanished during its handshake."""

    def is_closing(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        pass


_GONE = _Gone()
