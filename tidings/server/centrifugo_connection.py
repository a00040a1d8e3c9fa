"""One Centrifugo-protocol client: its commands become session calls, results become replies.

Everything Centrifugo means lives here: the connect reply with its server-side
subscriptions (`user:<id>` and `broadcast`), recovery flags (`recovered`, `was_recovering`),
history positions, presence stats, token refresh, and the error and close codes of
tidings.protocol.centrifugo_codes. The session underneath is the same as for /ws and
/stomp, so rooms, users, presence and stored history are shared with every other protocol.
What Tidings cannot honour is answered with Centrifugo's "not available" (108). It never
decides who may do what: every permission is the session's (tidings.access), as on /ws.
"""

from __future__ import annotations

import logging
import time

import orjson

from tidings import __version__
from tidings.auth import AuthError
from tidings.channels import ChannelError
from tidings.config import Namespace
from tidings.errors import CloseCode, ErrorCode, TidingsError
from tidings.model import ClientInfo, Publication
from tidings.node import Node
from tidings.peer import Peer
from tidings.protocol import centrifugo as cf
from tidings.protocol import native, wsframe
from tidings.protocol.centrifugo_codes import (
    TEMPORARY,
    CentrifugoDisconnect,
    CentrifugoError,
    disconnect_for,
    error_for,
)
from tidings.server.native import dispatch
from tidings.session import Connection, Session
from tidings.store.base import StoreError

log = logging.getLogger("tidings.centrifugo")

MAX_ERRORS = 50  # bad commands in a row before the connection is closed
# Native methods a client may call as Centrifugo RPC (`rpc` with `method`): the message center
# and direct messages; the rest have Centrifugo commands of their own.
RPC_METHODS = native.METHODS - {"connect", "subscribe", "unsubscribe", "publish", "history",
                                "presence", "pong"}
VERSION = f"tidings {__version__}"


class CentrifugoCodec:
    """Frames of one encoding; every session of that encoding shares it (one encode per pub)."""

    def __init__(self, format: cf.Format):
        self.format = format
        self._opcode = wsframe.BINARY if format.binary else wsframe.TEXT
        self._ping = self.frame_of(format.ping)

    def frame_of(self, payload: bytes) -> bytes:
        return wsframe.frame(payload, self._opcode)

    def frame(self, replies: list[dict]) -> bytes:
        return self.frame_of(self.format.encode(replies))

    def pub_frame(self, pub: Publication) -> bytes:
        return self.frame([cf.push(pub.channel, "pub", cf.publication(pub))])

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes:
        return self.frame([cf.push(channel, kind, {"info": cf.client_info(client)})])

    def push_frame(self, kind: str, body: dict) -> bytes:
        if kind == "disconnect":  # said by the close frame's code and reason instead
            return b""
        # Tidings' own pushes (the message center's `inbox`) as Centrifugo messages
        return self.frame([cf.push("", "message", {"data": orjson.dumps({kind: body})})])

    def ping_frame(self) -> bytes:
        return self._ping


CODECS = {cf.JSON.name: CentrifugoCodec(cf.JSON), cf.PROTOBUF.name: CentrifugoCodec(cf.PROTOBUF)}


