"""Ingest: backends' queues (RabbitMQ, Kafka, Redis Streams, NATS JetStream) as sources of
notifications for the message center. One module per system behind `base.IngestSource`."""

from __future__ import annotations

from tidings.config import IngestSource as SourceConfig
from tidings.ingest.base import Delivery, IngestSource
from tidings.ingest.intake import Intake

__all__ = ["Delivery", "IngestSource", "Intake", "open_source"]


def open_source(name: str, config: SourceConfig, node: str) -> IngestSource:
    """Build (not yet start) the source for one configured queue, by its URL's scheme."""
    kind = config.kind
    if kind in ("amqp", "amqps"):
        from tidings.ingest.amqp import AmqpSource

        return AmqpSource(name, config, node)
    if kind == "kafka":
        from tidings.ingest.kafka import KafkaSource

        return KafkaSource(name, config, node)
    if kind in ("redis", "rediss"):
        from tidings.ingest.redis import RedisStreamSource

        return RedisStreamSource(name, config, node)
    if kind in ("nats", "tls"):
        from tidings.ingest.jetstream import JetStreamSource

        return JetStreamSource(name, config, node)
    raise ValueError(f"ingest {name}: unknown scheme {kind!r}")
