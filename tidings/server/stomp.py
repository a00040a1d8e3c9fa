"""STOMP over WebSocket at `/stomp` (subprotocols v12.stomp, v11.stomp, v10.stomp).

Each WebSocket message from the client is fed to the STOMP parser as it is (a message may
hold several frames or part of one); every frame the server sends is one text message.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import WSMsgType, web

from tidings.errors import CloseCode
from tidings.protocol import wsframe
from tidings.server import websocket
from tidings.server.connection import WebSocketConnection
from tidings.server.keys import NODE
from tidings.server.stomp_connection import StompConnection, StompGateway

SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")
GATEWAY = web.AppKey("stomp", StompGateway)


class WebSocketFraming:
    """A STOMP frame as one unmasked WebSocket text message."""

    def wrap(self, frame: bytes) -> bytes:
        return wsframe.text(frame)


WEBSOCKET = WebSocketFraming()


def gateway(request: web.Request) -> StompGateway:
    return request.app[GATEWAY]


async def handle(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    ws, peer = await websocket.accept(request, node, "stomp", protocols=SUBPROTOCOLS,
                                      compress=False, autoping=False,
                                      max_msg_size=node.settings.max_frame_bytes + 1)
    stomp = gateway(request).open(request, WebSocketConnection(ws, request.transport),
                                  WEBSOCKET, peer)
    await serve_websocket(ws, stomp)
    return ws


async def serve_websocket(ws: web.WebSocketResponse, stomp: StompConnection,
                          unwrap: Callable[[bytes], bytes] = lambda data: data) -> None:
    """Feed every message of `ws` (its STOMP bytes, as `unwrap` finds them) to `stomp`."""
    if stomp.node.draining:
        stomp.session.close(CloseCode.SHUTDOWN, "node shutting down: reconnect to another node")
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                data = msg.data.encode() if msg.type == WSMsgType.TEXT else msg.data
                try:
                    await stomp.receive(unwrap(data))
                except ValueError as exc:  # a transport's own framing was broken
                    stomp.session.close(CloseCode.TOO_MANY_ERRORS, str(exc))
            elif msg.type == WSMsgType.PING:
                stomp.session.seen()
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        await stomp.closed()


def setup(app: web.Application) -> None:
    app[GATEWAY] = StompGateway(app[NODE])
    app.add_routes([web.get("/stomp", handle)])
