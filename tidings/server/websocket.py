"""Admitting a WebSocket (or a SockJS session), and aiohttp's strict WebSocket.

Every WebSocket endpoint (`/ws`, `/stomp`, `/connection/websocket`, SockJS' websocket
transport) is served by Tidings' own layer (tidings.server.front, tidings.server.wsserver),
which keeps RFC 6455's rules for client frames; before the 101 its endpoint calls `admit`,
which in this order:

1. refuses a page whose `Origin` is not allowed (403, tidings.server.origin);
2. takes a place under the connection caps (503 when the node is full, 429 when the address
   is, tidings.limits); the session gives it back when it ends.

SockJS' HTTP transports ask the same for a new session (`peer_of`, on aiohttp's request).
Refusals are answered `{"error": {"code": C, "message": "..."}}` and counted in
`tidings_refused_total` by reason. The request line and headers must arrive within
`security.handshake_timeout` (the front's timer, and aiohttp's keep-alive timer for the
rest, set in tidings.server.app).

An upgrade on a connection aiohttp already serves (a proxy reusing its upstream
connections, see tidings.server.front's `on_reused_connection`) is served by aiohttp's
WebSocket instead: `StrictWebSocketResponse`, with every byte from the client checked by
`ClientFrameCheck` before aiohttp's reader sees it, so an unmasked frame or a close frame
with a forbidden code fails that connection with 1002 as well.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import WebSocketError, WSCloseCode, web

from tidings.errors import CloseCode, ErrorCode
from tidings.limits import Refusal
from tidings.node import Node
from tidings.peer import Peer
from tidings.protocol.upgrade import UpgradeRequest
from tidings.protocol.wscheck import ClientFrameCheck
from tidings.server.keys import ORIGINS
from tidings.server.origin import OriginPolicy
from tidings.session import Session


class _CheckedReader:
    """Stands in front of aiohttp's frame reader: bytes reach it only once checked."""

    __slots__ = ("_reader", "_queue", "_check")

    def __init__(self, reader, queue):
        self._reader, self._queue = reader, queue
        self._check = ClientFrameCheck()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        allowed = self._check.feed(data)
        if allowed is None:
            return self._reader.feed_data(data)
        if allowed:
            self._reader.feed_data(data[:allowed])  # the frames before the forbidden one
        # What aiohttp does with its own protocol errors: receive() answers with a close
        # frame carrying 1002 and drops the connection.
        self._queue.set_exception(WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                                 self._check.violation))
        return True, b""

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class StrictWebSocketResponse(web.WebSocketResponse):
    """aiohttp's server WebSocket with RFC 6455's masking and close-code rules enforced.

    aiohttp offers no hook for this, so the checked reader is put in the place where aiohttp
    keeps the upgraded connection's parser (`RequestHandler._payload_parser`); bytes that
    arrived with the handshake (`_message_tail`) go through it too. tests/server/
    test_websocket.py fails if a new aiohttp moves either.
    """

    def _post_start(self, request, protocol, writer) -> None:
        handler = request.protocol
        early, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        checked = _CheckedReader(handler._payload_parser, self._reader)
        handler._payload_parser = checked
        if early:
            checked.feed_data(early)


class HandshakeRefused(Exception):
    """A connection turned away before its upgrade, with the HTTP answer it gets."""

    def __init__(self, status: int, code: ErrorCode, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> bytes:
        return orjson.dumps({"error": {"code": int(self.code), "message": self.message}})

    def headers(self) -> dict[str, str]:
        return {} if self.status == 403 else {"Retry-After": "1"}

    def http_exception(self) -> web.HTTPException:
        cls = {403: web.HTTPForbidden, 429: web.HTTPTooManyRequests,
               503: web.HTTPServiceUnavailable}[self.status]
        return cls(text=self.body().decode(), content_type="application/json",
                   headers=self.headers() or None)


def admit(node: Node, origins: OriginPolicy, headers: Mapping[str, str], address: str,
          protocol: str, transport: str = "websocket") -> Peer:
    """Check the Origin and take a place under the caps (raising HandshakeRefused).

    What every endpoint that opens a session asks first, whichever server read the
    handshake; a SockJS endpoint asks it for a new session on any of its transports
    (`transport` names which, for the proxy hooks).
    """
    refusal = origins.refusal(headers.get("Origin"), headers.get("Host"))
    if refusal is not None:
        node.metrics.count(node.metrics.refused, "origin")
        raise HandshakeRefused(403, ErrorCode.PERMISSION_DENIED, refusal)
    try:
        admission = node.caps.admit(address)
    except Refusal as refusal:
        node.metrics.count(node.metrics.refused, refusal.reason)
        raise HandshakeRefused(refusal.status, ErrorCode.LIMIT_EXCEEDED,
                               refusal.message) from None
    proxy = node.settings.security.proxy
    kept = {}
    if proxy.connect_url or proxy.subscribe_url or proxy.publish_url:  # kept only for them
        kept = {name: headers[name] for name in proxy.headers if name in headers}
    return Peer(address, kept, transport=transport, protocol=protocol, admission=admission)


class SessionEndpoint:
    """What the WebSocket endpoints of Tidings' protocols share (see tidings.server.front's
    `Endpoint`): admission by `admit` under the name of `protocol`, and messages of up to
    `max_frame_bytes` (exactly that many allowed, one byte more not) unless told otherwise.
    A subclass names its `protocol` and `subprotocols` and implements `open`."""

    protocol: str  # told to the proxy hooks
    subprotocols: tuple[str, ...] = ()

    def __init__(self, node: Node, origins: OriginPolicy, max_message_bytes: int | None = None):
        self.node, self.origins = node, origins
        self.max_message_bytes = max_message_bytes or node.settings.max_frame_bytes

    def admit(self, request: UpgradeRequest, address: str) -> Peer:
        return admit(self.node, self.origins, request.headers, address, self.protocol)


def peer_of(request: web.Request, node: Node, protocol: str,
            transport: str = "websocket") -> Peer:
    """`admit` for a request aiohttp read (raising the HTTP refusal)."""
    try:
        return admit(node, request.app[ORIGINS], request.headers, request.remote or "",
                     protocol, transport)
    except HandshakeRefused as refused:
        raise refused.http_exception() from None


def send_away_if_draining(session: Session) -> None:
    """A session opened while its node drains is closed at once, telling the client to go
    to another node (the endpoints' `open` calls this right after making the session)."""
    if session.node.draining:
        session.close(CloseCode.SHUTDOWN, "node shutting down: reconnect to another node")