class CentrifugoSocket:
    """The socket under a Centrifugo session: Tidings' close codes leave it as Centrifugo's."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self.write = conn.write
        self.writelines = conn.writelines
        self.buffered = conn.buffered

    def close(self, code: int, reason: str) -> None:
        self._conn.close(disconnect_for(code), reason)


class CentrifugoSession(Session):
    """A session pinged on the server's schedule, as Centrifugo's SDKs expect.

    The SDKs count any silence of the server longer than `ping` (+ their own allowance) as
    a dead connection, so a ping goes out every `ping_interval` whatever the client sends,
    and the client (told `pong: true`) must send something within `pong_timeout` after it.
    """

    _last_ping = 0.0
    _awaiting_pong = False

    @property
    def token_expires(self) -> int | None:
        """When the connection token (not a subscription token) expires, unix seconds."""
        return self._token_expires

    def keepalive(self, now: float) -> float:
        settings = self.node.settings
        if self._awaiting_pong and self.last_seen < self._last_ping:
            if now - self._last_ping > settings.pong_timeout:
                self.close(CloseCode.NO_PONG, "no pong in time")
            # a pong meanwhile leaves the next ping due (capped at ping_interval by `tick`)
            return self._last_ping + settings.pong_timeout
        if now - max(self._last_ping, self.opened_at) >= settings.ping_interval:
            self._last_ping, self._awaiting_pong = now, True
            self.write(self.codec.ping_frame())
            return now + settings.pong_timeout
        return max(self._last_ping, self.opened_at) + settings.ping_interval

    def refresh(self, token: str) -> int | None:
        """A fresh connection token for the same user; its expiry (unix seconds), if any."""
        identity = self.node.auth.verify(token)  # AuthError when bad, expired or revoked
        if identity.user != self.user:
            raise TidingsError(ErrorCode.UNAUTHORIZED, "the token is for another user",
                               close=CloseCode.UNAUTHORIZED)
        self.jti, self._token_expires = identity.jti, identity.expires
        self._update_expiry()
        return identity.expires

    def refresh_subscription(self, channel: str, token: str) -> int:
        if channel not in self.grants:
            raise TidingsError(ErrorCode.NOT_SUBSCRIBED,
                               f"{channel} is not subscribed with a token")
        grant = self.node.auth.verify_subscription(token, user=self.user, client=self.client,
                                                   channel=channel)
        self.grants[channel] = grant
        self._update_expiry()
        return grant.expires


class CentrifugoConnection:
    def __init__(self, node: Node, conn: Connection, format: cf.Format, peer: Peer,
                 url_user: str | None = None):
        self.node = node
        self.format = format
        self.codec = CODECS[format.name]
        self.session = CentrifugoSession(node, CentrifugoSocket(conn), self.codec, peer)
        self.url_user = url_user
        self.errors = 0

    def seen(self) -> None:
        """The client sent something (a WebSocket ping counts): it is alive."""
        self.session.seen()

    async def receive(self, data: str | bytes) -> None:
        """One WebSocket message (a str if text): every command in it, in order, one at a time."""
        session = self.session
        session.seen()
        try:
            commands = self.format.decode(data.encode() if isinstance(data, str) else data)
        except cf.FrameError as exc:
            session.close(CloseCode.TOO_MANY_ERRORS, f"bad request: {exc}")
            return
        for command in commands:
            if session.closed:
                return
            if isinstance(command, cf.RequestError):
                self._error(command.id, CentrifugoError.BAD_REQUEST, command.message, "?")
            elif command.method:  # the empty command is a pong: nothing to answer
                await self._run(command)
            if self.errors >= MAX_ERRORS:
                session.close(CloseCode.TOO_MANY_ERRORS, "too many bad commands")

    async def closed(self) -> None:
        await self.session.cleanup()

    # ---- running one command -------------------------------------------------------------

    async def _run(self, command: cf.Command) -> None:
        session = self.session
        if command.method != "connect" and not session.connected:
            session.close(CloseCode.TOO_MANY_ERRORS, "bad request: connect first")
            return
        if command.method == "send":
            # an asynchronous message has no reply to carry an error, and Tidings has no
            # application to hand it to: the client learns it from the close
            session.close(CentrifugoDisconnect.NOT_AVAILABLE,
                          "not available: send has no receiver in Tidings, use rpc")
            return
        metrics = self.node.metrics
        try:
            session.admit_command()
            result = await _HANDLERS[command.method](self, command.request)
        except TidingsError as exc:
            code = error_for(exc.code, exc.message)
            self._error(command.id, code, exc.message, command.method)
            close = exc.close
            if close is not None and code not in (CentrifugoError.TOKEN_EXPIRED,
                                                  CentrifugoError.TOKEN_REVOKED):
                session.close(close, exc.message)  # an expired token is refreshed instead
            return
        except NotAvailable as exc:
            self._error(command.id, CentrifugoError.NOT_AVAILABLE, str(exc), command.method)
            return
        except Exception:
            log.exception("centrifugo command %s failed", command.method)
            self._error(command.id, CentrifugoError.INTERNAL, "internal server error",
                        command.method)
            return
        self.errors = 0
        session.reply(self.codec.frame([cf.reply(command.id, command.method, result)]))
        session.release()
        metrics.count(metrics.commands, command.method, "ok")

    def _error(self, id: int, code: CentrifugoError, message: str, method: str) -> None:
        metrics = self.node.metrics
        metrics.count(metrics.commands, method, "error")
        if code in (CentrifugoError.BAD_REQUEST, CentrifugoError.METHOD_NOT_FOUND):
            self.errors += 1
        self.session.reply(self.codec.frame([cf.error_reply(id, code, message,
                                                            code in TEMPORARY)]))
        self.session.release()

    # ---- commands --------------------------------------------------------------------------

    async def _connect(self, req: cf.Connect) -> dict:
        credentials = {"token": req.token or None, "user": self.url_user}
        recover = {channel: await self._position(channel, p) for channel, p in req.recover.items()}
        result = await self.session.connect(credentials, recover)
        out = {
            "client": result["client"],
            "version": VERSION,
            "ping": max(1, round(self.node.settings.ping_interval)),
            "pong": True,
            "node": result["node"],
            "subs": {name: _subscribe_result(sub, name in recover)
                     for name, sub in result["subs"].items()},
        }
        out.update(self._expiry(self.session.token_expires))
        return out

    async def _subscribe(self, req: cf.Subscribe) -> dict:
        if req.unsupported:
            raise NotAvailable(f"{req.unsupported} are not available in Tidings")
        token = req.token or None
        since = await self._position(req.channel, req.recover) if req.recover else None
        try:
            result = await self.session.subscribe(req.channel, since, token=token)
        except TidingsError as exc:
            if exc.code != ErrorCode.CANNOT_RECOVER:
                raise
            # Centrifugo subscribes at the current position and says recovery failed
            result = await self.session.subscribe(req.channel, None, token=token)
            result["recovered"] = False
        out = _subscribe_result(result, since is not None)
        grant = self.session.grants.get(req.channel)
        if grant is not None:
            out.update(self._expiry(grant.expires))
        return out

    async def _unsubscribe(self, req: cf.ChannelRequest) -> dict:
        try:
            await self.session.unsubscribe(req.channel)
        except TidingsError as exc:
            if exc.code != ErrorCode.NOT_SUBSCRIBED:  # unsubscribing twice is no error here
                raise
        return {}

    async def _publish(self, req: cf.Publish) -> dict:
        if req.unsupported:
            raise NotAvailable(f"{req.unsupported} are not available in Tidings")
        await self.session.publish(req.channel, req.data)
        return {}

    async def _presence(self, req: cf.ChannelRequest) -> dict:
        clients = await self._clients(req.channel)
        return {"presence": {id: cf.client_info(ClientInfo.from_dict(info))
                             for id, info in clients.items()}}

    async def _presence_stats(self, req: cf.ChannelRequest) -> dict:
        clients = (await self._clients(req.channel)).values()
        return {"num_clients": len(clients), "num_users": len({c["user"] for c in clients})}

    async def _clients(self, channel: str) -> dict:
        if not self._options(channel).presence:
            raise NotAvailable(f"{channel} has no presence (its namespace's 'presence')")
        return (await self.session.presence(channel))["clients"]

    async def _history(self, req: cf.History) -> dict:
        if not self._options(req.channel).stored:
            raise NotAvailable(f"{req.channel} keeps no history (its namespace's history_size)")
        limit = native.MAX_HISTORY_LIMIT if req.limit < 0 else min(req.limit,
                                                                    native.MAX_HISTORY_LIMIT)
        since = req.since.offset if req.since is not None else None
        page = await self.session.history(req.channel, limit=max(limit, 1), since=since,
                                          reverse=req.reverse)
        if req.since is not None and req.since.epoch and req.since.epoch != page["epoch"]:
            raise TidingsError(ErrorCode.CANNOT_RECOVER,
                               f"epoch {req.since.epoch!r} is gone: {req.channel} is now at "
                               f"epoch {page['epoch']!r}")
        publications = page["publications"] if limit else []
        return {"publications": [cf.publication(_publication(p)) for p in publications],
                "epoch": page["epoch"], "offset": page["offset"]}

    async def _ping(self, req: cf.Empty) -> dict:
        return {}

    async def _rpc(self, req: cf.Rpc) -> dict:
        if req.method not in RPC_METHODS:
            raise TidingsError(ErrorCode.UNKNOWN_METHOD,
                               f"no rpc method {req.method!r}: Tidings answers "
                               f"{sorted(RPC_METHODS)}")
        params = req.data if req.data is not None else b"{}"
        frame = b'{"id":1,"' + req.method.encode() + b'":' + params + b"}"
        try:
            command = native.parse_command(frame)
        except native.ProtocolError as exc:
            raise TidingsError(ErrorCode.BAD_REQUEST, exc.message) from None
        result = await dispatch(self.session, command)
        return {"data": orjson.dumps(result)}

    async def _refresh(self, req: cf.Token) -> dict:
        try:
            expires = self.session.refresh(req.token)
        except AuthError as exc:
            raise TidingsError(ErrorCode.UNAUTHORIZED, str(exc),
                               close=CloseCode.UNAUTHORIZED) from None
        return {"client": self.session.client, "version": VERSION, **self._expiry(expires)}

    async def _sub_refresh(self, req: cf.Token) -> dict:
        try:
            expires = self.session.refresh_subscription(req.channel, req.token)
        except AuthError as exc:
            raise TidingsError(ErrorCode.BAD_SUBSCRIPTION_TOKEN, str(exc)) from None
        return self._expiry(expires)

    # ---- helpers ---------------------------------------------------------------------------

    def _options(self, name: str) -> Namespace:
        try:
            return self.node.channel(name).options
        except ChannelError as exc:
            raise TidingsError(ErrorCode.BAD_CHANNEL, str(exc)) from None

    async def _position(self, channel: str, position: cf.Position) -> tuple[int, str]:
        """(offset, epoch) to recover from; an empty epoch means "whatever it is now"."""
        if position.epoch:
            return position.offset, position.epoch
        try:
            current = (await self.node.store.positions([channel]))[channel]
        except StoreError as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"recovery failed: {exc}") from None
        return position.offset, current.epoch

    @staticmethod
    def _expiry(expires: int | None) -> dict:
        if expires is None:
            return {}
        return {"expires": True, "ttl": max(0, int(expires - time.time()))}


class NotAvailable(Exception):
    """A Centrifugo feature Tidings does not have: answered with error 108."""


def _publication(raw: dict) -> Publication:
    """A publication the session returned as a dict (its data an orjson.Fragment)."""
    return Publication(raw["channel"], raw["offset"], raw["epoch"], orjson.dumps(raw["data"]),
                       raw["time"], raw.get("source"), raw.get("sender"))


def _subscribe_result(sub: dict, was_recovering: bool) -> dict:
    """A session's subscribe result as Centrifugo's SubscribeResult."""
    out: dict = {}
    if "offset" in sub:  # a stored channel: positioned and recoverable
        out.update(recoverable=True, positioned=True, offset=sub["offset"], epoch=sub["epoch"])
    if was_recovering:
        out["was_recovering"] = True
        out["recovered"] = bool(sub.get("recovered"))
        out["publications"] = [cf.publication(_publication(p))
                               for p in sub.get("publications", ())]
    return out


_HANDLERS = {
    "connect": CentrifugoConnection._connect,
    "subscribe": CentrifugoConnection._subscribe,
    "unsubscribe": CentrifugoConnection._unsubscribe,
    "publish": CentrifugoConnection._publish,
    "presence": CentrifugoConnection._presence,
    "presence_stats": CentrifugoConnection._presence_stats,
    "history": CentrifugoConnection._history,
    "ping": CentrifugoConnection._ping,
    "rpc": CentrifugoConnection._rpc,
    "refresh": CentrifugoConnection._refresh,
    "sub_refresh": CentrifugoConnection._sub_refresh,
}
