"""A realtime client for services and bots: the native protocol over WebSocket, with the
reconnect and recovery rules of docs/protocol.md ("What a client library should do").

- The client is a small state machine: disconnected -> connecting -> connected, and closed
  for good on a close code that says not to reconnect (see tidings.client.reconnect).
- Each subscription keeps the offset and epoch of the last publication it handed out. On
  reconnect (to any node) the automatic channels are recovered through `connect.recover`
  and every other one by `subscribe` with its position, so the application sees every
  publication once, in order. A position that cannot be recovered becomes a `Reset` event.
- Replies that carry publications (`connect`, `subscribe`) are applied by the reader as the
  frame arrives, before any later frame, so live publications never overtake recovered ones.

It must never import the server side: aiohttp's client and orjson only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Union

import aiohttp
import orjson

from tidings.client.errors import ClientClosed, CommandError, ConnectionLost, Unreachable
from tidings.client.reconnect import LOST, SERVER_ERROR, Backoff, should_reconnect
from tidings.client.types import (
    HistoryPage, Join, Leave, Member, Presence, Published, Publication, Reset,
)

log = logging.getLogger("tidings.client")

CANNOT_RECOVER, UNAVAILABLE, UNAUTHORIZED = 110, 111, 105
UNAUTHORIZED_CLOSE = 4501
NORMAL = 1000
DEFAULT_PING, DEFAULT_PONG = 25.0, 10.0

Event = Union[Publication, Join, Leave, Reset]
ReplyHook = Callable[[dict], None]


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class Subscription:
    """One channel's stream of events: `async for event in sub` yields Publication, Join,
    Leave and Reset, and ends when the application unsubscribes or closes the client (or
    raises ClientClosed when the node ended the client for good)."""

    def __init__(self, channel: str, *, automatic: bool = False):
        self.channel = channel
        self.automatic = automatic
        self.offset = 0
        self.epoch = ""
        self.positioned = False  # offset/epoch are a real position (stored channel, reply seen)
        self.live = False  # the subscribe reply of this connection has been applied
        self.established: int | None = None  # the connection generation it is subscribed in
        self._early: list[Publication] = []  # pubs that arrived before the subscribe reply
        self._events: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self._attempt: asyncio.Task | None = None
        self._attempt_generation = -1
        self.ended = False

    @property
    def position(self) -> tuple[int, str] | None:
        return (self.offset, self.epoch) if self.positioned else None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        item = await self._events.get()
        if item is None:
            self._events.put_nowait(None)  # every later call ends too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._events.put_nowait(item)
            raise item
        return item

    async def get(self, timeout: float | None = None) -> Event:
        """The next event (asyncio.TimeoutError after `timeout` seconds)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    # ---- applied by the client's reader, in frame order ------------------------------

    def _apply_reply(self, result: dict) -> None:
        """A subscribe (or connect `subs`) entry: recovered publications, then the position."""
        if result.get("recovered") is False:
            error = result.get("error") or {}
            self._reset(error.get("message", "cannot recover"), result)
        for raw in result.get("publications", ()):
            self._take(Publication.from_wire(raw))
        if "offset" in result:
            self.offset, self.epoch, self.positioned = result["offset"], result["epoch"], True
        self.live = True
        early, self._early = self._early, []
        for pub in early:
            self._take(pub)

    def _reset(self, reason: str, result: dict) -> None:
        """The old position is gone; the stream goes on from the reply's position."""
        self.positioned = False
        self._events.put_nowait(Reset(self.channel, reason, result.get("offset", 0),
                                      result.get("epoch", "")))

    def _on_pub(self, pub: Publication) -> None:
        if self.live:
            self._take(pub)
        else:
            self._early.append(pub)

    def _take(self, pub: Publication) -> None:
        """Hand a publication out unless it is at or before the position (a duplicate)."""
        if pub.offset:
            if self.positioned and pub.epoch == self.epoch and pub.offset <= self.offset:
                return
            self.offset, self.epoch, self.positioned = pub.offset, pub.epoch, True
        self._events.put_nowait(pub)

    def _event(self, event: Join | Leave) -> None:
        self._events.put_nowait(event)

    def _lost(self) -> None:
        self.live = False
        self._early.clear()

    def _end(self, error: BaseException | None = None) -> None:
        if not self.ended:
            self.ended = True
            self._events.put_nowait(error)


