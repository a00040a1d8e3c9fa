"""One STOMP client, over any transport: frames in, session calls, frames out.

The transport (a WebSocket at `/stomp`, a SockJS session at `/sockjs`) hands over the bytes
it received and writes what the session writes; everything STOMP means is here: CONNECT and
credentials, heart-beat negotiation, destinations mapped to channels, subscriptions with
their ack modes and server-side acknowledged positions, receipts, transactions, and the
ERROR frame that ends a connection that did something wrong. docs/stomp.md is the reference.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from tidings import __version__
from tidings.acks import AckLedger, AckPositions
from tidings.channels import BROADCAST, user_channel
from tidings.errors import CloseCode, ErrorCode, TidingsError
from tidings.model import Publication
from tidings.node import Node
from tidings.peer import Peer
from tidings.protocol import destinations, native, stomp
from tidings.protocol.destinations import App, DestinationError, OwnQueue, Topic, UserQueue
from tidings.protocol.stomp import Frame, FrameParser, HeartBeat, Limits, StompError
from tidings.server.native import dispatch
from tidings.server.stomp_frames import (
    AckedFrames,
    FrameCache,
    FrameKey,
    Framing,
    MessageFrames,
    SessionFrames,
    SharedChannelSubscription,
    later,
    parse_ack_id,
)
from tidings.session import Connection, Session
from tidings.store.base import RecoveryImpossible, StoreError

log = logging.getLogger("tidings.stomp")

ACK_MODES = ("auto", "client", "client-individual")
# Native methods that have a STOMP frame of their own, or make no sense answered on a queue.
NOT_APP_METHODS = frozenset({"connect", "subscribe", "unsubscribe", "pong"})
APP_METHODS = native.METHODS - NOT_APP_METHODS
# What a session error means for the connection after the ERROR frame.
CLOSE_CODES = {
    ErrorCode.UNAUTHORIZED: CloseCode.UNAUTHORIZED,
    ErrorCode.UNAVAILABLE: CloseCode.SERVER_ERROR,
    ErrorCode.INTERNAL: CloseCode.SERVER_ERROR,
}


MAX_SUBSCRIPTION_ID = 255  # characters: acknowledged positions are stored under it


class StompGateway:
    """What every STOMP connection of a node shares: MESSAGE frames and the ack writer."""

    def __init__(self, node: Node):
        self.node = node
        namespaces = node.settings.namespaces
        self.frames = FrameCache(lambda channel: destinations.topic_destination(channel, namespaces))
        self.acks = AckPositions(node.store)

    def open(self, query: Mapping[str, str], conn: Connection, framing: Framing, peer: Peer
             ) -> "StompConnection":
        """A new STOMP connection over `conn`, opened by a request with `query` (the
        WebSocket handshake or the first SockJS request of a session), whose `peer` passed
        the handshake checks (`tidings.server.websocket`: Origin allow-list, connection caps)."""
        return StompConnection(self, conn, framing, url_credentials(query), peer)


class StompSession(Session):
    """A session kept alive by STOMP heart-beats, as negotiated, instead of pings."""

    send_every = 0.0  # seconds between server heart-beats; 0: none
    expect_within = 0.0  # seconds of client silence before the close; 0: no check
    last_beat = 0.0

    def heart_beats(self, send_every: float, expect_within: float) -> None:
        """The heart-beats CONNECT negotiated: they may fall due before the next look."""
        self.send_every, self.expect_within = send_every, expect_within
        self.last_beat = time.monotonic()
        self.node.wake(self)

    def keepalive(self, now: float) -> float:
        if self.expect_within and now - self.last_seen > self.expect_within:
            self.close(CloseCode.NO_PONG, "no heart-beat from the client in time")
        elif self.send_every and now - self.last_beat >= self.send_every * 0.8:
            self.last_beat = now  # a little early: the node's tick is not exact
            self.write(self.codec.ping_frame())
        due = math.inf  # neither way: `tick` looks at it every ping_interval all the same
        if self.expect_within:
            due = self.last_seen + self.expect_within
        if self.send_every:
            due = min(due, self.last_beat + self.send_every * 0.8)
        return due


@dataclass(eq=False)
class Subscription:
    id: str
    destination: str
    channel: str
    ack: str
    key: FrameKey
    shared: SharedChannelSubscription | None = None  # on user:<me> or broadcast
    ledger: AckLedger | None = None
    replies_only: bool = False  # /user/queue/<method> of an /app method: no direct messages


class StompConnection:
    def __init__(self, gateway: StompGateway, conn: Connection, framing: Framing,
                 url_credentials: dict[str, str], peer: Peer):
        self.gateway = gateway
        self.node = gateway.node
        settings = self.node.settings
        self.limits = settings.stomp
        self.codec = SessionFrames(framing, overflow=self._overflow)
        self.session = StompSession(self.node, conn, self.codec, peer)
        self.parser = FrameParser(Limits(settings.max_frame_bytes, self.limits.max_headers,
                                         self.limits.max_header_bytes))
        self.url_credentials = url_credentials
        self.version = "1.2"
        self.subscriptions: dict[str, Subscription] = {}
        self.transactions: dict[str, list[Frame]] = {}
        self.epochs: dict[str, str] = {}  # automatic channel -> epoch
        self._unsaved: list[asyncio.Future] = []
        self._reply_ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._done = False

    # ---- the transport's side ----------------------------------------------------------

    def seen(self) -> None:
        """The client sent something (a WebSocket ping counts): it is alive."""
        self.session.seen()

    async def receive(self, data: str | bytes) -> None:
        """Data from the client (a WebSocket text message is a str); frames are handled in
        order, one at a time."""
        async with self._lock:
            if self._done or self.session.closed:
                return
            self.session.seen()
            try:
                events = self.parser.feed(data.encode() if isinstance(data, str) else data)
                for event in events:
                    if isinstance(event, HeartBeat):
                        continue
                    await self._handle(event)
                    if self._done or self.session.closed:
                        return
            except StompError as exc:
                self.fail(exc)
            except TidingsError as exc:
                self.fail(StompError(exc.message),
                          exc.close or CLOSE_CODES.get(exc.code, CloseCode.TOO_MANY_ERRORS))
            except Exception:
                log.exception("STOMP frame failed")
                self.fail(StompError("internal error"), CloseCode.SERVER_ERROR)

    async def closed(self) -> None:
        """The transport is gone: store what was acknowledged, then leave every channel."""
        self._done = True
        await self._saved(raise_errors=False)
        await self.session.cleanup()
        for sub in self.subscriptions.values():
            self.gateway.frames.release(sub.key)
        self.subscriptions.clear()

    def fail(self, error: StompError, code: int = CloseCode.TOO_MANY_ERRORS) -> None:
        """ERROR frame, then close: what the spec asks for a frame the server refuses."""
        if self.session.closed:
            return
        self.session.write(self.codec.error_frame(error.message, error.receipt_id))
        self.codec.quiet = True
        self._done = True
        self.session.close(code, error.message)

    def _overflow(self, message: str) -> None:
        later(lambda: self.fail(StompError(message)))

    # ---- frames --------------------------------------------------------------------------

    async def _handle(self, frame: Frame) -> None:
        """One frame, counted in `/metrics` as the command `STOMP <COMMAND>`."""
        metrics, method = self.node.metrics, f"STOMP {frame.command}"
        try:
            await self._dispatch(frame)
        except (StompError, TidingsError) as exc:
            metrics.count(metrics.commands, method, "error")
            metrics.count(metrics.command_errors, method, _error_label(exc))
            raise
        metrics.count(metrics.commands, method, "ok")

    async def _dispatch(self, frame: Frame) -> None:
        command = frame.command
        if command in ("CONNECT", "STOMP"):
            await self._connect(frame)
            return
        if not self.session.connected:
            raise StompError("send CONNECT first", frame.header("receipt"))
        await self._paced()
        handler = _HANDLERS[command]
        await handler(self, frame)

    async def _paced(self) -> None:
        """Hold a frame over the command rate limit until its turn comes.

        STOMP has no error a client survives, so a fast client is slowed down rather than
        refused: while this waits nothing more is read from its socket.
        """
        try:
            self.session.admit_command()
        except TidingsError as exc:
            if exc.close is not None:
                raise
            await asyncio.sleep(self.session.commands.repaid_after())

    async def _connect(self, frame: Frame) -> None:
        if self.session.connected:
            raise StompError("already connected", frame.header("receipt"))
        version = stomp.negotiate_version(frame.header("accept-version"))
        if version is None:
            raise StompError(f"supported versions are {','.join(stomp.VERSIONS)}")
        client_beats = stomp.parse_heartbeat(frame.header("heart-beat"))
        token = (frame.header("passcode") or _bearer(frame.header("authorization"))
                 or _bearer(frame.header("Authorization")) or self.url_credentials.get("token"))
        user = frame.header("login") or self.url_credentials.get("user")
        self.version = self.parser.version = self.codec.version = version
        try:
            result = await self.session.connect({"token": token, "user": user}, {})
        except TidingsError as exc:
            self.session.release()
            code = CLOSE_CODES.get(exc.code, CloseCode.TOO_MANY_ERRORS)
            self.fail(StompError(exc.message, frame.header("receipt")), code)
            return
        for channel, sub in result["subs"].items():
            self.codec.positions[channel] = sub["offset"]
            self.epochs[channel] = sub["epoch"]
        server_beats = (int(self.limits.heartbeat_send * 1000),
                        int(self.limits.heartbeat_receive * 1000))
        send_ms, receive_ms = stomp.heartbeat_intervals(client_beats, server_beats)
        self.session.heart_beats(send_ms / 1000,
                                 receive_ms / 1000 * self.limits.heartbeat_tolerance)
        headers = [("version", version), ("heart-beat", "%d,%d" % server_beats),
                   ("server", f"Tidings/{__version__}"), ("session", self.session.client),
                   ("user-name", self.session.user)]
        self.session.reply(self.codec.frame("CONNECTED", headers))
        self.session.release()

    async def _disconnect(self, frame: Frame) -> None:
        receipt = frame.header("receipt")
        await self._saved(receipt)
        if receipt is not None:
            self.session.write(self._receipt(receipt))
        self._done = True
        self.session.close(CloseCode.NORMAL, "client disconnected")

    # ---- subscriptions -----------------------------------------------------------------

    async def _subscribe(self, frame: Frame) -> None:
        receipt = frame.header("receipt")
        destination = _required(frame, "destination")
        sub_id = frame.header("id") or (destination if self.version == "1.0" else None)
        if sub_id is None:
            raise StompError("SUBSCRIBE needs an 'id' header", receipt)
        if len(sub_id) > MAX_SUBSCRIPTION_ID:
            raise StompError(f"a subscription id is at most {MAX_SUBSCRIPTION_ID} characters",
                             receipt)
        ack = frame.header("ack", "auto")
        if ack not in ACK_MODES:
            raise StompError(f"ack must be one of {', '.join(ACK_MODES)}", receipt)
        if sub_id in self.subscriptions:
            raise StompError(f"subscription id {sub_id!r} is already in use", receipt)
        target = self._destination(destination, receipt)
        if isinstance(target, (App, UserQueue)):
            raise StompError("SUBSCRIBE to /topic/<room>, /topic/broadcast or /user/queue/<name>",
                             receipt)
        since = _resume(frame)
        stored = None
        if ack != "auto":
            stored = await self.gateway.acks.load(self.session.user, sub_id)
            if stored is not None and stored.destination != destination:
                stored = None  # the id was used for another destination: start afresh
        from_store = since is None and stored is not None
        if from_store:
            since = (stored.offset, stored.epoch)
        acked = set(stored.acked) if from_store else set()
        channel = (target.channel if isinstance(target, Topic)
                   else user_channel(self.session.user))
        key = FrameKey(self.codec.framing, self.version, sub_id, ack != "auto")
        sub = Subscription(sub_id, destination, channel, ack, key)
        if ack != "auto":
            sub.ledger = AckLedger(destination, 0, "", cumulative=ack == "client",
                                   limit=self.limits.max_unacked, acked=tuple(acked))
        frames = self.gateway.frames.acquire(key)
        try:
            try:
                if isinstance(target, OwnQueue) and target.name in APP_METHODS:
                    sub.replies_only = True
                    pubs, position = [], None
                elif channel in (BROADCAST, user_channel(self.session.user)):
                    pubs, position = await self._subscribe_shared(sub, frames, since)
                else:
                    pubs, position = await self._subscribe_room(sub, frames, since)
            except BaseException as exc:
                self.gateway.frames.release(key)
                if not isinstance(exc, TidingsError):
                    raise
                if exc.code != ErrorCode.CANNOT_RECOVER:
                    raise StompError(exc.message, receipt) from None
                if from_store:
                    self._track(self.gateway.acks.save(self.session.user, sub_id, None))
                    raise StompError(f"{exc.message}; the acknowledged position of subscription "
                                     f"{sub_id} is reset: subscribe again", receipt) from None
                raise StompError(f"{exc.message}; subscribe without offset and epoch, then "
                                 "read the history", receipt) from None
            self.subscriptions[sub_id] = sub
            reply = []
            for pub in pubs:
                if pub.offset in acked:
                    continue
                if sub.ledger is not None:
                    sub.ledger.delivered(pub.offset)
                reply.append(frames.frame(pub, destination))
            if sub.ledger is not None and position is not None:
                if not from_store or position != (stored.offset, stored.epoch):
                    self._track(self.gateway.acks.save(self.session.user, sub_id,
                                                       sub.ledger.position()))
            if receipt is not None:
                await self._saved(receipt)
                reply.append(self._receipt(receipt))
            if reply:  # ahead of the live frames held meanwhile
                self.session.reply(b"".join(reply))
        finally:
            self.session.release()

    async def _subscribe_room(self, sub: Subscription, frames: MessageFrames,
                              since: tuple[int, str] | None
                              ) -> tuple[list[Publication], tuple[int, str] | None]:
        codec = frames if sub.ledger is None else AckedFrames(
            frames, sub.destination, sub.ledger, self._overflow)
        result = await self.session.subscribe(sub.channel, since, codec=codec)
        pubs = [Publication.from_dict(pub) for pub in result.get("publications", [])]
        if "offset" not in result:
            sub.ledger = None  # an ephemeral channel: nothing to acknowledge
            return pubs, None
        start = since[0] if since is not None else result["offset"]
        if sub.ledger is not None:
            sub.ledger.start_at(start, result["epoch"])
        return pubs, (start, result["epoch"])

    async def _subscribe_shared(self, sub: Subscription, frames: MessageFrames,
                                since: tuple[int, str] | None
                                ) -> tuple[list[Publication], tuple[int, str]]:
        """A subscription to a channel the session has had since CONNECT (user:<me>, broadcast).

        Live publications go to it from the session's current place in the channel on;
        what it missed before that comes from the store, ahead of them (output is held).
        """
        channel = sub.channel
        live = self.codec.positions.get(channel, 0)
        epoch = self.epochs.get(channel, "")
        seen = max(live, since[0]) if since is not None else live
        sub.shared = SharedChannelSubscription(sub.id, channel, sub.destination, frames, seen,
                                               sub.ledger)
        pubs: list[Publication] = []
        if since is not None:
            self.session.hold()
            self.codec.add(sub.shared)
            options = self.node.channel(channel).options
            try:
                pubs, _ = await self.node.store.recover(channel, since[0], since[1],
                                                        max_publications=options.recovery_max)
            except StoreError as exc:
                self.codec.remove(sub.shared)
                raise TidingsError(ErrorCode.UNAVAILABLE, f"subscribe failed: {exc}") from None
            except RecoveryImpossible as exc:
                self.codec.remove(sub.shared)
                raise TidingsError(ErrorCode.CANNOT_RECOVER,
                                   f"cannot recover: {exc.reason}") from None
            pubs = [pub for pub in pubs if pub.offset <= live]
        else:
            self.codec.add(sub.shared)
        start = since[0] if since is not None else live
        if sub.ledger is not None:
            sub.ledger.start_at(start, since[1] if since is not None else epoch)
        return pubs, (start, since[1] if since is not None else epoch)

    async def _unsubscribe(self, frame: Frame) -> None:
        receipt = frame.header("receipt")
        sub_id = frame.header("id")
        if sub_id is None and self.version == "1.0":
            sub_id = frame.header("destination")
        if sub_id is None:
            raise StompError("UNSUBSCRIBE needs an 'id' header", receipt)
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            raise StompError(f"no subscription {sub_id!r}", receipt)
        if sub.shared is not None:
            self.codec.remove(sub.shared)
        elif not sub.replies_only:
            try:
                await self.session.unsubscribe(sub.channel)
            except TidingsError as exc:
                if exc.code != ErrorCode.NOT_SUBSCRIBED:
                    raise
        self.gateway.frames.release(sub.key)
        if sub.ack != "auto":
            self._track(self.gateway.acks.save(self.session.user, sub_id, None))
        if receipt is not None:
            await self._saved(receipt)
            self.session.write(self._receipt(receipt))

    # ---- sending -----------------------------------------------------------------------

    async def _send(self, frame: Frame) -> None:
        if await self._in_transaction(frame):
            return
        await self._apply_send(frame)
        self._receipt_for(frame)

    async def _apply_send(self, frame: Frame) -> None:
        receipt = frame.header("receipt")
        target = self._destination(_required(frame, "destination"), receipt)
        try:
            if isinstance(target, App):
                await self._app(target.method, frame)
            elif isinstance(target, Topic):
                await self.session.publish(target.channel, _data(frame))
            elif isinstance(target, UserQueue):
                await self.session.send(target.user, _data(frame))
            else:
                raise StompError("SEND a direct message to /user/<id>/queue/<name>", receipt)
        except TidingsError as exc:
            raise StompError(exc.message, receipt) from None

    async def _app(self, method: str, frame: Frame) -> None:
        """`/app/<method>`: a native method, its answer a MESSAGE on `/user/queue/<method>`."""
        try:
            params = orjson.loads(frame.body) if frame.body.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise StompError(f"/app/{method} needs a JSON object body: {exc}",
                             frame.header("receipt")) from None
        try:
            if method not in APP_METHODS:
                raise TidingsError(ErrorCode.UNKNOWN_METHOD, f"no method {method!r} under /app")
            command = native.parse_command(orjson.dumps({"id": 1, method: params}))
            answer = await dispatch(self.session, command)
        except TidingsError as exc:  # answered on the queue; the connection goes on
            answer = {"error": {"code": int(exc.code), "message": exc.message}}
        body = orjson.dumps(answer)
        correlation = frame.header("correlation-id")
        destination = destinations.OWN_QUEUE + method
        for sub in self.subscriptions.values():
            if sub.destination != destination:
                continue
            ident = f"r{next(self._reply_ids)}.{sub.id}"
            headers = [("destination", destination), ("subscription", sub.id),
                       ("message-id", ident), ("content-type", "application/json")]
            if sub.ack != "auto":
                headers.append(("ack", ident))
            if correlation is not None:
                headers.append(("correlation-id", correlation))
            self.session.write(self.codec.frame("MESSAGE", headers, body))

    # ---- acknowledgements ----------------------------------------------------------------

    async def _ack(self, frame: Frame) -> None:
        if await self._in_transaction(frame):
            return
        self._apply_ack(frame)
        await self._receipt_after_save(frame)

    def _apply_ack(self, frame: Frame) -> None:
        name = "id" if self.version == "1.2" else "message-id"
        sub_id, offset = parse_ack_id(_required(frame, name))
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub.ledger is None or offset is None:
            return  # unsubscribed meanwhile, no client acks, or a message nothing keeps
        settle = sub.ledger.ack if frame.command == "ACK" else sub.ledger.nack
        if settle(offset):
            self._track(self.gateway.acks.save(self.session.user, sub.id,
                                               sub.ledger.position()))

    def _track(self, saved: asyncio.Future) -> None:
        self._unsaved = [f for f in self._unsaved if not f.done()]
        self._unsaved.append(saved)

    async def _saved(self, receipt: str | None = None, *, raise_errors: bool = True) -> None:
        """Wait until every position this connection changed is in the store."""
        unsaved, self._unsaved = self._unsaved, []
        for future in unsaved:
            try:
                await future
            except StoreError as exc:
                if raise_errors:
                    raise StompError(f"acknowledgement not stored: {exc}", receipt) from None

    # ---- transactions --------------------------------------------------------------------

    async def _in_transaction(self, frame: Frame) -> bool:
        """Keep a SEND, ACK or NACK of a transaction for COMMIT; False if it has none."""
        name = frame.header("transaction")
        if name is None:
            return False
        frames = self._transaction(name, frame)
        if len(frames) >= self.limits.max_transaction_frames:
            raise StompError(f"more than {self.limits.max_transaction_frames} frames in "
                             f"transaction {name!r}", frame.header("receipt"))
        frames.append(frame)
        self._receipt_for(frame)
        return True

    def _transaction(self, name: str, frame: Frame) -> list[Frame]:
        frames = self.transactions.get(name)
        if frames is None:
            raise StompError(f"no transaction {name!r}", frame.header("receipt"))
        return frames

    async def _begin(self, frame: Frame) -> None:
        name = _required(frame, "transaction")
        if name in self.transactions:
            raise StompError(f"transaction {name!r} is already open", frame.header("receipt"))
        if len(self.transactions) >= self.limits.max_transactions:
            raise StompError(f"more than {self.limits.max_transactions} open transactions",
                             frame.header("receipt"))
        self.transactions[name] = []
        self._receipt_for(frame)

    async def _commit(self, frame: Frame) -> None:
        name = _required(frame, "transaction")
        frames = self._transaction(name, frame)
        del self.transactions[name]
        for held in frames:
            if held.command == "SEND":
                await self._apply_send(held)
            else:
                self._apply_ack(held)
        await self._receipt_after_save(frame)

    async def _abort(self, frame: Frame) -> None:
        name = _required(frame, "transaction")
        self._transaction(name, frame)
        del self.transactions[name]
        self._receipt_for(frame)

    # ---- helpers -------------------------------------------------------------------------

    def _destination(self, destination: str, receipt: str | None):
        try:
            return destinations.parse(destination, self.node.settings.namespaces)
        except DestinationError as exc:
            raise StompError(str(exc), receipt) from None

    def _receipt(self, receipt: str) -> bytes:
        return self.codec.frame("RECEIPT", [("receipt-id", receipt)])

    def _receipt_for(self, frame: Frame) -> None:
        receipt = frame.header("receipt")
        if receipt is not None:
            self.session.write(self._receipt(receipt))

    async def _receipt_after_save(self, frame: Frame) -> None:
        receipt = frame.header("receipt")
        if receipt is not None:
            await self._saved(receipt)
            self.session.write(self._receipt(receipt))


CREDENTIAL_PARAMETERS = ("token", "user")


def url_credentials(query: Mapping[str, str]) -> dict[str, str]:
    """`?token=` (or `?user=` on an insecure loopback node) for clients that cannot set headers.

    Never logged: the node runs without an access log, and nothing here prints the URL.
    """
    return {name: query[name] for name in CREDENTIAL_PARAMETERS if name in query}


_HANDLERS = {
    "SEND": StompConnection._send,
    "SUBSCRIBE": StompConnection._subscribe,
    "UNSUBSCRIBE": StompConnection._unsubscribe,
    "ACK": StompConnection._ack,
    "NACK": StompConnection._ack,
    "BEGIN": StompConnection._begin,
    "COMMIT": StompConnection._commit,
    "ABORT": StompConnection._abort,
    "DISCONNECT": StompConnection._disconnect,
}


def _required(frame: Frame, name: str) -> str:
    value = frame.header(name)
    if value is None:
        raise StompError(f"{frame.command} needs a {name!r} header", frame.header("receipt"))
    return value


def _bearer(value: str | None) -> str | None:
    if value is not None and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def _resume(frame: Frame) -> tuple[int, str] | None:
    """The `offset` + `epoch` headers of a SUBSCRIBE: resume after that publication."""
    offset, epoch = frame.header("offset"), frame.header("epoch")
    if offset is None and epoch is None:
        return None
    if offset is None or epoch is None or not (offset.isdigit() and offset.isascii()):
        raise StompError("resume with both 'offset' (an integer >= 0) and 'epoch'",
                         frame.header("receipt"))
    return int(offset), epoch


def _data(frame: Frame) -> bytes:
    """A SEND body as a publication's JSON: JSON as it is, text as a JSON string."""
    content_type = (frame.header("content-type") or "").partition(";")[0].strip().lower()
    body = frame.body
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if is_json or (not content_type and body):
        try:
            return orjson.dumps(orjson.loads(body))
        except (orjson.JSONDecodeError, orjson.JSONEncodeError) as exc:
            if is_json:
                raise StompError(f"body is not valid JSON: {exc}", frame.header("receipt")) from None
    if content_type and not content_type.startswith("text/"):
        raise StompError(f"content-type {content_type} cannot be published: send JSON or text",
                         frame.header("receipt"))
    try:
        return orjson.dumps(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise StompError("a text body must be UTF-8", frame.header("receipt")) from None


def _error_label(exc: Exception) -> str:
    """The error code a refused frame counts under: the node's code when the refusal came
    from one (an ERROR frame made from it keeps it as its context), else `frame` (the
    STOMP layer's own refusal: a missing header, an unknown destination)."""
    cause = exc if isinstance(exc, TidingsError) else exc.__context__
    return str(int(cause.code)) if isinstance(cause, TidingsError) else "frame"
