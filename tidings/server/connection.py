"""A session's socket, written to directly: pre-encoded frames go to the transport as they are.

aiohttp still reads the socket (it parses client frames, answers WebSocket pings) and owns
the closing handshake; every frame the server sends to a client, it writes here itself, so
the hub can write one frame object to thousands of transports without re-encoding it.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

log = logging.getLogger("tidings.server")

CLOSE_GRACE = 2.0  # seconds a closing handshake may take before the socket is dropped


class WebSocketConnection:
    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport):
        self.ws = ws
        self.transport = transport
        self.closing: asyncio.Task | None = None
        # Bound methods of the transport itself: the fan-out loop calls these once per
        # recipient, so no wrapper frame sits between the hub and the socket. Writing to a
        # transport the peer already closed is a no-op (asyncio counts and drops it).
        self.write = transport.write
        self.writelines = transport.writelines
        self.buffered = transport.get_write_buffer_size

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
