"""Redis broker: pub/sub for live traffic, sorted sets with expiry scores for cluster state.

URL: `redis://host:6379/0`, optionally `?prefix=name` (default `tidings`) to keep several
clusters, or test runs, apart on one Redis.

Live delivery: each Tidings channel is the Redis channel `<prefix>:c:<channel>`; a node
SUBSCRIBEs only to the channels its sessions need. One dedicated connection carries the
subscriptions; a PING sent after a SUBSCRIBE batch comes back after every confirmation of
the batch, so `_subscribe_many` returns once Redis really delivers those channels.

Reconnection is done here, not by redis-py, so the node learns about it: while the
connection is down, publications are lost, and after `_reconnected()` the node's hub reads
them back from the store.

Cluster state expires by score: a presence entry or a node's line is a sorted-set member
whose score is its expiry time (ms); every heartbeat pushes the scores forward, readers
ignore and prune members whose time has passed. A killed node's entries are gone within
`ttl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tidings.broker.base import Broker, BrokerError
from tidings.model import ClientInfo, NodeInfo

log = logging.getLogger("tidings.broker.redis")

MAX_BACKOFF = 5.0
MAX_CONNECTIONS = 8  # callers wait for a free connection rather than fail


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", "tidings")
    return urlunsplit(parts._replace(query=urlencode(query))), prefix


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisBroker(Broker):
    def __init__(self, url: str, node: str, **options):
        super().__init__(node, **options)
        self.url, self.prefix = _split(url)
        self._channel_prefix = f"{self.prefix}:c:".encode()
        self._client: redis.Redis | None = None
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._pongs: list[asyncio.Future] = []
        self._outgoing: list[tuple[bytes, bytes, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None
        self._closing = False

    def _redis(self) -> redis.Redis:
        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=MAX_CONNECTIONS, timeout=5, socket_connect_timeout=2,
            socket_timeout=5, retry=Retry(NoBackoff(), 0),
        )
        return redis.Redis(connection_pool=pool)

    def _name(self, channel: str) -> bytes:
        return self._channel_prefix + channel.encode()

    # ---- connection ------------------------------------------------------------------

    async def _connect(self) -> None:
        self._client = self._redis()
        try:
            await self._open_pubsub()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"redis: cannot connect to {self.url}: {exc}") from exc
        self._reader = asyncio.create_task(self._read_loop(), name="tidings-redis-reader")

    async def _open_pubsub(self) -> None:
        pubsub = self._redis().pubsub()
        await pubsub.connect()  # fails now if Redis is down
        self._pubsub = pubsub

    async def _disconnect(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def _read_loop(self) -> None:
        backoff = 0.1
        while not self._closing:
            try:
                if self._pubsub is None:
                    await self._open_pubsub()
                    log.info("redis connection restored")
                    backoff = 0.1
                    await self._reconnected()
                message = await self._pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._take(message)
            except (RedisError, OSError) as exc:
                if self._pubsub is not None:
                    log.warning("redis subscription connection lost: %s", exc)
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.aclose()
                    self._pubsub = None
                for waiter in self._pongs:
                    if not waiter.done():
                        waiter.set_exception(BrokerError(f"redis: connection lost: {exc}"))
                self._pongs.clear()
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    def _take(self, message: dict) -> None:
        kind = message["type"]
        if kind == "message":
            self._deliver(message["channel"][len(self._channel_prefix):].decode(),
                          message["data"])
        elif kind == "pong" and self._pongs:
            waiter = self._pongs.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    # ---- live delivery ---------------------------------------------------------------

    async def _publish(self, channel: str, payload: bytes) -> None:
        """Queue a PUBLISH; everything queued while one pipeline is in flight goes in the next.

        One connection, one round trip per burst, and the order of publishes kept, instead
        of a connection per concurrent publish.
        """
        done = asyncio.get_running_loop().create_future()
        self._outgoing.append((self._name(channel), payload, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_outgoing())
        await done

    async def _send_outgoing(self) -> None:
        while self._outgoing:
            batch, self._outgoing = self._outgoing, []
            pipe = self._client.pipeline(transaction=False)
            for name, payload, _ in batch:
                pipe.publish(name, payload)
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                error = BrokerError(f"redis: publish failed: {exc}")
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _confirmed(self, command: str, channels: list[str]) -> None:
        """Send (UN)SUBSCRIBE for `channels`, then wait until Redis has taken all of it."""
        if self._pubsub is None:
            raise BrokerError("redis: not connected")
        waiter = asyncio.get_running_loop().create_future()
        try:
            await getattr(self._pubsub, command)(*(self._name(c) for c in channels))
            self._pongs.append(waiter)
            await self._pubsub.ping()
            await asyncio.wait_for(waiter, 5.0)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"redis: {command} failed: {exc}") from exc

    async def _subscribe_many(self, channels: list[str]) -> None:
        await self._confirmed("subscribe", channels)

    async def _unsubscribe_many(self, channels: list[str]) -> None:
        if self._pubsub is not None:  # a lost connection has unsubscribed everything anyway
            await self._confirmed("unsubscribe", channels)

    # ---- cluster state ---------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _run(self, pipeline) -> list:
        try:
            return await pipeline.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"redis: {exc}") from exc

    def _add_presence(self, pipe, channel: str, client: ClientInfo, expires: int) -> None:
        members, info = self._key("presence", channel), self._key("presence-info", channel)
        pipe.zadd(members, {client.client: expires})
        pipe.hset(info, client.client, orjson.dumps(client.to_dict()))
        keep = int(self.ttl * 2) + 1
        pipe.expire(members, keep)
        pipe.expire(info, keep)

    async def heartbeat(self, node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> None:
        expires = _now_ms() + int(self.ttl * 1000)
        pipe = self._client.pipeline(transaction=False)
        pipe.zadd(self._key("nodes"), {node.name: expires})
        pipe.hset(self._key("node-info"), node.name, orjson.dumps(node.to_dict()))
        for channel, clients in presence.items():
            for client in clients:
                self._add_presence(pipe, channel, client, expires)
        await self._run(pipe)

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        pipe = self._client.pipeline(transaction=False)
        self._add_presence(pipe, channel, client, _now_ms() + int(self.ttl * 1000))
        await self._run(pipe)

    async def presence_remove(self, channel: str, client: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.zrem(self._key("presence", channel), client)
        pipe.hdel(self._key("presence-info", channel), client)
        await self._run(pipe)

    async def _live(self, members: str, info: str) -> list[bytes]:
        """Values of the members of `members` whose expiry is still ahead; prunes the rest."""
        now = _now_ms()
        pipe = self._client.pipeline(transaction=False)
        pipe.zrangebyscore(members, "-inf", now)
        pipe.zrangebyscore(members, now + 1, "+inf")
        expired, alive = await self._run(pipe)
        pipe = self._client.pipeline(transaction=False)
        if expired:
            pipe.zrem(members, *expired)
            pipe.hdel(info, *expired)
        if alive:
            pipe.hmget(info, alive)
        results = await self._run(pipe) if (expired or alive) else []
        return [value for value in (results[-1] if alive else []) if value is not None]

    async def presence(self, channel: str) -> list[ClientInfo]:
        values = await self._live(self._key("presence", channel),
                                  self._key("presence-info", channel))
        return [ClientInfo.from_dict(orjson.loads(value)) for value in values]

    async def nodes(self) -> list[NodeInfo]:
        values = await self._live(self._key("nodes"), self._key("node-info"))
        return [NodeInfo.from_dict(orjson.loads(value)) for value in values]
