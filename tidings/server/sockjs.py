"""SockJS at `/sockjs` carrying STOMP: websocket, xhr-streaming and xhr-polling transports.

For networks and clients that cannot keep a WebSocket open (`new SockJS(url)` wrapped by
`Stomp.over(socket)`). A SockJS session is one STOMP connection:

- websocket (`/sockjs/<server>/<session>/websocket`): the session lives and dies with the
  socket; frames are `a[...]` text messages written straight to it. It is served on
  Tidings' own WebSocket layer (tidings.server.front matches the path's pattern), as is the
  raw `/sockjs/websocket` (plain STOMP, exactly `/stomp`).
- xhr-streaming (`POST .../xhr_streaming`): one long response carries the frames, written
  straight to the socket as HTTP chunks; after `sockjs_streaming_limit` bytes the response
  ends and the client opens the next one, so proxies that buffer see it complete.
- xhr-polling (`POST .../xhr`): each request takes what is waiting, or waits for it up to
  `sockjs_heartbeat` seconds (then gets `h`).
- Client messages come by `POST .../xhr_send` (HTTP transports) or over the socket.

Over HTTP the frames wait in the session while no request is open, counted against the
same `max_outgoing_bytes` as every other connection (4004 past it); a session without a
receiving request for `sockjs_disconnect_delay` seconds is closed. Frames are encoded once
for each transport kind: every streaming session gets the same chunk bytes, every polling
session the same JSON strings (each after a comma), joined into one array per response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time

import orjson
from aiohttp import web

from tidings.errors import CloseCode
from tidings.peer import Peer
from tidings.protocol import sockjs, wsframe
from tidings.protocol.sockjs import SockJSError
from tidings.protocol.upgrade import UpgradeRequest
from tidings.server import websocket as handshake
from tidings.server.front import WEBSOCKETS, on_reused_connection
from tidings.server.keys import NODE, ORIGINS
from tidings.server.origin import OriginPolicy
from tidings.server.stomp import StompEndpoint, gateway
from tidings.server.stomp_connection import StompConnection, StompGateway
from tidings.session import Connection

log = logging.getLogger("tidings.sockjs")

PREFIX = "/sockjs"
# what aiohttp's `/sockjs/{server}/{session}/websocket` with valid ids matches (a session
# id has no `/` or `.`, see tidings.protocol.sockjs)
WEBSOCKET_PATH = re.compile(re.escape(PREFIX) + r"/[^/.{}]+/[^/.{}]+/websocket")
SWEEP_INTERVAL = 1.0
ANOTHER_CONNECTION = sockjs.close_frame(2010, "Another connection still open")
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
JAVASCRIPT = "application/javascript"
YEAR = 31536000


def chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk, as written straight to a streaming response's socket."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


class WebSocketFraming:
    def wrap(self, frame: bytes) -> bytes:
        return wsframe.text(sockjs.messages_frame([sockjs.message(frame.decode())]))


class StreamingFraming:
    def wrap(self, frame: bytes) -> bytes:
        return chunk(sockjs.messages_frame([sockjs.message(frame.decode())]) + b"\n")


class PollingFraming:
    """`,"<message>"`: frames a session writes together still join into one poll's array."""

    def wrap(self, frame: bytes) -> bytes:
        return b"," + sockjs.message(frame.decode())


WEBSOCKET, STREAMING, POLLING = WebSocketFraming(), StreamingFraming(), PollingFraming()


class SockJSSocket:
    """A SockJS websocket: a `c[code,"reason"]` frame goes ahead of the closing handshake."""

    __slots__ = ("socket", "_closing")

    def __init__(self, socket: Connection):
        self.socket = socket
        self._closing = False

    def write(self, frame: bytes) -> None:
        self.socket.write(frame)

    def writelines(self, frames: list[bytes]) -> None:
        self.socket.writelines(frames)

    def buffered(self) -> int:
        return self.socket.buffered()

    def close(self, code: int, reason: str) -> None:
        if not self._closing:
            self._closing = True
            self.socket.write(wsframe.text(sockjs.close_frame(code, reason)))
        self.socket.close(CloseCode.NORMAL, reason)


