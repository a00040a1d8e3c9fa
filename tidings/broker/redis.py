"""Redis broker: pub/sub for live traffic, sorted sets with expiry scores for cluster state.

URL: `redis://host:6379/0`, optionally `?prefix=name` (default `tidings`) to keep several
clusters, or test runs, apart on one Redis; the parameter is removed before connecting.

Live delivery: each Tidings channel is the Redis channel `<prefix>:c:<channel>` (Redis
channel names are binary-safe, so nothing needs escaping); a node SUBSCRIBEs only to the
channels its sessions need. The subscriptions live on one dedicated connection that this
module drives itself (RESP2, no redis-py PubSub object, whose silent reconnect would hide
the hole in the live path from the node). A PING sent right after a SUBSCRIBE batch is
answered after every confirmation of the batch, so `_subscribe_many` returns once Redis
really delivers those channels. A PING every few seconds catches a connection that died
without a word. Plain PUBLISH/SUBSCRIBE on a standalone Redis. As one master of a Redis
Cluster (`shard=True`, made by `sharded.py`), the sharded SPUBLISH/SSUBSCRIBE instead, and
every name carries the channel as its hash tag (`<prefix>:c:{<channel>}`,
`<prefix>:presence:{<channel>}`), so a channel's messages and presence live on the one
master that owns its slot and never cross the cluster bus.

Publishing goes over a small pool of other connections, pipelined: everything published
while one pipeline is in flight goes out in the next one, in order. While Redis is
unreachable a publish fails within the connect timeout (2 s) instead of waiting.

Reconnection (see `reconnect.py`): 0.1 s doubling to 5 s, then every wanted channel is
subscribed again and the node is told, so its hub reads what was lost from the store.

Cluster state expires by score: a presence entry or a node's line is a sorted-set member
whose score is its expiry time in ms, with the details in a hash beside it. Scores come
from Redis's own clock (the TIME command inside small Lua scripts), so nodes whose clocks
disagree still agree on who is alive. Every heartbeat pushes the scores forward; a reader
prunes the expired members and reads the rest in one atomic script. A killed node's
entries are gone within `ttl`; the keys themselves expire when nobody refreshes them.
Presence entries added or removed while such a write is under way go out together in the
next pipeline (`tidings.coalesce`): thousands of clients joining at once cost a few round
trips, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisError

from tidings.broker.base import Broker, BrokerError
from tidings.broker.reconnect import Reconnector
from tidings.coalesce import CoalescedCalls
from tidings.model import ClientInfo, NodeInfo
from tidings.supervision import cancel_and_wait

log = logging.getLogger("tidings.broker.redis")

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0  # also bounds a subscription round trip and a health ping
HEALTH_INTERVAL = 5.0
MAX_CONNECTIONS = 8  # for publishing and cluster state; callers wait for a free one
BATCH = 1000  # Lua's unpack() takes a few thousand values at most

# KEYS: sorted set, hash. ARGV: ttl in ms, key lifetime in s, then member/value pairs.
_TOUCH = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], expires, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: sorted set, hash. Drops expired members, returns the values of the live ones.
_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 1, #expired, %(batch)d do
  redis.call('HDEL', KEYS[2], unpack(expired, i, math.min(i + %(batch)d - 1, #expired)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local alive = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local values = {}
for i = 1, #alive, %(batch)d do
  local part = redis.call('HMGET', KEYS[2], unpack(alive, i, math.min(i + %(batch)d - 1, #alive)))
  for _, value in ipairs(part) do
    if value then values[#values + 1] = value end
  end
end
return values
""" % {"batch": BATCH}


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", "tidings")
    return urlunsplit(parts._replace(query=urlencode(query))), prefix


