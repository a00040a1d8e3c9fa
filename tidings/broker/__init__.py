"""Brokers, chosen by URL: memory://, redis:// (one server, or several as shards),
redis+cluster://, amqp://, nats://, kafka://."""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.broker.base import Broker, BrokerError

__all__ = ["Broker", "BrokerError", "open_broker"]


def open_broker(url: str, node: str, *, ttl: float = 15.0) -> Broker:
    """Build (not yet start) the broker a URL names; ValueError for an unknown scheme."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from tidings.broker.memory import MemoryBroker

        return MemoryBroker(node, ttl=ttl)
    if scheme in ("redis", "rediss"):
        if "," in urlsplit(url).netloc:  # several independent servers: shard by channel
            from tidings.broker.sharded import RedisShards

            return RedisShards(url, node, ttl=ttl)
        from tidings.broker.redis import RedisBroker

        return RedisBroker(url, node, ttl=ttl)
    if scheme == "redis+cluster":
        from tidings.broker.redis_cluster import RedisClusterBroker

        return RedisClusterBroker(url, node, ttl=ttl)
    if scheme in ("amqp", "amqps"):
        from tidings.broker.amqp import AmqpBroker

        return AmqpBroker(url, node, ttl=ttl)
    if scheme in ("nats", "tls"):
        from tidings.broker.nats import NatsBroker

        return NatsBroker(url, node, ttl=ttl)
    if scheme == "kafka":
        from tidings.broker.kafka import KafkaBroker

        return KafkaBroker(url, node, ttl=ttl)
    raise ValueError(
        f"unknown broker URL scheme {scheme!r}: use memory://, redis://, redis+cluster://, "
        "amqp://, nats:// or kafka://"
    )
