"""Centrifugo's WebSocket endpoint, `/connection/websocket`: JSON, or Protobuf when asked.

Protobuf is chosen by the subprotocol `centrifuge-protobuf` (what centrifuge-js's protobuf
build offers; it is then named in the 101) or by `?format=protobuf`; anything else speaks
JSON. Served on Tidings' own WebSocket layer (tidings.server.front); this module only opens
the connection, tidings.server.centrifugo_connection means its messages.
"""

from __future__ import annotations

from aiohttp import web

from tidings.peer import Peer
from tidings.protocol import centrifugo as cf
from tidings.protocol.upgrade import UpgradeRequest
from tidings.server import centrifugo_api, websocket
from tidings.server.centrifugo_connection import CentrifugoConnection
from tidings.server.front import WEBSOCKETS, on_reused_connection
from tidings.server.keys import NODE, ORIGINS
from tidings.session import Connection

PATH = "/connection/websocket"
PROTOBUF_SUBPROTOCOL = "centrifuge-protobuf"


class CentrifugoEndpoint(websocket.SessionEndpoint):
    """`/connection/websocket`: a Centrifugo connection per socket."""

    protocol = "centrifugo"
    subprotocols = (PROTOBUF_SUBPROTOCOL,)

    def open(self, socket: Connection, peer: Peer, request: UpgradeRequest,
             subprotocol: str | None) -> CentrifugoConnection:
        params = request.params()
        protobuf = subprotocol == PROTOBUF_SUBPROTOCOL or params.get("format") == "protobuf"
        client = CentrifugoConnection(self.node, socket, cf.PROTOBUF if protobuf else cf.JSON,
                                      peer, url_user=params.get("user"))
        websocket.send_away_if_draining(client.session)
        return client


def setup(app: web.Application) -> None:
    app[WEBSOCKETS].paths[PATH] = endpoint = CentrifugoEndpoint(app[NODE], app[ORIGINS])
    app.add_routes([web.get(PATH, on_reused_connection(endpoint)), *centrifugo_api.routes()])