class SockJSMessages:
    """A SockJS websocket's messages (JSON arrays of STOMP data) to its STOMP connection."""

    __slots__ = ("stomp",)

    def __init__(self, stomp: StompConnection):
        self.stomp = stomp

    def seen(self) -> None:
        self.stomp.seen()

    async def receive(self, message: str | bytes) -> None:
        try:
            data = _unwrap(message.encode() if isinstance(message, str) else message)
        except ValueError as exc:  # SockJS' own framing was broken
            self.stomp.session.close(CloseCode.TOO_MANY_ERRORS, str(exc))
            return
        await self.stomp.receive(data)

    async def closed(self) -> None:
        await self.stomp.closed()


class SockJSWebSocketEndpoint(handshake.SessionEndpoint):
    """`/sockjs/<server>/<session>/websocket`: the `o` frame, then STOMP in SockJS frames."""

    protocol = "stomp"

    def __init__(self, gateway: StompGateway, origins: OriginPolicy):
        # a STOMP frame of max_frame_bytes fits, quoted in its JSON array
        super().__init__(gateway.node, origins, gateway.node.settings.max_frame_bytes * 2)
        self.gateway = gateway

    def open(self, socket: Connection, peer: Peer, request: UpgradeRequest,
             subprotocol: str | None) -> SockJSMessages:
        socket.write(wsframe.text(sockjs.OPEN))
        stomp = self.gateway.open(request.params(), SockJSSocket(socket), WEBSOCKET, peer)
        handshake.send_away_if_draining(stomp.session)
        return SockJSMessages(stomp)


class Receiver:
    """The request currently taking a session's frames (one at a time)."""

    def __init__(self, request: web.Request, streaming: bool):
        self.transport = request.transport
        self.streaming = streaming
        self.sent = 0
        self.last_write = time.monotonic()
        self.done = asyncio.Event()

    @property
    def gone(self) -> bool:
        """The client closed the request (its socket is closing or already dropped)."""
        return self.transport is None or self.transport.is_closing()


class HttpSession:
    """A SockJS session over HTTP: the Connection its STOMP session writes to."""

    def __init__(self, registry: "SockJSSessions", id: str, streaming: bool):
        self.registry = registry
        self.id = id
        self.streaming = streaming
        self.stomp: StompConnection | None = None
        self.receiver: Receiver | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.detached_at = time.monotonic()
        self.close_frame: bytes | None = None

    # the Connection a Session writes to

    def write(self, frame: bytes) -> None:
        self.writelines([frame])

    def writelines(self, frames: list[bytes]) -> None:
        receiver = self.receiver
        if receiver is not None and receiver.streaming and not receiver.gone:
            receiver.transport.writelines(frames)
            receiver.sent += sum(len(f) for f in frames)
            receiver.last_write = time.monotonic()
            if receiver.sent >= self.registry.streaming_limit:
                self.detach()
            return
        size = sum(len(f) for f in frames)
        if not size:
            return
        self.pending.extend(frames)
        self.pending_bytes += size
        if receiver is not None:
            receiver.done.set()  # a waiting poll answers now

    def buffered(self) -> int:
        receiver = self.receiver
        waiting = receiver.transport.get_write_buffer_size() if receiver and not receiver.gone else 0
        return self.pending_bytes + waiting

    def close(self, code: int, reason: str) -> None:
        if self.close_frame is not None:
            return
        self.close_frame = sockjs.close_frame(code, reason)
        if self.receiver is not None:
            self.receiver.done.set()
        if self.stomp is not None:
            self.registry.spawn(self.stomp.closed())

    # receiving requests

    def attach(self, receiver: Receiver) -> None:
        self.receiver = receiver
        if receiver.streaming and self.pending:
            frames, self.pending, self.pending_bytes = self.pending, [], 0
            self.writelines(frames)

    def detach(self) -> None:
        if self.receiver is not None:
            self.receiver.done.set()
            self.receiver = None
        self.detached_at = time.monotonic()

    def take(self) -> bytes:
        """What waits, as one `a[...]` frame (polling frames each start with a comma)."""
        frames, self.pending, self.pending_bytes = self.pending, [], 0
        return b"a[" + b"".join(frames)[1:] + b"]"