class RedisBroker(Broker):
    def __init__(self, url: str, node: str, *, shard: bool = False, **options):
        super().__init__(node, **options)
        self.url, self.prefix = _split(url)
        self.shard = shard  # one master of a Redis Cluster: sharded pub/sub, hash-tagged names
        self._open_tag, self._close_tag = ("{", "}") if shard else ("", "")
        self._channel_prefix = f"{self.prefix}:c:{self._open_tag}".encode()
        self._channel_suffix = len(self._close_tag)
        self._commands = ((b"smessage", "SSUBSCRIBE", "SUNSUBSCRIBE", "SPUBLISH") if shard
                          else (b"message", "SUBSCRIBE", "UNSUBSCRIBE", "PUBLISH"))
        # CLIENT LIST shows it; Redis refuses names with spaces or control characters.
        name = re.sub(r"[^!-~]", "_", f"tidings-{node}")
        common = {"protocol": 2, "client_name": name, "socket_connect_timeout": CONNECT_TIMEOUT,
                  "socket_keepalive": True}
        # The subscriber connection waits for messages as long as it takes (redis-py 8 would
        # time its reads out after 5 s); the health ping notices a dead one.
        self._subscriber_pool = redis.ConnectionPool.from_url(self.url, socket_timeout=None,
                                                              **common)
        self._client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            self.url, max_connections=MAX_CONNECTIONS, timeout=COMMAND_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT, retry=Retry(NoBackoff(), 0), **common,
        ))
        self._touch = self._client.register_script(_TOUCH)
        self._live_values = self._client.register_script(_LIVE)
        self._presence_adds: CoalescedCalls[tuple[str, str, bytes], None] = CoalescedCalls(
            self._add_presence)
        self._presence_removes: CoalescedCalls[tuple[str, str], None] = CoalescedCalls(
            self._remove_presence)
        self._sub: AbstractConnection | None = None  # the subscriber connection, while up
        self._sub_tasks: list[asyncio.Task] = []
        self._pongs: deque[asyncio.Future] = deque()
        self._outgoing: list[tuple[bytes, bytes, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None
        self._reconnector = Reconnector("redis", self._open, self._reconnected, self.supervisor)

    def _name(self, channel: str) -> bytes:
        return self._channel_prefix + channel.encode() + self._close_tag.encode()

    # ---- the subscriber connection ---------------------------------------------------

    async def _connect(self) -> None:
        await self._open()

    async def _open(self) -> None:
        await self._drop()
        conn = self._subscriber_pool.make_connection()
        try:
            await asyncio.wait_for(conn.connect(), COMMAND_TIMEOUT)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            if isinstance(exc, (RedisError, OSError, asyncio.TimeoutError)):
                raise BrokerError(f"redis: cannot connect to {self.url}: {exc}") from exc
            raise
        self._sub = conn

        def escalate(exc: BaseException) -> None:  # a reader that failed: new connection
            self._lost(conn, exc)

        self._sub_tasks = [
            self.supervisor.spawn("redis-reader", lambda: self._read(conn), on_failure=escalate),
            self.supervisor.spawn("redis-health", lambda: self._watch(conn), on_failure=escalate),
        ]

    @property
    def connected(self) -> bool:
        return self._sub is not None and not self._reconnector.running

    async def _drop(self) -> None:
        """Let go of the subscriber connection and everything waiting on it."""
        conn, self._sub = self._sub, None
        self._fail_pongs("connection closed")
        for task in self._sub_tasks:
            task.cancel()
        self._sub_tasks = []
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _disconnect(self) -> None:
        await self._reconnector.close()
        await self._drop()
        if self._sender is not None:
            await cancel_and_wait([self._sender])
        await self._client.aclose()
        await self._subscriber_pool.disconnect()

    def _lost(self, conn: AbstractConnection, reason: object) -> None:
        if conn is not self._sub:
            return  # an old connection's last words
        self._sub = None
        self._fail_pongs(reason)
        self._reconnector.lost(reason)

    def _fail_pongs(self, reason: object) -> None:
        while self._pongs:
            waiter = self._pongs.popleft()
            if not waiter.done():
                waiter.set_exception(BrokerError(f"redis: connection lost: {reason}"))

    async def _read(self, conn: AbstractConnection) -> None:
        """Take replies until the connection fails; anything else escalates (see _open)."""
        try:
            while True:
                self._take(await conn.read_response())
        except (RedisError, OSError) as exc:
            self._lost(conn, exc)

    def _take(self, reply: object) -> None:
        if isinstance(reply, list):
            kind = reply[0]
            if kind == self._commands[0]:
                name = reply[1][len(self._channel_prefix):len(reply[1]) - self._channel_suffix]
                self._deliver(name.decode(), reply[2])
            elif kind == b"pong":
                self._pong()
            # subscribe/unsubscribe confirmations: the PING behind them says it all
        elif reply == b"PONG":  # a connection with no subscriptions answers plainly
            self._pong()

    def _pong(self) -> None:
        if self._pongs:
            waiter = self._pongs.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def _watch(self, conn: AbstractConnection) -> None:
        """Ping now and then; a connection that does not answer is closed, so it reconnects."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            try:
                await self._round_trip(conn)
            except BrokerError:
                await conn.disconnect(nowait=True)  # the reader sees it and reports the loss
                return

    async def _round_trip(self, conn: AbstractConnection | None,
                          *commands: tuple[object, ...]) -> None:
        """Send `commands` (if any) and a PING on the subscriber connection; wait for the PONG.

        Redis answers in order, so the PONG means every reply to `commands` is in.
        """
        if conn is None or conn is not self._sub or not conn.is_connected:
            raise BrokerError("redis: not connected")
        waiter = asyncio.get_running_loop().create_future()
        self._pongs.append(waiter)
        try:
            await conn.send_packed_command(conn.pack_commands([*commands, ("PING",)]),
                                           check_health=False)
            await asyncio.wait_for(waiter, COMMAND_TIMEOUT)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"redis: {commands[0][0] if commands else 'PING'} failed: "
                              f"{exc or type(exc).__name__}") from exc

    def _by_slot(self, command: str, channels: list[str]) -> list[tuple[object, ...]]:
        """One command for all channels; on a cluster master one per hash slot, as
        SSUBSCRIBE and SUNSUBSCRIBE take only channels of one slot."""
        names = [self._name(channel) for channel in channels]
        if not self.shard:
            return [(command, *names)]
        slots: dict[int, list[bytes]] = {}
        for name in names:
            slots.setdefault(key_slot(name), []).append(name)
        return [(command, *group) for group in slots.values()]

    # ---- live delivery ---------------------------------------------------------------

    async def _subscribe_many(self, channels: list[str]) -> None:
        await self._round_trip(self._sub, *self._by_slot(self._commands[1], channels))

    async def _unsubscribe_many(self, channels: list[str]) -> None:
        if self._sub is not None:  # a lost connection has unsubscribed everything anyway
            await self._round_trip(self._sub, *self._by_slot(self._commands[2], channels))

    async def _publish(self, channel: str, payload: bytes) -> None:
        done = asyncio.get_running_loop().create_future()
        self._outgoing.append((self._name(channel), payload, done))
        if self._sender is None or self._sender.done():
            # a failure is counted; its waiters are told, and the next publish starts anew
            self._sender = self.supervisor.spawn("redis-publisher", self._send_outgoing,
                                                 on_failure=lambda exc: None)
        await done

    async def _send_outgoing(self) -> None:
        """One pipeline per burst over one pooled connection, in publish order."""
        batch: list[tuple[bytes, bytes, asyncio.Future]] = []
        try:
            while self._outgoing:
                batch, self._outgoing = self._outgoing, []
                pipe = self._client.pipeline(transaction=False)
                for name, payload, _ in batch:
                    pipe.execute_command(self._commands[3], name, payload)
                try:
                    await pipe.execute()
                except (RedisError, OSError) as exc:
                    _settle(batch, BrokerError(f"redis: publish failed: {exc}"))
                else:
                    _settle(batch, None)
        finally:  # cancelled by close(): nobody may wait forever
            _settle(batch + self._outgoing, BrokerError("redis: broker closed"))
            self._outgoing = []

    # ---- cluster state ---------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _presence_keys(self, channel: str) -> list[str]:
        tagged = f"{self._open_tag}{channel}{self._close_tag}"
        return [self._key("presence", tagged), self._key("presence-info", tagged)]

    def _node_keys(self) -> list[str]:
        return [self._key(f"{self._open_tag}nodes{self._close_tag}"),
                self._key(f"{self._open_tag}nodes{self._close_tag}", "info")] if self.shard \
            else [self._key("nodes"), self._key("node-info")]

    def _touch_args(self, pairs: list[tuple[str, bytes]]) -> list:
        keep = int(self.ttl * 2) + 1  # seconds the keys outlive their last refresh
        return [int(self.ttl * 1000), keep, *(item for pair in pairs for item in pair)]

    async def _run(self, pipe) -> list:
        try:
            return await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"redis: {exc}") from exc

    async def heartbeat(self, node: NodeInfo | None,
                        presence: dict[str, list[ClientInfo]]) -> None:
        """As the contract says; `node` None refreshes only presence (a shard of many)."""
        pipe = self._client.pipeline(transaction=False)
        if node is not None:
            await self._touch(keys=self._node_keys(),
                              args=self._touch_args([(node.name, orjson.dumps(node.to_dict()))]),
                              client=pipe)
        for channel, clients in presence.items():
            await self._touch_presence(pipe, channel, [(c.client, orjson.dumps(c.to_dict()))
                                                       for c in clients])
        await self._run(pipe)

    async def _touch_presence(self, pipe, channel: str, pairs: list[tuple[str, bytes]]) -> None:
        """Queue on `pipe` the refresh of `channel`'s (client, info) entries, in scripts of
        at most BATCH entries."""
        for start in range(0, len(pairs), BATCH):
            await self._touch(keys=self._presence_keys(channel),
                              args=self._touch_args(pairs[start:start + BATCH]), client=pipe)

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        """Written together with every other entry added meanwhile (a reconnect storm
        joining thousands of clients costs a few pipelines, not a round trip each)."""
        await self._presence_adds.get((channel, client.client, orjson.dumps(client.to_dict())))

    async def _add_presence(self, entries: list[tuple[str, str, bytes]]) -> dict:
        by_channel: dict[str, list[tuple[str, bytes]]] = {}
        for channel, client, info in entries:
            by_channel.setdefault(channel, []).append((client, info))
        pipe = self._client.pipeline(transaction=False)
        for channel, pairs in by_channel.items():
            await self._touch_presence(pipe, channel, pairs)
        await self._run(pipe)
        return dict.fromkeys(entries)

    async def presence_remove(self, channel: str, client: str) -> None:
        """Removed together with every other entry removed meanwhile, as adds are."""
        await self._presence_removes.get((channel, client))

    async def _remove_presence(self, entries: list[tuple[str, str]]) -> dict:
        by_channel: dict[str, list[str]] = {}
        for channel, client in entries:
            by_channel.setdefault(channel, []).append(client)
        pipe = self._client.pipeline(transaction=False)
        for channel, clients in by_channel.items():
            members, info = self._presence_keys(channel)
            pipe.zrem(members, *clients)
            pipe.hdel(info, *clients)
        await self._run(pipe)
        return dict.fromkeys(entries)

    async def _live(self, keys: list[str]) -> list[bytes]:
        try:
            return await self._live_values(keys=keys)
        except (RedisError, OSError) as exc:
            raise BrokerError(f"redis: {exc}") from exc

    async def presence(self, channel: str) -> list[ClientInfo]:
        values = await self._live(self._presence_keys(channel))
        return [ClientInfo.from_dict(orjson.loads(value)) for value in values]

    async def nodes(self) -> list[NodeInfo]:
        values = await self._live(self._node_keys())
        return [NodeInfo.from_dict(orjson.loads(value)) for value in values]


def _settle(batch: list[tuple[bytes, bytes, asyncio.Future]], error: Exception | None) -> None:
    for *_, done in batch:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
