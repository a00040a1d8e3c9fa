"""Kafka broker: channels hashed onto the partitions of one topic; cluster state on a log.

URL: `kafka://host:9092[,host2:9092]` with optional query parameters (removed before
connecting):
- `prefix=name` (default `tidings`; letters, digits, `-`, `_`): the topics are
  `<prefix>-live` and `<prefix>-cluster`, so clusters or test runs stay apart;
- `partitions=64`: partitions of the live topic when Tidings creates it;
- `retention_ms=600000`: how long the live topic keeps messages (it only has to cover a
  reconnect: the store is the record);
- `fetch_wait_ms=10`: the longest a fetch waits for data. Kafka answers a waiting fetch as
  soon as data arrives, so there a large value costs no latency; tansu 0.6 holds every
  fetch for the whole wait, so the value is the live path's added latency on tansu.

Live routing. Channel `c` is a record with key `c` on partition `murmur2(c) % partitions`
of `<prefix>-live` (Kafka's own default partitioner, so a Java producer keyed by channel
lands on the same partition). A node assigns itself (no consumer group) exactly the
partitions that hold the channels it has subscribers for, from their current end, and
drops records of channels it does not want. `_subscribe_many` returns once the new
partitions' end offsets are fixed, so whatever is published after it is read. The price,
compared with Redis, RabbitMQ or NATS, is precision: a node reads every record of its
partitions, wanted or not (`read` counts them, `received` only the wanted ones); see
docs/decisions.md for the cost per node count.

Cluster state. Heartbeats and presence changes are records on `<prefix>-cluster` (one
partition, so one order for everyone), which every node reads from the beginning into a
`ClusterView`; an entry expires `ttl` after the record that last wrote it (the record's
own timestamp), so a dead node's presence and line vanish on their own. A read first asks
for the log's end offset and waits until the view has caught up with it, so a
`presence_add` acknowledged anywhere is seen by every later read.

Failures. Asking for the assigned partitions' end offsets every second notices a broker
that went away, or one that came back without its logs (tansu's memory storage); a failed
publish or heartbeat does too. Then the node's clients are thrown away and `reconnect.py`
builds new ones (0.1 s doubling to 5 s), creating the topics again if the broker lost
them, re-assigning every wanted channel's partition from its end and telling the node,
whose hub reads the gap from the store. While disconnected every call fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from tidings.broker.base import Broker, BrokerError
from tidings.broker.cluster_log import (
    ClusterView,
    add_record,
    heartbeat_records,
    hello_record,
    remove_record,
)
from tidings.broker.reconnect import Reconnector
from tidings.model import ClientInfo, NodeInfo

log = logging.getLogger("tidings.broker.kafka")

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
HEALTH_INTERVAL = 1.0
CLOSE_TIMEOUT = 2.0
TOPIC_EXISTS = 36  # Kafka's TOPIC_ALREADY_EXISTS error code
FAILURES = (KafkaError, OSError, asyncio.TimeoutError)
DEFAULTS = {"prefix": "tidings", "partitions": "64", "retention_ms": "600000",
            "fetch_wait_ms": "10"}


def partition_of(channel: str, partitions: int) -> int:
    """Kafka's default partitioner for the key `channel`."""
    return (murmur2(channel.encode()) & 0x7FFFFFFF) % partitions


