"""Redis Cluster as the broker: sharded pub/sub, each channel on the master of its slot.

URL: `redis+cluster://host:7000[,host:7001...][?prefix=name]`: any reachable seed will do;
the masters and their slot ranges are read from it (CLUSTER SLOTS) at start.

Classic PUBLISH on a Redis Cluster is copied to every master over the cluster bus, so
the cluster's pub/sub capacity does not grow with its size. Sharded pub/sub (Redis 7:
SPUBLISH/SSUBSCRIBE) keeps a channel's messages on the master owning its hash slot. Every
name a channel uses carries the channel as its hash tag (`<prefix>:c:{<channel>}`,
`<prefix>:presence:{<channel>}`, ...), so its messages and its presence live on one master,
and each node talks to that master directly over a `RedisBroker` of its own (one
subscriber connection per master, as sharded pub/sub requires).

The slot map is read once. Resharding or a failover moves slots to other masters: calls
for the moved channels then fail with MOVED (a BrokerError) until the nodes restart.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis.asyncio as redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from tidings.broker.base import BrokerError
from tidings.broker.redis import CONNECT_TIMEOUT, COMMAND_TIMEOUT, RedisBroker
from tidings.broker.sharded import ShardedBroker, split_hosts


class RedisClusterBroker(ShardedBroker):
    def __init__(self, url: str, node: str, **options):
        super().__init__(node, **options)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = query.get("prefix", "tidings")
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("redis: a cluster prefix may not hold '{' or '}' (hash tags)")
        self.query = urlencode(query)
        self.seeds = [urlsplit(seed) for seed in
                      split_hosts(parts._replace(scheme="redis", query="").geturl())]
        self._options = options

    async def _masters(self) -> list[tuple[int, int, str, int]]:
        """(first slot, last slot, host, port) of every slot range, from the first seed that
        answers."""
        errors = []
        for seed in self.seeds:
            client = redis.Redis(host=seed.hostname or "127.0.0.1", port=seed.port or 6379,
                                 username=seed.username, password=seed.password,
                                 socket_connect_timeout=CONNECT_TIMEOUT,
                                 socket_timeout=COMMAND_TIMEOUT)
            try:
                slots = await client.execute_command("CLUSTER SLOTS")
            except (RedisError, OSError) as exc:
                errors.append(f"{seed.netloc}: {exc}")
                continue
            finally:
                await client.aclose()
            return sorted((first, last, _text(master[0]) or seed.hostname, int(master[1]))
                          for first, last, master, *_ in slots)
        raise BrokerError(f"redis cluster: no seed answered ({'; '.join(errors)})")

    async def _open_shards(self) -> tuple[list[RedisBroker], Callable[[str], int]]:
        ranges = await self._masters()
        if not ranges:
            raise BrokerError("redis cluster: the cluster has no slots assigned")
        addresses = sorted({(host, port) for _, _, host, port in ranges})
        auth = self.seeds[0]
        userinfo = auth.netloc.rpartition("@")[0]
        shards = [RedisBroker(f"redis://{userinfo + '@' if userinfo else ''}{host}:{port}/0"
                              f"?{self.query}", self.node, shard=True, **self._options)
                  for host, port in addresses]
        firsts = [first for first, *_ in ranges]
        owners = [addresses.index((host, port)) for _, _, host, port in ranges]
        template = shards[0]

        def owner(name: str) -> int:
            slot = key_slot(template._name(name))
            return owners[bisect.bisect_right(firsts, slot) - 1]

        return shards, owner


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
