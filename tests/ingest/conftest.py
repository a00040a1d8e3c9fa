"""Every real queue system as an ingest source: a producer, the dead letter, and cleanup.

Each test gets names of its own on the shared servers (RabbitMQ queue and dead-letter
exchange, Kafka topics and group, Redis stream keys, a JetStream stream and subject),
deleted afterwards. `System.put` is what a backend does: one JSON notification on the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.broker.conftest import Relay, relay_for  # noqa: F401

KINDS = ["amqp", "kafka", "redis", "nats"]
URLS = {
    "amqp": "amqp://guest:guest@127.0.0.1:{port}/",
    "kafka": "kafka://127.0.0.1:{port}",
    "redis": "redis://127.0.0.1:{port}/0",
    "nats": "nats://127.0.0.1:{port}",
}
PORTS = {"amqp": 5672, "kafka": 9092, "redis": 6379, "nats": 4222}


def notification(id: str, to: dict, data: object = None, source: str = "billing") -> bytes:
    return orjson.dumps({"id": id, "source": source, "to": to,
                         "data": data if data is not None else {"title": id}})


class System:
    """One queue system, namespaced for one test."""

    def __init__(self, kind: str, port: int | None = None, tag: str | None = None):
        self.kind = kind
        self.tag = tag or f"t{uuid.uuid4().hex[:10]}"
        self.port = port or PORTS[kind]
        self.queue = f"{self.tag}.notifications"
        self.dead_letter = f"{self.tag}.notifications.dead-letter"
        self._producer = None
        self._dead_seen: list[tuple[bytes, str]] = []  # AMQP: read once, kept here
        self.produced = 0  # Kafka: records put on the topic

    @property
    def url(self) -> str:
        return URLS[self.kind].format(port=self.port)

    def source(self, **overrides) -> dict:
        """The ingest source settings for this system."""
        config = {"url": self.url, "queue": self.queue, "group": f"{self.tag}-group",
                  "dead_letter": self.dead_letter, "redeliver_after": 2.0}
        if self.kind == "nats":
            config["stream"] = self.tag
        return {**config, **overrides}

    async def open(self) -> None:
        if self.kind == "amqp":
            import aio_pika

            self._conn = await aio_pika.connect(self.url)
            self._channel = await self._conn.channel(publisher_confirms=True)
            # what Tidings declares, so a message put before the node starts is kept
            await self._channel.declare_exchange(self.dead_letter, aio_pika.ExchangeType.FANOUT,
                                                 durable=True)
            dead = await self._channel.declare_queue(self.dead_letter, durable=True)
            await dead.bind(self.dead_letter)
            await self._channel.declare_queue(
                self.queue, durable=True,
                arguments={"x-dead-letter-exchange": self.dead_letter})
        elif self.kind == "kafka":
            from aiokafka import AIOKafkaProducer
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic

            admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.port}")
            await admin.start()
            try:
                await admin.create_topics([NewTopic(self.queue, 4, 1),
                                           NewTopic(self.dead_letter, 1, 1)])
            finally:
                await admin.close()
            self._producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{self.port}",
                                              acks="all", linger_ms=5)
            await self._producer.start()
        elif self.kind == "redis":
            import redis.asyncio as redis

            self._redis = redis.Redis(port=self.port)
        else:
            import nats

            self._nc = await nats.connect(self.url)
            self._js = self._nc.jetstream()
            await self._js.add_stream(name=self.tag, subjects=[self.queue])
            await self._js.add_stream(name=f"{self.tag}-dead-letter", subjects=[self.dead_letter])

    async def put(self, body: bytes, key: str | None = None) -> None:
        if self.kind == "amqp":
            import aio_pika

            # a timestamp, as a backend should set one: the node's ingest lag counts from it
            await self._channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 timestamp=datetime.datetime.now(datetime.timezone.utc)),
                routing_key=self.queue)
        elif self.kind == "kafka":
            await self._producer.send_and_wait(self.queue, body,
                                               key=(key or "").encode() or None)
            self.produced += 1
        elif self.kind == "redis":
            await self._redis.xadd(self.queue, {"notification": body})
        else:
            await self._js.publish(self.queue, body)

    async def put_many(self, bodies: list[bytes]) -> None:
        if self.kind == "kafka":
            for n, body in enumerate(bodies):
                await self._producer.send(self.queue, body, key=str(n).encode())
            await self._producer.flush()
            self.produced += len(bodies)
        elif self.kind == "redis":
            async with self._redis.pipeline(transaction=False) as pipe:
                for body in bodies:
                    pipe.xadd(self.queue, {"notification": body})
                await pipe.execute()
        else:
            await asyncio.gather(*(self.put(body) for body in bodies))
        if self.kind == "kafka":
            await self._producer.flush()

    async def dead(self, count: int, timeout: float = 20) -> list[tuple[bytes, str]]:
        """The dead-lettered messages with their reasons, once `count` are there."""
        deadline = time.monotonic() + timeout
        found: list[tuple[bytes, str]] = []
        while True:
            found = await self._read_dead()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)

    async def _read_dead(self) -> list[tuple[bytes, str]]:
        if self.kind == "amqp":
            queue = await self._channel.get_queue(self.dead_letter)
            while (message := await queue.get(fail=False)) is not None:
                reason = message.headers.get("x-tidings-reason")
                self._dead_seen.append((message.body, reason.decode()
                                        if isinstance(reason, bytes) else reason))
                await message.ack()
            return list(self._dead_seen)
        if self.kind == "kafka":
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(self.dead_letter,
                                        bootstrap_servers=f"127.0.0.1:{self.port}",
                                        auto_offset_reset="earliest", enable_auto_commit=False)
            await consumer.start()
            try:
                out = []
                batches = await consumer.getmany(timeout_ms=1500)
                for records in batches.values():
                    for record in records:
                        out.append((record.value, dict(record.headers)["tidings-reason"].decode()))
                return out
            finally:
                await consumer.stop()
        if self.kind == "redis":
            entries = await self._redis.xrange(self.dead_letter)
            return [(fields.get(b"notification"), fields[b"reason"].decode())
                    for _, fields in entries]
        sub = await self._js.subscribe(self.dead_letter, ordered_consumer=True)
        out = []
        with contextlib.suppress(asyncio.TimeoutError):
            while True:
                msg = await sub.next_msg(timeout=0.5)
                out.append((msg.data, msg.headers["Tidings-Reason"]))
        await sub.unsubscribe()
        return out

    async def pending(self) -> int:
        """Messages taken by a consumer but not acknowledged (committed), where measurable."""
        if self.kind == "redis":
            info = await self._redis.xpending(self.queue, f"{self.tag}-group")
            return info["pending"]
        if self.kind == "nats":
            info = await self._js.consumer_info(self.tag, f"{self.tag}-group")
            return info.num_ack_pending + info.num_pending
        if self.kind == "amqp":  # ready and unacknowledged: only the server's CLI tells both
            listing = await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
                ["rabbitmqctl", "-q", "list_queues", "name", "messages"],
                capture_output=True, text=True, timeout=60, check=True).stdout)
            for line in listing.splitlines():
                name, _, count = line.partition("\t")
                if name == self.queue:
                    return int(count)
            raise AssertionError(f"no queue {self.queue}")
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{self.port}",
                                    group_id=f"{self.tag}-group", enable_auto_commit=False)
        await consumer.start()
        try:
            # (tansu's end offsets are not reliable for this: count what was produced)
            committed = [await consumer.committed(TopicPartition(self.queue, p)) or 0
                         for p in range(4)]
            return self.produced - sum(committed)
        finally:
            await consumer.stop()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.kind == "amqp":
                await self._channel.queue_delete(self.queue)
                await self._channel.queue_delete(self.dead_letter)
                await self._channel.exchange_delete(self.dead_letter)
                await self._conn.close()
            elif self.kind == "kafka":
                await self._producer.stop()
                from aiokafka.admin import AIOKafkaAdminClient

                admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.port}")
                await admin.start()
                try:
                    await admin.delete_topics([self.queue, self.dead_letter])
                finally:
                    await admin.close()
            elif self.kind == "redis":
                await self._redis.delete(self.queue, self.dead_letter)
                await self._redis.aclose()
            else:
                await self._js.delete_stream(self.tag)
                await self._js.delete_stream(f"{self.tag}-dead-letter")
                await self._nc.close()


@pytest.fixture(params=KINDS)
async def system(request) -> AsyncIterator[System]:
    queue = System(request.param)
    await queue.open()
    yield queue
    await queue.close()



async def restore(relay: Relay) -> None:
    """Let a cut relay accept connections again, on the same port."""
    relay._server = await asyncio.start_server(relay._accept, "127.0.0.1", relay.port)
