"""Centrifugo's WebSocket endpoint, `/connection/websocket`: JSON, or Protobuf when asked.

Protobuf is chosen by the subprotocol `centrifuge-protobuf` (what centrifuge-js's protobuf
build offers) or by `?format=protobuf`; anything else speaks JSON. This module only moves
WebSocket messages; tidings.server.centrifugo_connection means them.
"""

from __future__ import annotations

from aiohttp import web

from tidings.protocol import centrifugo as cf
from tidings.server import centrifugo_api, websocket
from tidings.server.centrifugo_connection import CentrifugoConnection
from tidings.server.connection import WebSocketConnection
from tidings.server.keys import NODE

PATH = "/connection/websocket"
PROTOBUF_SUBPROTOCOL = "centrifuge-protobuf"


async def handle(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    ws, peer = await websocket.accept(request, node, "centrifugo",
                                      protocols=(PROTOBUF_SUBPROTOCOL,), compress=False,
                                      autoping=False,
                                      max_msg_size=node.settings.max_frame_bytes + 1)
    protobuf = (ws.ws_protocol == PROTOBUF_SUBPROTOCOL
                or request.query.get("format") == "protobuf")
    client = CentrifugoConnection(node, WebSocketConnection(ws, request.transport),
                                  cf.PROTOBUF if protobuf else cf.JSON, peer,
                                  url_user=request.query.get("user"))
    await websocket.serve(ws, client)
    return ws


def setup(app: web.Application) -> None:
    app.add_routes([web.get(PATH, handle), *centrifugo_api.routes()])
