"""STOMP over WebSocket at `/stomp` (subprotocols v12.stomp, v11.stomp, v10.stomp).

Served on Tidings' own WebSocket layer (tidings.server.front). The first subprotocol the
client offers that is one of these is named in the 101; a client that offers none gets no
Sec-WebSocket-Protocol header (and speaks STOMP all the same). Each WebSocket message from
the client is fed to the STOMP parser as it is (a message may hold several frames or part
of one); every frame the server sends is one text message.
"""

from __future__ import annotations

from aiohttp import web

from tidings.peer import Peer
from tidings.protocol import wsframe
from tidings.protocol.upgrade import UpgradeRequest
from tidings.server import websocket
from tidings.server.front import WEBSOCKETS, on_reused_connection
from tidings.server.keys import NODE, ORIGINS
from tidings.server.origin import OriginPolicy
from tidings.server.stomp_connection import StompConnection, StompGateway
from tidings.session import Connection

PATH = "/stomp"
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")
GATEWAY = web.AppKey("stomp", StompGateway)


class WebSocketFraming:
    """A STOMP frame as one unmasked WebSocket text message."""

    def wrap(self, frame: bytes) -> bytes:
        return wsframe.text(frame)


WEBSOCKET = WebSocketFraming()


def gateway(request: web.Request) -> StompGateway:
    return request.app[GATEWAY]


class StompEndpoint(websocket.SessionEndpoint):
    """`/stomp` (and SockJS' raw `/sockjs/websocket`): a STOMP connection per socket."""

    protocol = "stomp"
    subprotocols = SUBPROTOCOLS

    def __init__(self, gateway: StompGateway, origins: OriginPolicy):
        super().__init__(gateway.node, origins)
        self.gateway = gateway

    def open(self, socket: Connection, peer: Peer, request: UpgradeRequest,
             subprotocol: str | None) -> StompConnection:
        stomp = self.gateway.open(request.params(), socket, WEBSOCKET, peer)
        websocket.send_away_if_draining(stomp.session)
        return stomp


def setup(app: web.Application) -> StompEndpoint:
    """The gateway, and `/stomp` among the front's endpoints; the endpoint, for SockJS."""
    app[GATEWAY] = stomp_gateway = StompGateway(app[NODE])
    endpoint = StompEndpoint(stomp_gateway, app[ORIGINS])
    app[WEBSOCKETS].paths[PATH] = endpoint
    app.add_routes([web.get(PATH, on_reused_connection(endpoint))])
    return endpoint