class KafkaBroker(Broker):
    keeps_live = True  # the live topic keeps every record for retention_ms

    def __init__(self, url: str, node: str, **options):
        super().__init__(node, **options)
        parts = urlsplit(url)
        query = {**DEFAULTS, **dict(parse_qsl(parts.query))}
        unknown = set(query) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"kafka: unknown URL parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(DEFAULTS)}")
        self.prefix = query["prefix"]
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.prefix):
            raise ValueError(f"kafka: prefix {self.prefix!r} may hold only letters, digits, "
                             "'-' and '_'")
        try:
            self.partitions = int(query["partitions"])
            self.retention_ms = int(query["retention_ms"])
            self.fetch_wait_ms = int(query["fetch_wait_ms"])
        except ValueError as exc:
            raise ValueError(f"kafka: partitions, retention_ms and fetch_wait_ms are whole "
                             f"numbers ({exc})") from None
        if self.partitions < 1 or self.retention_ms < 1 or self.fetch_wait_ms < 0:
            raise ValueError("kafka: partitions and retention_ms must be positive, "
                             "fetch_wait_ms not negative")
        self.servers = parts.netloc.split(",") if parts.netloc else ["127.0.0.1:9092"]
        self.live_topic = f"{self.prefix}-live"
        self.cluster_topic = f"{self.prefix}-cluster"
        self._cluster_tp = TopicPartition(self.cluster_topic, 0)
        self._read = 0  # live records read, wanted or not: the cost of partition routing
        self._client_id = re.sub(r"[^A-Za-z0-9._-]", "_", f"tidings-{node}")
        self._admin: AIOKafkaAdminClient | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._up = False
        self._tasks: list[asyncio.Task] = []
        self._live_partitions = self.partitions  # as the topic really has them
        self._listening: set[str] = set()  # channels whose partitions are positioned
        self._next: dict[TopicPartition, int] = {}  # next offset to read per assigned tp
        self._view = ClusterView(self.ttl)
        self._progress = asyncio.Event()
        self._reconnector = Reconnector("kafka", self._open, self._reconnected)

    @property
    def read(self) -> int:
        return self._read

    @property
    def connected(self) -> bool:
        """False from a lost connection until the reconnect is done."""
        return self._up

    def partition(self, channel: str) -> int:
        return _cached_partition(channel, self._live_partitions)

    # ---- connection ------------------------------------------------------------------

    async def _connect(self) -> None:
        await self._open()

    async def _open(self) -> None:
        await self._drop()
        common = {"bootstrap_servers": self.servers, "client_id": self._client_id,
                  "request_timeout_ms": int(COMMAND_TIMEOUT * 1000),
                  "retry_backoff_ms": 100}
        admin = AIOKafkaAdminClient(**common)
        producer = AIOKafkaProducer(**common, linger_ms=0, acks=1)
        consumer = AIOKafkaConsumer(**common, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=self.fetch_wait_ms,
                                    auto_offset_reset="latest")
        try:
            start = await asyncio.wait_for(self._start(admin, producer, consumer),
                                           CONNECT_TIMEOUT + COMMAND_TIMEOUT)
        except BaseException as exc:
            await _stop_all(consumer, producer, admin)
            if isinstance(exc, FAILURES):
                raise BrokerError(f"kafka: cannot connect to {','.join(self.servers)}: "
                                  f"{exc!r}") from exc
            raise
        if self._live_partitions != self.partitions:
            log.warning("kafka: topic %s has %d partitions, not the %d asked for; using it "
                        "as it is", self.live_topic, self._live_partitions, self.partitions)
        self._admin, self._producer, self._consumer = admin, producer, consumer
        self._listening = set()
        self._next = {self._cluster_tp: start}
        self._view = ClusterView(self.ttl)
        self._up = True
        self._tasks = [
            asyncio.create_task(self._consume(consumer), name="tidings-kafka-consumer"),
            asyncio.create_task(self._watch(consumer), name="tidings-kafka-health"),
        ]

    async def _start(self, admin: AIOKafkaAdminClient, producer: AIOKafkaProducer,
                     consumer: AIOKafkaConsumer) -> int:
        """Start the clients, make the topics, say hello; the cluster log's first offset."""
        await admin.start()
        await self._ensure_topics(admin)
        await producer.start()
        self._live_partitions = len(await producer.partitions_for(self.live_topic))
        await consumer.start()
        consumer.assign([self._cluster_tp])
        await consumer.seek_to_beginning(self._cluster_tp)
        start = await consumer.position(self._cluster_tp)
        await (await producer.send(self.cluster_topic, hello_record(self.node), partition=0))
        return start

    async def _ensure_topics(self, admin: AIOKafkaAdminClient) -> None:
        """Create both topics (explicit partitions and retention) unless they exist."""
        keep_state_ms = str(max(60_000, int(self.ttl * 10_000)))
        topics = [
            NewTopic(self.live_topic, num_partitions=self.partitions, replication_factor=1,
                     topic_configs={"retention.ms": str(self.retention_ms),
                                    "cleanup.policy": "delete"}),
            NewTopic(self.cluster_topic, num_partitions=1, replication_factor=1,
                     topic_configs={"retention.ms": keep_state_ms,
                                    "segment.ms": keep_state_ms,
                                    "cleanup.policy": "delete"}),
        ]
        response = await admin.create_topics(topics)
        for topic, code, message in response.topic_errors:
            if code not in (0, TOPIC_EXISTS):
                raise BrokerError(f"kafka: cannot create topic {topic}: error {code} "
                                  f"({message})")

    async def _drop(self) -> None:
        """Let go of the clients and everything running on them."""
        self._up = False
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        clients = self._consumer, self._producer, self._admin
        self._consumer = self._producer = self._admin = None
        await _stop_all(*clients)

    async def _disconnect(self) -> None:
        await self._reconnector.close()
        await self._drop()

    def _lost(self, reason: object) -> None:
        if not self._up:
            return
        self._up = False
        self._reconnector.lost(reason)

    def _connected_consumer(self) -> AIOKafkaConsumer:
        if not self._up or self._consumer is None:
            raise BrokerError("kafka: not connected")
        return self._consumer

    def _connected_producer(self) -> AIOKafkaProducer:
        if not self._up or self._producer is None:
            raise BrokerError("kafka: not connected")
        return self._producer

    async def _watch(self, consumer: AIOKafkaConsumer) -> None:
        """Ask for the end offsets of the assigned partitions now and then.

        No answer within the command timeout is a lost connection (a refused or reset
        connection fails at once); so is an end before what this node has already read
        there, twice in a row, which means a broker that came back without its logs
        (tansu's memory storage): the topics must be made again and every channel
        compared with the store. Once is not enough: tansu sometimes reports an end one
        record short of what a fetch has just returned.
        """
        behind_before: set[TopicPartition] = set()
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            read = dict(self._next)
            try:
                ends = await asyncio.wait_for(consumer.end_offsets(list(read)),
                                              COMMAND_TIMEOUT)
            except FAILURES as exc:
                self._lost(f"no answer: {exc!r}")
                return
            behind = {tp for tp, offset in read.items() if ends.get(tp, offset) < offset}
            if behind & behind_before:
                self._lost("the broker lost its logs (restarted empty?): " + "; ".join(
                    f"{tp.topic}[{tp.partition}] ends at {ends[tp]}, read up to {read[tp]}"
                    for tp in sorted(behind & behind_before)))
                return
            behind_before = behind

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, records in batches.items():
                    self._take(tp, records)
                self._progress.set()
                self._progress = asyncio.Event()
        except asyncio.CancelledError:
            raise
        except FAILURES as exc:
            self._lost(exc)
        except Exception as exc:
            log.exception("kafka: unexpected failure reading the topics")
            self._lost(exc)

    def _take(self, tp: TopicPartition, records) -> None:
        expected = self._next.get(tp)
        if expected is None:
            return  # a partition let go of while its fetch was in flight
        for record in records:
            if record.offset < expected:
                continue  # read before a reassignment: already handled
            expected = record.offset + 1
            if tp.topic == self.cluster_topic:
                try:
                    self._view.apply(record.value, record.timestamp)
                except ValueError as exc:
                    log.warning("kafka: skipping a control record at offset %d: %s",
                                record.offset, exc)
                continue
            self._read += 1
            channel = record.key.decode() if record.key is not None else ""
            if channel in self._listening:
                self._deliver(channel, record.value)
        self._next[tp] = expected

    # ---- live delivery ---------------------------------------------------------------

    def _assignment_for(self, channels: set[str]) -> set[TopicPartition]:
        live = {TopicPartition(self.live_topic, self.partition(c)) for c in channels}
        return live | {self._cluster_tp}

    async def _reassign(self, consumer: AIOKafkaConsumer) -> None:
        """Assign the partitions `_listening` needs; keep the kept ones where they were."""
        wanted = self._assignment_for(self._listening)
        kept = wanted & set(self._next)
        added = wanted - kept
        consumer.assign(sorted(wanted))
        self._next = {tp: self._next[tp] for tp in kept}
        for tp in kept:  # assign() forgets positions; no await before they are back
            consumer.seek(tp, self._next[tp])
        if added:
            for tp in added:  # records may arrive before position() returns: take them
                self._next[tp] = 0
            await consumer.seek_to_end(*added)
            for tp in added:
                self._next[tp] = max(self._next[tp], await consumer.position(tp))

    async def _subscribe_many(self, channels: list[str]) -> None:
        consumer = self._connected_consumer()
        self._listening |= set(channels)
        try:
            await asyncio.wait_for(self._reassign(consumer), COMMAND_TIMEOUT)
        except FAILURES as exc:
            self._listening -= set(channels)
            raise BrokerError(f"kafka: subscribing failed: {exc!r}") from exc

    async def _unsubscribe_many(self, channels: list[str]) -> None:
        self._listening -= set(channels)
        if self._up and self._consumer is not None:
            with contextlib.suppress(*FAILURES):  # dropping partitions asks the broker nothing
                await self._reassign(self._consumer)

    async def _publish(self, channel: str, payload: bytes) -> None:
        await self._produce(self.live_topic, payload, key=channel.encode(),
                            partition=self.partition(channel))

    async def _produce(self, topic: str, value: bytes, *, key: bytes | None = None,
                       partition: int = 0) -> None:
        producer = self._connected_producer()
        try:
            sent = await producer.send(topic, value, key=key, partition=partition)
            await asyncio.wait_for(sent, COMMAND_TIMEOUT)
        except FAILURES as exc:
            self._lost(f"publish failed: {exc!r}")
            raise BrokerError(f"kafka: publish to {topic} failed: {exc!r}") from exc

    # ---- cluster state ---------------------------------------------------------------

    async def heartbeat(self, node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> None:
        producer = self._connected_producer()
        try:
            sent = [await producer.send(self.cluster_topic, record, partition=0)
                    for record in heartbeat_records(node, presence)]
            await asyncio.wait_for(asyncio.gather(*sent), COMMAND_TIMEOUT)
        except FAILURES as exc:
            self._lost(f"heartbeat failed: {exc!r}")
            raise BrokerError(f"kafka: heartbeat failed: {exc!r}") from exc
        self._view.prune(_now_ms())

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        await self._produce(self.cluster_topic, add_record(channel, client))

    async def presence_remove(self, channel: str, client: str) -> None:
        await self._produce(self.cluster_topic, remove_record(channel, client))

    async def _caught_up(self) -> ClusterView:
        """The view once it holds every control record written before this call."""
        consumer = self._connected_consumer()
        try:
            ends = await asyncio.wait_for(consumer.end_offsets([self._cluster_tp]),
                                          COMMAND_TIMEOUT)
        except FAILURES as exc:
            raise BrokerError(f"kafka: reading cluster state failed: {exc!r}") from exc
        end = ends[self._cluster_tp]
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while self._next.get(self._cluster_tp, 0) < end:
            if not self._up:
                raise BrokerError("kafka: not connected")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError("kafka: cluster state did not catch up in time")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return self._view

    async def presence(self, channel: str) -> list[ClientInfo]:
        return (await self._caught_up()).presence(channel, _now_ms())

    async def nodes(self) -> list[NodeInfo]:
        return (await self._caught_up()).nodes(_now_ms())


@functools.lru_cache(maxsize=65536)
def _cached_partition(channel: str, partitions: int) -> int:
    return partition_of(channel, partitions)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _stop_all(consumer, producer, admin) -> None:
    """Stop whichever clients exist, none waiting long on a broker that is gone.

    aiokafka's stop can itself end in CancelledError (a task of its own it cancelled); that
    is swallowed unless this task really is being cancelled.
    """
    for client, stop in ((consumer, "stop"), (producer, "stop"), (admin, "close")):
        if client is None:
            continue
        try:
            await asyncio.wait_for(getattr(client, stop)(), CLOSE_TIMEOUT)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise
        except Exception as exc:
            log.debug("kafka: stopping a client: %r", exc)
