"""One client connection, whatever protocol it speaks: identity, subscriptions, permissions.

Protocol handlers (native JSON, STOMP) parse frames and call these methods; the methods
raise TidingsError for anything the client did wrong and return plain dicts as results.
Output goes through `write`, which enforces the bounded outgoing buffer.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Protocol

from tidings.auth import Grant
from tidings.broker.base import BrokerError
from tidings.channels import BROADCAST, Channel, ChannelError, user_channel, valid_user_id
from tidings.errors import CloseCode, ErrorCode, TidingsError
from tidings.hub import Codec
from tidings.limits import CommandBucket
from tidings.logs import bind_session, session_fields
from tidings.model import ClientInfo, Publication
from tidings.node import JOIN, LEAVE, Node
from tidings.peer import Peer
from tidings.readstate import ReadChange
from tidings.store.base import RecoveryImpossible, StoreError

log = logging.getLogger("tidings.session")

MAX_SUBSCRIPTIONS = 1000


class Connection(Protocol):
    """The socket under a session, as the session needs it."""

    def write(self, frame: bytes) -> None: ...

    def writelines(self, frames: list[bytes]) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel."""

    def close(self, code: int, reason: str) -> None:
        """Start closing; must not block and must tolerate being called twice."""


class SessionCodec(Codec, Protocol):
    def push_frame(self, kind: str, body: dict) -> bytes: ...

    def ping_frame(self) -> bytes: ...