class SockJSSessions:
    """The node's SockJS sessions over HTTP, and the sweep that expires and heart-beats them."""

    def __init__(self, app: web.Application):
        self.app = app
        settings = app[NODE].settings.stomp
        self.heartbeat = settings.sockjs_heartbeat
        self.disconnect_delay = settings.sockjs_disconnect_delay
        self.streaming_limit = settings.sockjs_streaming_limit
        self.sessions: dict[str, HttpSession] = {}
        self._tasks: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    def open(self, request: web.Request, id: str, streaming: bool, peer: Peer) -> HttpSession:
        session = HttpSession(self, id, streaming)
        session.stomp = gateway(request).open(request.query, session,
                                              STREAMING if streaming else POLLING, peer)
        self.sessions[id] = session
        handshake.send_away_if_draining(session.stomp.session)
        return session

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, app: web.Application) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self, app: web.Application) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in list(self.sessions.values()):
            if session.stomp is not None and not session.stomp.session.closed:
                session.stomp.session.close(CloseCode.SHUTDOWN, "node shutting down")
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                self.sweep(time.monotonic())
            except Exception:
                log.exception("SockJS sweep failed")

    def sweep(self, now: float) -> None:
        for id, session in list(self.sessions.items()):
            receiver = session.receiver
            if receiver is not None and receiver.gone:
                session.detach()  # the client went away mid-request
                receiver = None
            if receiver is None:
                if now - session.detached_at > self.disconnect_delay:
                    del self.sessions[id]
                    if session.stomp is not None and not session.stomp.session.closed:
                        session.stomp.session.close(CloseCode.NO_PONG, "SockJS session expired")
            elif receiver.streaming and now - receiver.last_write >= self.heartbeat:
                session.writelines([chunk(sockjs.HEARTBEAT + b"\n")])


SESSIONS = web.AppKey("sockjs", SockJSSessions)


# ---- routes --------------------------------------------------------------------------


