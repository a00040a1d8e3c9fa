"""Kafka ingest (aiokafka): a topic read by a consumer group, offsets committed by hand.

Every node joins the group `group`; Kafka gives each partition to one of them and moves
partitions when a node joins or leaves (a rebalance). The consumer takes batches of at
most half `max_in_flight` records, two at a time (one is stored while the next is
fetched), stores each in one go, and only then commits the offsets after it, in the order
the batches were read, so a node killed mid-batch leaves those offsets
uncommitted and the next owner of the partition reads the records again (idempotency keys
make that harmless). A record the store could not take stops its partition's commit there
and the consumer seeks back to it. Poison is produced to the dead-letter topic with
`tidings-reason` and `tidings-detail` headers, and waited for, before the offset moves on.

The topic and the dead-letter topic are created (admin client, `partitions` and
`replication_factor`) when missing, so a first start needs no setup; existing topics are
left as they are.

URL: `kafka://host:9092[,host2:9092]`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from tidings.config import IngestSource as SourceConfig
from tidings.ingest.base import (
    PULLERS,
    RETRY_DELAY,
    Delivery,
    Handler,
    IngestSource,
    batch_size,
)


TOPIC_EXISTS = 36  # Kafka's TOPIC_ALREADY_EXISTS error code
log = logging.getLogger("tidings.ingest")


def bootstrap_servers(url: str) -> str:
    return urlsplit(url).netloc


async def ensure_topics(servers: str, config: SourceConfig) -> None:
    """Create the source topic and its dead-letter topic unless they exist.

    A broker that refuses (no CREATE permission, a policy) is logged, not fatal: topics an
    operator made, or a broker that creates them on first use, work as well.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="tidings-ingest-admin")
    await admin.start()
    try:
        response = await admin.create_topics([
            NewTopic(name, num_partitions=config.partitions,
                     replication_factor=config.replication_factor)
            for name in (config.queue, config.dead_letter_name)])
    finally:
        await admin.close()
    for topic, code, message in response.topic_errors:
        if code not in (0, TOPIC_EXISTS):
            log.warning("ingest: cannot create Kafka topic %s: error %s (%s); create it",
                        topic, code, message)


class KafkaDelivery(Delivery):
    def __init__(self, record: ConsumerRecord, producer: AIOKafkaProducer, dead_topic: str,
                 source: str):
        self.record = record
        self.body = record.value
        self.where = f"{record.topic}[{record.partition}]@{record.offset}"
        if record.timestamp is not None and record.timestamp > 0:
            self.queued_at = record.timestamp / 1000
        self.retried = False
        self._producer = producer
        self._dead_topic = dead_topic
        self._source = source

    async def ack(self) -> None:
        """Nothing yet: the batch's offsets are committed once every record is settled."""

    async def dead_letter(self, reason: str, detail: str) -> None:
        headers = list(self.record.headers or ()) + [
            ("tidings-reason", reason.encode()), ("tidings-detail", detail[:1000].encode()),
            ("tidings-source", self._source.encode()), ("tidings-origin", self.where.encode())]
        await self._producer.send_and_wait(self._dead_topic, self.record.value,
                                           key=self.record.key, headers=headers)

    async def retry(self) -> None:
        self.retried = True


class KafkaSource(IngestSource):
    async def _consume(self, handle: Handler, connected: Callable[[], None]) -> None:
        config = self.config
        servers = bootstrap_servers(config.url)
        await ensure_topics(servers, config)
        consumer = AIOKafkaConsumer(
            config.queue, bootstrap_servers=servers, group_id=config.group,
            client_id=f"tidings-{self.node}", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=config.max_in_flight,
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000,
            metadata_max_age_ms=5_000,  # a topic created after the start is seen within 5 s
        )
        producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all",
                                    client_id=f"tidings-{self.node}-dead-letter")
        await producer.start()
        try:
            await consumer.start()
            connected()
            in_flight: deque[tuple[asyncio.Task, list[KafkaDelivery]]] = deque()
            rewound: set[TopicPartition] = set()  # sought back since in-flight batches were read
            try:
                while True:
                    if in_flight and (len(in_flight) >= PULLERS or in_flight[0][0].done()):
                        task, deliveries = in_flight.popleft()
                        await task
                        rewound |= await self._commit(consumer, deliveries, rewound)
                        if not in_flight:
                            rewound.clear()
                        continue
                    batches = await consumer.getmany(
                        timeout_ms=20 if in_flight else 1000,
                        max_records=batch_size(config.max_in_flight))
                    deliveries = [KafkaDelivery(record, producer, config.dead_letter_name,
                                                self.name)
                                  for records in batches.values() for record in records]
                    if deliveries:  # stored while the next batch is fetched
                        in_flight.append((asyncio.create_task(handle(deliveries)), deliveries))
            finally:
                for task, _ in in_flight:
                    task.cancel()
        finally:
            await consumer.stop()  # leaves the group: its partitions move at once
            await producer.stop()

    async def _commit(self, consumer: AIOKafkaConsumer, deliveries: list[KafkaDelivery],
                      rewound: set[TopicPartition]) -> set[TopicPartition]:
        """Commit each partition up to its first unsettled record; seek back to that one.

        Partitions in `rewound` were sought back while this batch was in flight: their
        records are read again, so nothing of them is committed here. Returns the
        partitions this batch seeks back.
        """
        upto: dict[TopicPartition, int] = {}
        rewind: dict[TopicPartition, int] = {}
        for delivery in deliveries:
            record = delivery.record
            tp = TopicPartition(record.topic, record.partition)
            if tp in rewind or tp in rewound:
                continue
            if delivery.retried:
                rewind[tp] = record.offset
            else:
                upto[tp] = record.offset + 1
        try:
            if upto:
                await consumer.commit(upto)
            if rewind:
                await asyncio.sleep(RETRY_DELAY)
                for tp, offset in rewind.items():
                    consumer.seek(tp, offset)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError):
            # the partitions moved to another node meanwhile: it reads the batch again
            return set()
        return set(rewind)