class RealtimeClient:
    """A native-protocol connection that reconnects and recovers by itself.

    ```python
    async with RealtimeClient("ws://127.0.0.1:8000/ws", user="bot") as client:
        room = await client.subscribe("room:lobby")
        async for event in room:
            ...
    ```

    Give `user` (a node without auth), `token`, or `get_token` (called before every
    connect, so an expired session, 4009, comes back with a fresh token).
    """

    def __init__(self, url: str, *, user: str | None = None, token: str | None = None,
                 get_token: Callable[[], Awaitable[str]] | None = None,
                 backoff: Backoff = Backoff(), command_timeout: float = 10.0,
                 on_state: Callable[[State], None] | None = None):
        self.url = url
        self._user_param, self._token, self._get_token = user, token, get_token
        self.backoff = backoff
        self.command_timeout = command_timeout
        self._on_state = on_state
        self.state = State.DISCONNECTED
        self.user = ""  # known after the first connect
        self.client_id = ""
        self.node = ""
        self.connects = 0  # successful connects, the first included
        self.last_close: tuple[int, str] | None = None
        self._subs: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._replies: dict[int, tuple[asyncio.Future, ReplyHook | None]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._generation = 0
        self._connected = asyncio.Event()
        self._state_changed = asyncio.Event()
        self._closing = False
        self._closed_error: ClientClosed | None = None
        self._runner: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # resubscriptions under way, kept from the GC
        self._wakeup = asyncio.Event()
        self._ping, self._pong = DEFAULT_PING, DEFAULT_PONG

    # ---- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> "RealtimeClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 30.0) -> None:
        """Start, and wait until connected; Unreachable if that takes over `timeout` s."""
        if self._runner is None:
            self._http = aiohttp.ClientSession()
            self._runner = asyncio.create_task(self._run(), name="tidings-realtime")
        try:
            await self.wait_for(State.CONNECTED, timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise Unreachable(f"could not connect to {self.url} within {timeout} s") from None
        except ClientClosed:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection and stop reconnecting; every subscription's stream ends."""
        self._closing = True
        self._wakeup.set()
        if self._ws is not None:
            await self._ws.close(code=NORMAL)
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._http is not None:
            await self._http.close()
        self._set_state(State.CLOSED)
        for sub in self._subs.values():
            sub._end(self._closed_error)

    async def wait_for(self, state: State, timeout: float | None = None) -> None:
        """Until the client is in `state`; ClientClosed if it closes for good first."""
        async def reached() -> None:
            while self.state != state:
                if self.state == State.CLOSED:
                    raise self._closed_error or ClientClosed(NORMAL, "closed by the application")
                self._state_changed.clear()
                await self._state_changed.wait()
        await asyncio.wait_for(reached(), timeout)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self._state_changed.set()
            if self._on_state is not None:
                self._on_state(state)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            self._set_state(State.CONNECTING)
            code, reason = await self._connection()
            self.last_close = (code, reason)
            self._connected.clear()
            self._ws = None
            for sub in self._subs.values():
                sub._lost()
            for future, _ in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionLost(f"connection closed ({code} {reason})"))
            self._replies.clear()
            if self._closing:
                break
            if not should_reconnect(code):
                log.warning("closed with %d (%s): not reconnecting", code, reason)
                self._closed_error = ClientClosed(code, reason)
                self._closing = True
                break
            if self.state == State.CONNECTED:
                attempt = 0
            self._set_state(State.DISCONNECTED)
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.info("closed with %d (%s): reconnecting in %.2f s", code, reason, delay)
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
        self._set_state(State.CLOSED)
        for sub in self._subs.values():
            sub._end(self._closed_error)
        if self._http is not None:
            await self._http.close()

    async def _connection(self) -> tuple[int, str]:
        """One connection from opening to close: its close code and reason."""
        assert self._http is not None
        try:
            token = await self._get_token() if self._get_token is not None else self._token
            # a node that accepts the socket but never answers the handshake counts as lost
            ws = await asyncio.wait_for(
                self._http.ws_connect(self.url, autoping=True, max_msg_size=0,
                                      timeout=aiohttp.ClientWSTimeout(ws_close=2.0)),
                self.command_timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return LOST, f"cannot reach {self.url}: {exc or type(exc).__name__}"
        if self._closing:
            await ws.close()
            return NORMAL, "closed by the application"
        self._ws = ws
        self._generation += 1
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._call("connect", self._connect_params(token), hook=self._on_connect,
                             ws=ws)
        except CommandError as exc:
            if exc.code == UNAUTHORIZED:
                await ws.close(code=UNAUTHORIZED_CLOSE)
                await reader
                return UNAUTHORIZED_CLOSE, exc.message
            code = SERVER_ERROR if exc.code == UNAVAILABLE else NORMAL
            await ws.close(code=code)
            await reader
            return code, f"connect refused: {exc}"
        except (ConnectionLost, asyncio.TimeoutError):
            await ws.close()
            return await reader
        else:
            self._resubscribe()
        return await reader

    def _connect_params(self, token: str | None) -> dict:
        params: dict[str, Any] = {}
        if token is not None:
            params["token"] = token
        elif self._user_param is not None:
            params["user"] = self._user_param
        recover = {sub.channel: {"offset": sub.offset, "epoch": sub.epoch}
                   for sub in self._subs.values() if sub.automatic and sub.positioned}
        if recover:
            params["recover"] = recover
        return params

    def _on_connect(self, result: dict) -> None:
        """Applied by the reader before the next frame: the automatic channels, then state."""
        self.user, self.client_id, self.node = result["user"], result["client"], result["node"]
        self._ping, self._pong = result.get("ping", DEFAULT_PING), result.get("pong", DEFAULT_PONG)
        for channel, entry in result.get("subs", {}).items():
            sub = self._subs.get(channel)
            if sub is None or sub.ended:
                sub = self._subs[channel] = Subscription(channel, automatic=True)
            sub._apply_reply(entry)
            sub.established = self._generation
        self.connects += 1
        self._set_state(State.CONNECTED)
        self._connected.set()

    def _resubscribe(self) -> None:
        for sub in list(self._subs.values()):
            if not sub.automatic and not sub.ended:
                task = asyncio.create_task(self._keep_subscribed(sub))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _keep_subscribed(self, sub: Subscription) -> None:
        """After a reconnect: subscribe again; a refusal ends the subscription's stream."""
        try:
            await self._establish(sub)
        except (CommandError, ClientClosed) as exc:
            self._subs.pop(sub.channel, None)
            sub._end(exc)
        except asyncio.TimeoutError:  # a node too sick to answer: another connection will do
            if self._ws is not None:
                await self._ws.close()

    # ---- reading ---------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
        """Frames until the close; a silent node (no frame after a text ping) counts as lost."""
        pinged = False
        while True:
            try:
                msg = await ws.receive(timeout=self._pong if pinged else self._ping)
            except asyncio.TimeoutError:
                if pinged:
                    await ws.close()
                    return LOST, "no answer from the node"
                pinged = True
                await ws.send_str("ping")
                continue
            pinged = False
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self._on_frame(ws, msg.data)
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                return int(msg.data), msg.extra or ""
            elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.ERROR):
                code = ws.close_code
                return (code, "") if code and code != NORMAL else (LOST, "connection lost")

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        if text == "pong":
            return
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.warning("ignoring a frame that is not JSON")
            return
        id = frame.get("id")
        if id is not None:
            self._on_reply(id, frame)
        elif "pub" in frame:
            pub = Publication.from_wire(frame["pub"])
            sub = self._subs.get(pub.channel)
            if sub is not None and not sub.ended:
                sub._on_pub(pub)
        elif "join" in frame or "leave" in frame:
            kind = Join if "join" in frame else Leave
            body = frame["join" if kind is Join else "leave"]
            sub = self._subs.get(body["channel"])
            if sub is not None and not sub.ended:
                sub._event(kind(body["channel"], Member.from_wire(body["info"])))
        elif "ping" in frame:
            await ws.send_str('{"pong":{}}')
        elif "disconnect" in frame:
            log.info("node says: %s", frame["disconnect"].get("reason", ""))

    def _on_reply(self, id: int, frame: dict) -> None:
        waiting = self._replies.pop(id, None)
        if waiting is None:
            return
        future, hook = waiting
        if "error" in frame:
            error = frame["error"]
            if not future.done():
                future.set_exception(CommandError(error.get("code", 0), error.get("message", "")))
            return
        result = next((value for key, value in frame.items() if key != "id"), {})
        if hook is not None:
            hook(result)
        if not future.done():
            future.set_result(result)

    # ---- commands --------------------------------------------------------------------

    async def _call(self, method: str, params: dict, *, hook: ReplyHook | None = None,
                    ws: aiohttp.ClientWebSocketResponse | None = None) -> dict:
        """Send a command and wait for its result (CommandError, ConnectionLost, TimeoutError)."""
        if ws is None:
            ws = await self._connection_ready()
        id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._replies[id] = (future, hook)
        try:
            await ws.send_str(orjson.dumps({"id": id, method: params}).decode())
        except (ConnectionError, RuntimeError) as exc:
            self._replies.pop(id, None)
            raise ConnectionLost(str(exc)) from None
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.command_timeout)
        finally:
            self._replies.pop(id, None)

    async def _connection_ready(self) -> aiohttp.ClientWebSocketResponse:
        if self._closed_error is not None or self._closing:
            raise self._closed_error or ClientClosed(NORMAL, "closed by the application")
        if self._runner is None:
            raise ClientClosed(NORMAL, "not connected: call connect() first")
        await asyncio.wait_for(self._connected.wait(), self.command_timeout)
        assert self._ws is not None
        return self._ws

    async def command(self, method: str, params: dict) -> dict:
        """Any native command by name, for what the methods below do not cover."""
        return await self._call(method, params)

    def subscription(self, channel: str) -> Subscription | None:
        """A channel's subscription, the automatic `user:<me>` and `broadcast` included."""
        return self._subs.get(channel)

    async def subscribe(self, channel: str, *, offset: int | None = None,
                        epoch: str | None = None) -> Subscription:
        """Subscribe (recovering from `offset`/`epoch` if given); kept across reconnects."""
        if channel in self._subs and not self._subs[channel].ended:
            raise CommandError(109, f"already subscribed to {channel}")
        sub = Subscription(channel)
        if offset is not None and epoch is not None:
            sub.offset, sub.epoch, sub.positioned = offset, epoch, True
        self._subs[channel] = sub
        try:
            await self._establish(sub)
        except BaseException:
            self._subs.pop(channel, None)
            sub.ended = True
            raise
        return sub

    async def _establish(self, sub: Subscription) -> None:
        """Subscribed on the current connection; survives a connection lost meanwhile."""
        while True:
            await self._connection_ready()
            generation = self._generation
            if sub.established == generation:
                return
            if sub._attempt is None or sub._attempt_generation != generation:
                sub._attempt = asyncio.create_task(self._send_subscribe(sub, generation))
                sub._attempt_generation = generation
            try:
                await asyncio.shield(sub._attempt)
                return
            except ConnectionLost:
                continue

    async def _send_subscribe(self, sub: Subscription, generation: int) -> None:
        params: dict[str, Any] = {"channel": sub.channel}
        if sub.positioned:
            params.update(offset=sub.offset, epoch=sub.epoch)
        try:
            await self._call("subscribe", params, hook=sub._apply_reply)
        except CommandError as exc:
            if exc.code != CANNOT_RECOVER:
                raise
            why = exc.message

            def reset_then_apply(result: dict) -> None:
                sub._reset(why, result)
                sub._apply_reply(result)

            await self._call("subscribe", {"channel": sub.channel}, hook=reset_then_apply)
        sub.established = generation

    async def unsubscribe(self, channel: str) -> None:
        sub = self._subs.pop(channel, None)
        if sub is None:
            raise CommandError(108, f"not subscribed to {channel}")
        sub._end()
        with contextlib.suppress(ConnectionLost):
            await self._call("unsubscribe", {"channel": channel})

    async def publish(self, channel: str, data: Any) -> Published:
        """Publish; ConnectionLost means the outcome is unknown (it may have been stored)."""
        result = await self._call("publish", {"channel": channel, "data": data})
        return Published(channel, result.get("offset"), result.get("epoch"))

    async def send(self, user: str, data: Any) -> Published:
        result = await self._call("send", {"user": user, "data": data})
        return Published(f"user:{user}", result.get("offset"), result.get("epoch"))

    async def history(self, channel: str, *, limit: int = 100, since: int | None = None,
                      reverse: bool = False) -> HistoryPage:
        params: dict[str, Any] = {"channel": channel, "limit": limit, "reverse": reverse}
        if since is not None:
            params["since"] = since
        return HistoryPage.from_wire(await self._call("history", params))

    async def presence(self, channel: str) -> Presence:
        return Presence.from_wire(await self._call("presence", {"channel": channel}))
