"""STOMP over WebSocket at `/stomp` (subprotocols v12.stomp, v11.stomp, v10.stomp).

Each WebSocket message from the client is fed to the STOMP parser as it is (a message may
hold several frames or part of one); every frame the server sends is one text message.
"""

from __future__ import annotations


from aiohttp import web

from tidings.protocol import wsframe
from tidings.server import websocket
from tidings.server.connection import WebSocketConnection
from tidings.server.keys import NODE
from tidings.server.stomp_connection import StompGateway

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
    await websocket.serve(ws, stomp)
    return ws


def setup(app: web.Application) -> None:
    app[GATEWAY] = StompGateway(app[NODE])
    app.add_routes([web.get("/stomp", handle)])
