"""The first bytes of every TCP connection: Tidings' WebSocket endpoints, or aiohttp.

One port serves the page, the server API, SockJS and every WebSocket endpoint. The front
reads a connection's first request head: a well-formed upgrade to an endpoint Tidings serves
itself (`/ws`, `/stomp`, `/connection/websocket`, SockJS' websocket transport) is answered
here and the socket goes to Tidings' own WebSocket layer (tidings.server.wsserver), which
costs a fraction of aiohttp's memory per idle connection; every other connection is handed,
with the bytes read so far, to aiohttp's request handler, exactly as if aiohttp had
accepted it. A plain request is handed over as soon as its request
line shows it is not for such an endpoint, so the API pays one look at the first line.

A proxy that keeps its upstream connections alive (nginx with `keepalive`, most load
balancers) may send an upgrade on a connection that already carried API requests, which
aiohttp serves by then: aiohttp's route for the endpoint's path (`on_reused_connection`)
serves that socket with aiohttp's WebSocket, feeding the same receiver, so the client sees
no difference; only its memory is aiohttp's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from aiohttp import WSMsgType, web

from tidings.errors import ErrorCode
from tidings.peer import Peer
from tidings.protocol.upgrade import (HEAD_END, MAX_HEAD_BYTES, UpgradeRequest, http_response,
                                      negotiate_subprotocol, parse_upgrade, request_path,
                                      switching_protocols)
from tidings.server.connection import WebSocketConnection
from tidings.server.websocket import HandshakeRefused, StrictWebSocketResponse
from tidings.server.wsserver import Receiver, WebSocket
from tidings.session import Connection

log = logging.getLogger("tidings.server")

CLEANUP_GRACE = 2.0  # seconds the sockets still open when the server stops get to finish


class Endpoint(Protocol):
    """A WebSocket endpoint served by Tidings' own layer (each protocol's builds on
    tidings.server.websocket.SessionEndpoint)."""

    max_message_bytes: int
    subprotocols: tuple[str, ...]  # what it speaks, by preference; () for none

    def admit(self, request: UpgradeRequest, address: str) -> Peer:
        """The peer for this handshake, or HandshakeRefused (answered with its HTTP status)."""

    def open(self, socket: Connection, peer: Peer, request: UpgradeRequest,
             subprotocol: str | None) -> Receiver:
        """After the 101 (which named `subprotocol`): what the socket's messages go to (the
        socket is Tidings' own, or aiohttp's on a reused connection)."""


@dataclass(eq=False)
class WebSocketEndpoints:
    """The endpoints by path, and the sockets they have open (kept for the server's stop).

    `paths` are exact; `patterns` (whole-path regular expressions, for paths with ids in
    them) are tried only when no exact path matches, so an ordinary request pays nothing
    for them unless some are registered.
    """

    handshake_timeout: float
    paths: dict[str, Endpoint] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], Endpoint]] = field(default_factory=list)
    sockets: set[WebSocket] = field(default_factory=set)

    def find(self, path: str) -> Endpoint | None:
        """The endpoint serving `path` (as it appears in the request line), if any."""
        endpoint = self.paths.get(path)
        if endpoint is None:
            for pattern, candidate in self.patterns:
                if pattern.fullmatch(path):
                    return candidate
        return endpoint

    async def close_remaining(self) -> None:
        """Drop the sockets still open (a drain closes the rest) and let their sessions end."""
        sockets = list(self.sockets)
        for socket in sockets:
            socket.transport.abort()
        if sockets:
            await asyncio.wait([socket.wait_closed() for socket in sockets],
                               timeout=CLEANUP_GRACE)


class FrontProtocol(asyncio.Protocol):
    """A connection until its first request head says whose it is."""

    __slots__ = ("_endpoints", "_http", "_transport", "_head", "_timer")

    def __init__(self, endpoints: WebSocketEndpoints, http: web.Server):
        self._endpoints, self._http = endpoints, http
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(
            self._endpoints.handshake_timeout, transport.abort)

    def data_received(self, data: bytes) -> None:
        head = self._head + data if self._head else data
        path = request_path(head)
        if path is None and len(head) <= MAX_HEAD_BYTES:  # the request line is not all here
            self._head = head
            return
        endpoint = self._endpoints.find(path or "")
        if endpoint is None:
            self._hand_over(head)
            return
        if HEAD_END not in head and len(head) <= MAX_HEAD_BYTES:
            self._head = head
            return
        upgrade = parse_upgrade(head)
        if upgrade is None:  # not a WebSocket handshake: aiohttp answers it as it would
            self._hand_over(head)
        else:
            self._upgrade(endpoint, upgrade)

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()

    def _hand_over(self, head: bytes) -> None:
        self._timer.cancel()
        handler = self._http()
        self._transport.set_protocol(handler)
        handler.connection_made(self._transport)
        handler.data_received(head)

    def _upgrade(self, endpoint: Endpoint, upgrade: UpgradeRequest) -> None:
        self._timer.cancel()
        transport = self._transport
        peername = transport.get_extra_info("peername")
        address = peername[0] if isinstance(peername, tuple) else ""
        try:
            peer = endpoint.admit(upgrade, address)
        except HandshakeRefused as refused:
            transport.write(http_response(refused.status, refused.body(), refused.headers()))
            transport.close()
            return
        subprotocol = negotiate_subprotocol(upgrade.offered(), endpoint.subprotocols) \
            if endpoint.subprotocols else None
        transport.write(switching_protocols(upgrade.key, subprotocol))
        sockets = self._endpoints.sockets
        socket = WebSocket(transport, endpoint.max_message_bytes, sockets.discard)
        sockets.add(socket)
        socket.start(endpoint.open(socket, peer, upgrade, subprotocol), upgrade.early)


WEBSOCKETS = web.AppKey("websockets", WebSocketEndpoints)


class TidingsSite(web.BaseSite):
    """aiohttp's TCP site with the front in place of aiohttp's own protocol factory.

    The endpoints are the application's `WEBSOCKETS`; with none, the front hands every
    connection to aiohttp.
    """

    def __init__(self, runner: web.AppRunner, host: str, port: int, *,
                 reuse_port: bool = False, backlog: int = 128):
        super().__init__(runner, backlog=backlog)
        self._endpoints = runner.app[WEBSOCKETS]
        self._host, self._port, self._reuse_port = host, port, reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        http = self._runner.server
        self._server = await asyncio.get_running_loop().create_server(
            lambda: FrontProtocol(self._endpoints, http), self._host, self._port,
            backlog=self._backlog, reuse_address=True, reuse_port=self._reuse_port)


def on_reused_connection(endpoint: Endpoint) -> Callable[[web.Request],
                                                         Awaitable[web.StreamResponse]]:
    """aiohttp's handler for an endpoint's path: an upgrade on a connection aiohttp serves.

    Anything that is no WebSocket handshake gets 426 with what is missing.
    """
    async def handle(request: web.Request) -> web.StreamResponse:
        ws = StrictWebSocketResponse(compress=False, autoping=False,
                                     protocols=endpoint.subprotocols,
                                     max_msg_size=endpoint.max_message_bytes + 1)
        if not ws.can_prepare(request).ok:
            return upgrade_required()
        upgrade = UpgradeRequest(request.path, request.rel_url.raw_query_string,
                                 request.headers, request.headers.get("Sec-WebSocket-Key", ""),
                                 b"")
        try:
            peer = endpoint.admit(upgrade, request.remote or "")
        except HandshakeRefused as refused:
            raise refused.http_exception() from None
        try:
            await ws.prepare(request)
        except BaseException:
            peer.leave()
            raise
        # aiohttp chose the subprotocol as negotiate_subprotocol does (the client's first)
        receiver = endpoint.open(WebSocketConnection(ws, request.transport), peer, upgrade,
                                 ws.ws_protocol)
        try:
            async for msg in ws:
                receiver.seen()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    try:
                        await receiver.receive(msg.data)
                    except Exception:
                        log.exception("a message could not be handled")
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            await receiver.closed()
        return ws

    return handle


def upgrade_required() -> web.Response:
    """426 with what is missing: a request to a WebSocket path that is no handshake."""
    body = orjson.dumps({"error": {"code": int(ErrorCode.BAD_REQUEST), "message":
                        "a WebSocket handshake is required (GET, HTTP/1.1, Upgrade: websocket, "
                        "Sec-WebSocket-Version: 13, Sec-WebSocket-Key)"}}).decode()
    return web.Response(status=426, text=body, content_type="application/json",
                        headers={"Upgrade": "websocket", "Sec-WebSocket-Version": "13"})