class Session:
    # One per connection: no instance dict (protocols that add state subclass it).
    __slots__ = ("node", "conn", "codec", "peer", "client", "user", "meta", "expires", "jti",
                 "_token_expires", "grants", "commands", "connected", "closed",
                 "subscriptions", "opened_at", "last_seen", "_pinged_at", "_out", "_holding",
                 "_held_from", "_max_outgoing", "_voice_backlog", "voice_dropped")

    def __init__(self, node: Node, conn: Connection, codec: SessionCodec,
                 peer: Peer | None = None):
        self.node = node
        self.conn = conn
        self.codec = codec
        self.peer = peer or Peer()  # its place under the connection caps is freed at cleanup
        self.client = str(uuid.uuid4())
        self.user = ""
        self.meta: dict = {}
        self.expires: int | None = None  # the earliest exp of its tokens: the session ends then
        self.jti: str | None = None  # the connection token's id
        self._token_expires: int | None = None  # the connection token's exp
        self.grants: dict[str, Grant] = {}  # subscription tokens, by channel
        security = node.settings.security
        self.commands = CommandBucket(security.command_rate, security.command_burst)
        self.connected = False
        self.closed = False
        self.subscriptions: set[str] = set()
        self.opened_at = self.last_seen = time.monotonic()
        self._pinged_at: float | None = None
        self._out: list[bytes] = []
        self._holding = False
        self._held_from = 0
        self._max_outgoing = node.settings.max_outgoing_bytes
        self._voice_backlog = node.settings.voice.listener_backlog_bytes
        self.voice_dropped = 0  # voice frames this listener lost because it was behind
        node.attach(self)
        bind_session(self)  # lines logged while serving this connection name it

    # ---- output ----------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        """Queue a frame; called once per recipient of every publication, so kept short."""
        if self.closed:
            return
        if not self._out and not self._holding:
            self.node.outbox.mark(self)
        self._out.append(frame)

    def write_droppable(self, frame: bytes) -> bool:
        """A voice frame: dropped (False) rather than queued behind unsent output.

        Voice is worth nothing late, and a frame queued on a slow socket would sit ahead of
        the text that follows it; a listener that is behind loses voice, never chat.
        """
        if self.closed or self._holding or self.conn.buffered() > self._voice_backlog:
            self.voice_dropped += 1
            return False
        self.write(frame)
        return True

    def flush(self) -> None:
        """Write what was queued this tick in one go (see tidings.outbox)."""
        if self.closed or self._holding or not self._out:
            return
        if self.conn.buffered() > self._max_outgoing:
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect and recover")
            return
        out, self._out = self._out, []
        if len(out) == 1:
            self.conn.write(out[0])
        else:
            self.conn.writelines(out)

    def reply(self, frame: bytes) -> None:
        """A command's reply: ahead of anything held back while it was being built."""
        if self._holding:
            self._out.insert(self._held_from, frame)
        else:
            self.write(frame)

    def hold(self) -> None:
        """Keep output back while a reply that must come first is being built.

        Subscribing joins the live stream before the reply (with the recovered
        publications) is written; live frames that arrive meanwhile wait behind it.
        """
        if not self._holding:
            self._holding = True
            self._held_from = len(self._out)

    def release(self) -> None:
        """After the reply is written: let held frames go (a no-op when nothing is held)."""
        if not self._holding:
            return
        self._holding = False
        if self._out:
            self.node.outbox.mark(self)

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        out, self._out = self._out, []
        if code != CloseCode.SLOW_CONSUMER:  # a full buffer takes no more
            if self.connected:
                out.append(self.codec.push_frame(
                    "disconnect", {"code": int(code), "reason": reason, "reconnect": _may_reconnect(code)}
                ))
            self.conn.writelines(out)
        self.node.metrics.count(self.node.metrics.disconnects, str(int(code)))
        log.debug("closing with %d: %s", code, reason, **session_fields(self))
        self.conn.close(code, reason)

    def push(self, kind: str, body: dict) -> None:
        """A push without id (e.g. `inbox`), in this session's protocol."""
        self.write(self.codec.push_frame(kind, body))

    def lost_sync(self, channel: str) -> None:
        self.close(CloseCode.GAP, f"lost position in {channel}: reconnect and recover")

    def seen(self) -> None:
        """The client sent something. Called per frame, so it only notes the time: that
        moves the next ping later, never sooner, and the tick finds that out itself."""
        self.last_seen = time.monotonic()
        self._pinged_at = None

    def tick(self, now: float) -> float | None:
        """Do what is due at `now` (monotonic): close on an expired token or a missing
        connect, else keep alive. Returns when the next thing can fall due, None once closed.

        That time is never later than anything could fall due: `seen()` brings no ping
        closer than `ping_interval` from now, whatever moves a deadline earlier calls
        `node.wake`, and no session waits longer than `ping_interval` for a look, so a step
        of the wall clock (token expiry is wall-clock time) is noticed within it.
        """
        if self.closed:
            return None
        settings = self.node.settings
        if self.expires is not None:
            left = self.expires - time.time()
            if left <= 0:
                self.close(CloseCode.TOKEN_EXPIRED, "token expired: reconnect with a fresh one")
                return None
        if not self.connected:
            if now - self.opened_at > settings.connect_timeout:
                self.close(CloseCode.CONNECT_TIMEOUT, "no connect command in time")
                return None
            due = self.opened_at + settings.connect_timeout
        else:
            due = self.keepalive(now)
            if self.closed:
                return None
        if self.expires is not None:
            due = min(due, now + left)
        return min(due, now + settings.ping_interval)

    def keepalive(self, now: float) -> float:
        """Ping after `ping_interval` of client silence; close when no frame follows in time.
        Returns when that can next fall due.

        A protocol with heart-beats of its own (STOMP) overrides this.
        """
        settings = self.node.settings
        if self._pinged_at is not None:
            if now - self._pinged_at > settings.pong_timeout:
                self.close(CloseCode.NO_PONG, "no pong in time")
            return self._pinged_at + settings.pong_timeout
        if now - self.last_seen >= settings.ping_interval:
            self._pinged_at = now
            self.write(self.codec.ping_frame())
            return now + settings.pong_timeout
        return self.last_seen + settings.ping_interval

    # ---- commands --------------------------------------------------------------------

    async def connect(self, credentials: dict, recover: dict[str, tuple[int, str]]) -> dict:
        """Authenticate, register, subscribe the automatic channels (recovering if asked).

        Output stays held until the caller has written the reply and called `release`.
        """
        if self.connected:
            raise TidingsError(ErrorCode.ALREADY_CONNECTED, "already connected")
        if self.node.draining:
            raise TidingsError(ErrorCode.UNAVAILABLE, "node is shutting down: use another")
        identity = await self.node.access.identify(credentials, self)
        if self.closed:  # the socket went while the backend was asked
            raise TidingsError(ErrorCode.UNAVAILABLE, "connection closed")
        automatic = [user_channel(identity.user), BROADCAST]
        unknown = set(recover) - set(automatic)
        if unknown:
            raise TidingsError(
                ErrorCode.BAD_REQUEST,
                f"connect can recover only {automatic}; subscribe to {sorted(unknown)} instead",
            )
        self.user, self.meta, self.jti = identity.user, identity.meta, identity.jti
        self.expires = self._token_expires = identity.expires
        self.connected = True
        self.node.wake(self)  # pings (and the token's expiry) may come before the next look
        self.hold()
        self.node.identify(self)
        log.debug("connected")
        try:
            subs = {name: await self._subscribe_automatic(name, recover.get(name))
                    for name in automatic}
        except BaseException:
            await self.cleanup()
            self.close(CloseCode.SERVER_ERROR, "connect failed")
            raise
        return {
            "client": self.client,
            "user": self.user,
            "node": self.node.name,
            "ping": self.node.settings.ping_interval,
            "pong": self.node.settings.pong_timeout,
            "subs": subs,
        }

    async def _subscribe_automatic(self, name: str, since: tuple[int, str] | None) -> dict:
        try:
            return await self._subscribe(self.node.channel(name), since)
        except TidingsError as exc:
            if exc.code != ErrorCode.CANNOT_RECOVER:
                raise
            # automatic channels stay subscribed: the client reloads history instead
            result = await self._subscribe(self.node.channel(name), None)
            result.update(recovered=False, error={"code": int(exc.code), "message": exc.message})
            return result

    async def subscribe(self, name: str, since: tuple[int, str] | None, *,
                        token: str | None = None, codec: Codec | None = None) -> dict:
        """Subscribe `name`. `token`: a subscription token, for namespaces that want one;
        `codec` makes this subscription's frames (default: the session's)."""
        channel = self._channel(name)
        if channel.name in self.subscriptions:
            raise TidingsError(ErrorCode.ALREADY_SUBSCRIBED, f"already subscribed to {name}")
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise TidingsError(ErrorCode.LIMIT_EXCEEDED,
                               f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        grant = await self.node.access.check_subscribe(self, channel, token)
        result = await self._subscribe(channel, since, codec)
        if grant is not None:
            self.grants[channel.name] = grant
            self._update_expiry()
        return result

    async def _subscribe(self, channel: Channel, since: tuple[int, str] | None,
                         codec: Codec | None = None) -> dict:
        self.hold()  # released by the protocol handler once the reply is written
        try:
            pubs, position = await self.node.hub.subscribe(
                self, channel, since=since, recovery_max=channel.options.recovery_max,
                codec=codec,
            )
        except RecoveryImpossible as exc:
            self.node.metrics.count(self.node.metrics.recoveries, "impossible")
            raise TidingsError(ErrorCode.CANNOT_RECOVER, f"cannot recover: {exc.reason}") from None
        except (StoreError, BrokerError) as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"subscribe failed: {exc}") from None
        if since is not None and channel.options.stored:
            self.node.metrics.count(self.node.metrics.recoveries, "recovered")
        if self.closed:  # the connection went away while the hub was busy
            self.node.hub.unsubscribe(self, channel.name)
            raise TidingsError(ErrorCode.UNAVAILABLE, "connection closed")
        self.subscriptions.add(channel.name)
        result: dict = {"channel": channel.name}
        if channel.options.stored:
            result.update(offset=position.offset, epoch=position.epoch)
        if since is not None and channel.options.stored:
            result.update(recovered=True, publications=[pub.to_dict() for pub in pubs])
        if channel.options.presence or channel.options.join_leave:
            await self._joined(channel)
        return result

    async def unsubscribe(self, name: str) -> dict:
        channel = self._channel(name)
        if channel.name not in self.subscriptions:
            raise TidingsError(ErrorCode.NOT_SUBSCRIBED, f"not subscribed to {name}")
        await self._leave(channel)
        return {"channel": channel.name}

    async def publish(self, name: str, data: bytes, *, source: str | None = None,
                      idempotency_key: str | None = None) -> dict:
        channel = self._channel(name)
        await self.node.access.check_publish(self, channel, data)
        return await self._publish(channel, data, source, idempotency_key)

    async def send(self, user: str, data: bytes, *, idempotency_key: str | None = None) -> dict:
        if not valid_user_id(user):
            raise TidingsError(ErrorCode.BAD_REQUEST, "send: 'user' is not a valid user id")
        channel = self.node.channel(user_channel(user))
        await self.node.access.check_publish(self, channel, data)
        return await self._publish(channel, data, None, idempotency_key)

    async def _publish(self, channel: Channel, data: bytes, source: str | None,
                       idempotency_key: str | None = None) -> dict:
        # a client's keys are its user's own: another user's identical key is another key
        # (user ids hold no space, so the first space ends the user id)
        key = f"user:{self.user} {idempotency_key}" if idempotency_key is not None else None
        try:
            pub = await self.node.publish(channel, data, source=source, sender=self.user,
                                          idempotency_key=key)
        except (StoreError, BrokerError) as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"publish failed: {exc}") from None
        return _position(pub)

    async def history(self, name: str, *, limit: int, since: int | None, reverse: bool) -> dict:
        channel = self._channel(name)
        self._check_read(channel)
        if not channel.options.stored:
            raise TidingsError(ErrorCode.BAD_CHANNEL, f"{channel.namespace} keeps no history")
        try:
            page = await self.node.store.history(channel.name, limit=limit, since=since,
                                                 reverse=reverse)
        except StoreError as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"history failed: {exc}") from None
        return {
            "channel": channel.name,
            "offset": page.position.offset,
            "epoch": page.position.epoch,
            "publications": [pub.to_dict() for pub in page.publications],
        }

    async def presence(self, name: str) -> dict:
        channel = self._channel(name)
        self._check_read(channel)
        if not channel.options.presence:
            raise TidingsError(ErrorCode.BAD_CHANNEL, f"{channel.namespace} has no presence")
        try:
            clients = await self.node.broker.presence(channel.name)
        except BrokerError as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, f"presence failed: {exc}") from None
        return {"channel": channel.name, "clients": {c.client: c.to_dict() for c in clients}}

    # ---- the message center (this user's own inbox only) -------------------------------

    async def inbox(self, *, source: str | None = None, before: int | None = None,
                    limit: int = 10) -> dict:
        """Counts and newest messages per source, or one source's page when `source` is set."""
        if source is None:
            return await self.node.inbox.view(self.user, limit=limit)
        return await self.node.inbox.page(self.user, source, before=before, limit=limit)

    async def read(self, *, offset: int | None = None, source: str | None = None,
                   upto: int | None = None, everything: bool = False,
                   shared: bool = False) -> dict:
        """Mark one message, a source (up to an offset), or everything read."""
        return await self._change(read_change(offset, source, upto, everything, shared))

    async def unread(self, offset: int) -> dict:
        return await self._change(ReadChange("unread", offset))

    async def mark_seen(self, *, source: str | None = None) -> dict:
        """The `seen` command: clear the badge (of one source, or all) without reading.

        (Named apart from `seen()`, which records that the client is alive.)
        """
        return await self._change(ReadChange("seen", source=source))

    async def archive(self, offset: int) -> dict:
        return await self._change(ReadChange("archive", offset))

    async def _change(self, change: ReadChange) -> dict:
        return await self.node.inbox.change(self.user, change, origin=self.client)

    # ---- helpers ---------------------------------------------------------------------

    def _channel(self, name: str) -> Channel:
        try:
            return self.node.channel(name)
        except ChannelError as exc:
            raise TidingsError(ErrorCode.BAD_CHANNEL, str(exc)) from None

    def _check_read(self, channel: Channel) -> None:
        """May this session read the channel's history and presence (tidings.access)?"""
        self.node.access.check_read(self, channel)

    def admit_command(self) -> None:
        """Every protocol handler asks this once per inbound command, before running it."""
        if self.commands.take():
            return
        self.node.metrics.count(self.node.metrics.refused, "command_rate")
        security = self.node.settings.security
        limit = f"over {security.command_rate:g} commands/s (burst {security.command_burst})"
        if self.commands.flooding:
            raise TidingsError(ErrorCode.RATE_LIMITED, f"command flood: {limit} and still sending",
                               close=CloseCode.COMMAND_FLOOD)
        raise TidingsError(ErrorCode.RATE_LIMITED,
                           f"{limit}: retry in {self.commands.retry_after() * 1000:.0f} ms")

    def token_ids(self) -> set[str]:
        ids = {grant.jti for grant in self.grants.values() if grant.jti}
        if self.jti:
            ids.add(self.jti)
        return ids

    def _update_expiry(self) -> None:
        times = [grant.expires for grant in self.grants.values()]
        if self._token_expires is not None:
            times.append(self._token_expires)
        expires = min(times) if times else None
        if expires is not None and (self.expires is None or expires < self.expires):
            self.node.wake(self)  # it may now end before its next look
        self.expires = expires

    def _info(self) -> ClientInfo:
        return ClientInfo(self.client, self.user, self.node.name, self.meta)

    async def _joined(self, channel: Channel) -> None:
        try:
            if channel.options.presence:
                await self.node.presence_add(channel.name, self._info())
            if channel.options.join_leave:
                await self.node.announce(JOIN, channel.name, self._info())
        except BrokerError as exc:
            log.warning("join of %s to %s not announced: %s", self.client, channel.name, exc)

    async def _leave(self, channel: Channel) -> None:
        self.subscriptions.discard(channel.name)
        if self.grants.pop(channel.name, None) is not None:
            self._update_expiry()
        self.node.hub.unsubscribe(self, channel.name)
        try:
            if channel.options.presence:
                await self.node.presence_remove(channel.name, self.client)
            if channel.options.join_leave:
                await self.node.announce(LEAVE, channel.name, self._info())
        except BrokerError as exc:
            log.warning("leave of %s from %s not announced: %s", self.client, channel.name, exc)

    async def cleanup(self) -> None:
        """After the socket is gone: drop every subscription, presence entry and registration."""
        self.closed = True
        self.peer.leave()
        for name in list(self.subscriptions):
            await self._leave(self.node.channel(name))
        self.node.detach(self)


def read_change(offset: int | None, source: str | None, upto: int | None,
                everything: bool, shared: bool = False) -> ReadChange:
    """The one shape of `read` the parameters name, or BAD_REQUEST (the API uses it too)."""
    if shared:
        if everything or offset is not None or source is None:
            raise TidingsError(ErrorCode.BAD_REQUEST, "read: shared notifications are read "
                                                      "by 'source' (with 'upto' or without)")
        return ReadChange("read", source=source, upto=upto, shared=True)
    if everything and (offset, source, upto) == (None, None, None):
        return ReadChange("read")
    if not everything and offset is not None and (source, upto) == (None, None):
        return ReadChange("read", offset=offset)
    if not everything and offset is None and source is not None:
        return ReadChange("read", source=source, upto=upto)
    raise TidingsError(ErrorCode.BAD_REQUEST, "read: give 'offset', or 'source' (with 'upto' "
                                              "or without), or 'all': true")


def _position(pub: Publication) -> dict:
    return {"offset": pub.offset, "epoch": pub.epoch} if pub.offset else {}


def _may_reconnect(code: int) -> bool:
    """4000-4499 and a server error: reconnect. Anything else would fail the same way again."""
    return 4000 <= code < 4500 or code == CloseCode.SERVER_ERROR
