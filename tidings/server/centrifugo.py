"""Centrifugo's WebSocket endpoint, `/connection/websocket`: JSON, or Protobuf when asked.

Protobuf is chosen by the subprotocol `centrifuge-protobuf` (what centrifuge-js's protobuf
build offers) or by `?format=protobuf`; anything else speaks JSON. This module only moves
WebSocket messages; tidings.server.centrifugo_connection means them.
"""

from __future__ import annotations

from aiohttp import WSMsgType, web

from tidings.errors import CloseCode
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
    if node.draining:
        client.session.close(CloseCode.SHUTDOWN, "node shutting down: reconnect to another node")
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await client.receive(msg.data.encode() if msg.type == WSMsgType.TEXT
                                     else msg.data)
            elif msg.type == WSMsgType.PING:
                client.session.seen()
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        await client.closed()
    return ws


def setup(app: web.Application) -> None:
    app.add_routes([web.get(PATH, handle), *centrifugo_api.routes()])
