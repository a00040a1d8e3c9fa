"""Several Redis servers as one broker: every channel lives on exactly one shard.

One Redis process carries every publication of a cluster and is where a growing
deployment hits its ceiling. Spreading channels over several Redis servers spreads that
work: a channel's publications, subscriptions and presence all go to the one shard that
owns the channel, so a direct message still costs one publish and one delivery to the one
node that holds the user, and each shard carries only its channels' traffic.

Two ways to own a channel, each in its own module's terms:
- independent Redis servers listed in one URL (`redis://h1:6379,h2:6379/0`), the channel
  given to a shard by jump consistent hashing of its name, as Centrifugo does
  (`RedisShards` here): adding a shard moves about 1/n of the channels;
- a Redis Cluster (`redis+cluster://seed:7000`), each channel owned by the master of its
  hash slot (`redis_cluster.py`), with sharded pub/sub.

Each shard is a full `RedisBroker` with its own connections and its own reconnect loop,
so losing one shard is a Redis restart for the channels on it and nothing for the others:
that shard resubscribes its channels when it is back, then the node compares every
channel with the store. Node liveness lives on one shard (the owner of the name
`nodes`): while it is down `/api/info` fails, as it does when a single Redis is down.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from tidings.broker.base import Broker
from tidings.broker.redis import RedisBroker
from tidings.model import ClientInfo, NodeInfo

NODES = "nodes"  # the name whose owner keeps node liveness


def _fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: a bucket in [0, buckets)."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_of(channel: str, shards: int) -> int:
    """The shard owning `channel` among `shards` independent servers (FNV-1a, jump hash)."""
    return jump_hash(_fnv1a64(channel.encode()), shards)


class ShardedBroker(Broker):
    """Routes every call for a channel to the shard that owns it.

    Subclasses provide the shards and the owner of a name (`_open_shards`).
    """

    def __init__(self, node: str, **options):
        super().__init__(node, **options)
        self.shards: list[RedisBroker] = []
        self._owner: Callable[[str], int] = lambda name: 0

    async def _open_shards(self) -> tuple[list[RedisBroker], Callable[[str], int]]:
        raise NotImplementedError

    def shard_for(self, channel: str) -> RedisBroker:
        return self.shards[self._owner(channel)]

    async def _connect(self) -> None:
        self.shards, self._owner = await self._open_shards()
        started = await asyncio.gather(
            *(shard.start(self._deliver, self._shard_reconnected) for shard in self.shards),
            return_exceptions=True,
        )
        failed = [outcome for outcome in started if isinstance(outcome, BaseException)]
        if failed:
            for shard, outcome in zip(self.shards, started):
                if not isinstance(outcome, BaseException):
                    await shard.close()
            raise failed[0]

    async def _disconnect(self) -> None:
        await asyncio.gather(*(shard.close() for shard in self.shards))

    async def _shard_reconnected(self) -> None:
        """One shard is back and has resubscribed its own channels: tell the node."""
        if self._on_reconnect is not None:
            await self._on_reconnect()

    def _by_shard(self, channels) -> dict[int, list[str]]:
        grouped: dict[int, list[str]] = defaultdict(list)
        for channel in channels:
            grouped[self._owner(channel)].append(channel)
        return grouped

    # ---- live delivery ---------------------------------------------------------------

    async def _subscribe_many(self, channels: list[str]) -> None:
        # each shard coalesces these into one round trip of its own
        await _all(self.shards[index].subscribe(channel)
                   for index, group in self._by_shard(channels).items() for channel in group)

    async def _unsubscribe_many(self, channels: list[str]) -> None:
        await _all(self.shards[index].unsubscribe(channel)
                   for index, group in self._by_shard(channels).items() for channel in group)

    async def _publish(self, channel: str, payload: bytes) -> None:
        await self.shard_for(channel).publish(channel, payload)

    # ---- cluster state ---------------------------------------------------------------

    async def heartbeat(self, node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> None:
        by_shard = self._by_shard(presence)
        home = self._owner(NODES)
        await _all(
            shard.heartbeat(node if index == home else None,
                            {channel: presence[channel] for channel in by_shard.get(index, [])})
            for index, shard in enumerate(self.shards)
            if index == home or index in by_shard
        )

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        await self.shard_for(channel).presence_add(channel, client)

    async def presence_remove(self, channel: str, client: str) -> None:
        await self.shard_for(channel).presence_remove(channel, client)

    async def presence(self, channel: str) -> list[ClientInfo]:
        return await self.shard_for(channel).presence(channel)

    async def nodes(self) -> list[NodeInfo]:
        return await self.shards[self._owner(NODES)].nodes()


async def _all(calls) -> None:
    """Run every call; if any failed, raise the first BrokerError once all are done."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def split_hosts(url: str) -> list[str]:
    """`redis://u:p@h1:1,h2:2/0?q` -> one URL per host, each with the same rest."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise ValueError(f"redis: no host in {url!r}")
    return [urlunsplit(parts._replace(netloc=f"{userinfo}@{host}" if userinfo else host))
            for host in hosts.split(",")]


class RedisShards(ShardedBroker):
    """Independent Redis servers; a channel's shard is its jump hash over the list."""

    def __init__(self, url: str, node: str, **options):
        super().__init__(node, **options)
        self.urls = split_hosts(url)
        self._shards = [RedisBroker(shard_url, node, **options) for shard_url in self.urls]

    async def _open_shards(self) -> tuple[list[RedisBroker], Callable[[str], int]]:
        count = len(self._shards)
        return self._shards, lambda name: shard_of(name, count)