def _cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """SockJS clients call from pages of any origin; the Origin allow-list narrows this."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    else:
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _frame(request: web.Request, body: bytes) -> web.Response:
    response = web.Response(body=body + b"\n", content_type=JAVASCRIPT, charset="UTF-8",
                            headers={"Cache-Control": NO_CACHE})
    return _cors(request, response)


async def options(request: web.Request) -> web.Response:
    headers = {"Access-Control-Allow-Methods": "OPTIONS, POST" if request.path.count("/") > 2
               else "OPTIONS, GET",
               "Access-Control-Max-Age": str(YEAR), "Cache-Control": f"public, max-age={YEAR}"}
    if "Access-Control-Request-Headers" in request.headers:
        headers["Access-Control-Allow-Headers"] = request.headers["Access-Control-Request-Headers"]
    return _cors(request, web.Response(status=204, headers=headers))


async def greeting(request: web.Request) -> web.Response:
    return web.Response(text="Welcome to SockJS!\n", content_type="text/plain")


async def info(request: web.Request) -> web.Response:
    body = {"websocket": True, "origins": ["*:*"], "cookie_needed": False,
            "entropy": secrets.randbits(32)}
    response = web.Response(body=orjson.dumps(body), content_type="application/json",
                            charset="UTF-8", headers={"Cache-Control": NO_CACHE})
    return _cors(request, response)


def _session_id(request: web.Request) -> str:
    server, id = request.match_info["server"], request.match_info["session"]
    if not (sockjs.valid_session_id(server) and sockjs.valid_session_id(id)):
        raise web.HTTPNotFound()
    return id


def _peer(request: web.Request, transport: str) -> Peer:
    """The checks a new SockJS session passes first (Origin, connection caps): HTTP refusals."""
    return handshake.peer_of(request, request.app[NODE], "stomp", transport=transport)


def _unwrap(payload: bytes) -> bytes:
    return "".join(sockjs.parse_messages(payload)).encode() if payload else b""


async def xhr_polling(request: web.Request) -> web.Response:
    id = _session_id(request)
    registry = request.app[SESSIONS]
    session = registry.sessions.get(id)
    if session is None:
        registry.open(request, id, streaming=False, peer=_peer(request, "xhr-polling"))
        return _frame(request, sockjs.OPEN)
    if session.receiver is not None:
        return _frame(request, ANOTHER_CONNECTION)
    if not session.pending and session.close_frame is None:
        receiver = Receiver(request, streaming=False)
        session.attach(receiver)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(receiver.done.wait(), registry.heartbeat)
        if session.receiver is receiver:
            session.detach()
    if session.pending:
        return _frame(request, session.take())
    if session.close_frame is not None:
        return _frame(request, session.close_frame)
    return _frame(request, sockjs.HEARTBEAT)


async def xhr_streaming(request: web.Request) -> web.StreamResponse:
    id = _session_id(request)
    registry = request.app[SESSIONS]
    session = registry.sessions.get(id)
    peer = _peer(request, "xhr-streaming") if session is None else None  # refused before 200
    response = web.StreamResponse(headers={"Cache-Control": NO_CACHE,
                                           "Content-Type": f"{JAVASCRIPT}; charset=UTF-8"})
    _cors(request, response)
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(sockjs.STREAMING_PRELUDE)
    if session is None:
        session = registry.open(request, id, streaming=True, peer=peer)
        await response.write(sockjs.OPEN + b"\n")
    if session.receiver is not None:
        await response.write(ANOTHER_CONNECTION + b"\n")
    elif session.close_frame is None:
        receiver = Receiver(request, streaming=True)
        session.attach(receiver)  # from here on frames go straight to the socket
        await receiver.done.wait()
        if session.receiver is receiver:
            session.detach()
    with contextlib.suppress(ConnectionError):
        if session.close_frame is not None and request.transport is not None:
            await response.write(session.close_frame + b"\n")
        await response.write_eof()
    return response


async def xhr_send(request: web.Request) -> web.Response:
    id = _session_id(request)
    session = request.app[SESSIONS].sessions.get(id)
    if session is None or session.stomp is None or session.close_frame is not None:
        raise web.HTTPNotFound()
    try:
        messages = sockjs.parse_messages(await request.read())
    except SockJSError as exc:
        return _cors(request, web.Response(status=500, text=str(exc)))
    await session.stomp.receive("".join(messages).encode())
    return _cors(request, web.Response(status=204, content_type="text/plain", charset="UTF-8"))


def setup(app: web.Application, stomp: StompEndpoint) -> None:
    """SockJS' routes, and its websocket paths among the front's endpoints (the raw one is
    `stomp`, the `/stomp` endpoint)."""
    endpoints = app[WEBSOCKETS]
    endpoints.paths[PREFIX + "/websocket"] = stomp
    endpoint = SockJSWebSocketEndpoint(stomp.gateway, app[ORIGINS])
    endpoints.patterns.append((WEBSOCKET_PATH, endpoint))
    on_reused = on_reused_connection(endpoint)

    async def websocket(request: web.Request) -> web.StreamResponse:
        """A session's websocket path reached aiohttp: 404 for bad ids, else served there."""
        _session_id(request)
        return await on_reused(request)

    registry = app[SESSIONS] = SockJSSessions(app)
    app.on_startup.append(registry.start)
    app.on_cleanup.append(registry.stop)
    session = PREFIX + "/{server}/{session}"
    app.add_routes([
        web.get(PREFIX, greeting), web.get(PREFIX + "/", greeting),
        web.get(PREFIX + "/info", info), web.options(PREFIX + "/info", options),
        web.get(PREFIX + "/websocket", on_reused_connection(stomp)),
        web.get(session + "/websocket", websocket),
        web.post(session + "/xhr", xhr_polling), web.options(session + "/xhr", options),
        web.post(session + "/xhr_streaming", xhr_streaming),
        web.options(session + "/xhr_streaming", options),
        web.post(session + "/xhr_send", xhr_send), web.options(session + "/xhr_send", options),
    ])
