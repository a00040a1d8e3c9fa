"""The ingest scenario: queue -> durable -> delivered, per queue system, against the ceiling
of a bare consumer with the same client library draining the same kind of queue; and
`inbox` latency (20 sources, 1,000 unread) while ingest runs.

A round prefills a fresh queue (names tagged per round) with N notifications for 100 users,
then lets one consumer drain it:

- **bare**: the system's client library alone, the way Tidings uses it (the same batch
  size or prefetch, acknowledgements per batch), receiving and acknowledging, nothing else;
- **tidings**: a `tidings serve` whose ingest source is that queue, with the 100 users
  connected (each `connect` recovers `user:<id>` from offset 0, so nothing stored before a
  client got there is missed) and one more user reading its inbox in a loop (connected
  first; only the calls made between the first stored notification and the last delivery
  count).

Rate = N / (last message done - first message taken): for the bare consumer, from the first
message received to the last acknowledged; for Tidings, from the earliest publication's
`time` (set when the node accepted it) to the moment the last recipient received its last
one. The same producer fills both queues before either consumer starts, so producing costs
neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
import uuid

import aiohttp
import orjson

from bench.scenarios import percentile
from bench.servers import Server

SYSTEMS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "kafka": "kafka://127.0.0.1:9092",
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
}
USERS = 100
BATCH = 256  # Tidings' default max_in_flight: the bare consumers take batches as large
READER = "reader"
READER_SOURCES = 20
READER_UNREAD = 1000


def notifications(count: int, tag: str) -> list[bytes]:
    return [orjson.dumps({"id": f"{tag}-{n}", "source": f"system{n % 5}",
                          "to": {"user": f"u{n % USERS}"}, "data": {"n": n, "title": "x" * 40}})
            for n in range(count)]


class Queue:
    """One fresh queue (topic, stream, subject) of one system, filled and removed by the bench."""

    def __init__(self, system: str):
        self.system = system
        self.url = SYSTEMS[system]
        self.name = f"bench-{uuid.uuid4().hex[:10]}"
        self.group = "tidings"

    def source(self) -> dict:
        return {"url": self.url, "queue": self.name, "group": self.group}

    async def fill(self, bodies: list[bytes]) -> None:
        if self.system == "rabbitmq":
            import aio_pika

            conn = await aio_pika.connect(self.url)
            async with conn:
                channel = await conn.channel(publisher_confirms=True)
                dead = f"{self.name}.dead-letter"
                await channel.declare_exchange(dead, aio_pika.ExchangeType.FANOUT, durable=True)
                await channel.declare_queue(self.name, durable=True,
                                            arguments={"x-dead-letter-exchange": dead})
                for start in range(0, len(bodies), 500):
                    await asyncio.gather(*(channel.default_exchange.publish(
                        aio_pika.Message(body), routing_key=self.name)
                        for body in bodies[start:start + 500]))
        elif self.system == "kafka":
            from aiokafka import AIOKafkaProducer
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic

            servers = self.url.removeprefix("kafka://")
            admin = AIOKafkaAdminClient(bootstrap_servers=servers)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(self.name, 4, 1)])
            finally:
                await admin.close()
            producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
            await producer.start()
            try:
                for n, body in enumerate(bodies):
                    await producer.send(self.name, body, key=str(n).encode())
                await producer.flush()
            finally:
                await producer.stop()
        elif self.system == "redis":
            import redis.asyncio as redis

            client = redis.Redis.from_url(self.url)
            try:
                for start in range(0, len(bodies), 1000):
                    async with client.pipeline(transaction=False) as pipe:
                        for body in bodies[start:start + 1000]:
                            pipe.xadd(self.name, {"notification": body})
                        await pipe.execute()
            finally:
                await client.aclose()
        else:
            import nats

            nc = await nats.connect(self.url)
            try:
                js = nc.jetstream()
                await js.add_stream(name=self.name, subjects=[self.name])
                for start in range(0, len(bodies), 500):
                    await asyncio.gather(*(js.publish(self.name, body)
                                           for body in bodies[start:start + 500]))
            finally:
                await nc.close()

    async def drain(self, count: int, deadline: float) -> dict:
        """The bare consumer: take and acknowledge `count` messages, in batches of BATCH."""
        first = last = 0.0
        taken = 0

        def took(n: int) -> None:
            nonlocal first, taken
            first = first or time.perf_counter()
            taken += n

        if self.system == "rabbitmq":
            import aio_pika

            conn = await aio_pika.connect(self.url)
            async with conn:
                channel = await conn.channel()
                await channel.set_qos(prefetch_count=BATCH)
                queue = await channel.declare_queue(self.name, passive=True)
                done = asyncio.get_running_loop().create_future()

                async def on_message(message) -> None:
                    took(1)
                    await message.ack()
                    if taken >= count and not done.done():
                        done.set_result(None)

                await queue.consume(on_message)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done, deadline)
                last = time.perf_counter()
        elif self.system == "kafka":
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                self.name, bootstrap_servers=self.url.removeprefix("kafka://"),
                group_id=f"{self.name}-bare", enable_auto_commit=False,
                auto_offset_reset="earliest", max_poll_records=BATCH)
            await consumer.start()
            try:
                stop = time.monotonic() + deadline
                while taken < count and time.monotonic() < stop:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
                    n = sum(len(records) for records in batches.values())
                    if n:
                        took(n)
                        await consumer.commit()
                last = time.perf_counter()
            finally:
                await consumer.stop()
        elif self.system == "redis":
            import redis.asyncio as redis

            client = redis.Redis.from_url(self.url)
            try:
                await client.xgroup_create(self.name, "bare", id="0")
                stop = time.monotonic() + deadline
                while taken < count and time.monotonic() < stop:
                    reply = await client.xreadgroup("bare", "bare-1", {self.name: ">"},
                                                    count=BATCH, block=1000)
                    ids = [entry_id for _, items in reply or () for entry_id, _ in items]
                    if ids:
                        took(len(ids))
                        await client.xack(self.name, "bare", *ids)
                last = time.perf_counter()
            finally:
                await client.aclose()
        else:
            import nats
            from nats.js.api import AckPolicy, ConsumerConfig

            nc = await nats.connect(self.url)
            try:
                sub = await nc.jetstream().pull_subscribe(
                    self.name, durable="bare", stream=self.name,
                    config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                          max_ack_pending=BATCH * 8))
                stop = time.monotonic() + deadline
                while taken < count and time.monotonic() < stop:
                    try:
                        msgs = await sub.fetch(BATCH, timeout=1)
                    except (asyncio.TimeoutError, nats.errors.TimeoutError):
                        continue
                    took(len(msgs))
                    await asyncio.gather(*(msg.ack() for msg in msgs))
                last = time.perf_counter()
            finally:
                await nc.close()
        return {"notifications": taken, "expected": count,
                "notifications_per_s": taken / max(last - first, 1e-6)}

    async def remove(self) -> None:
        with contextlib.suppress(Exception):
            if self.system == "rabbitmq":
                import aio_pika

                conn = await aio_pika.connect(self.url)
                async with conn:
                    channel = await conn.channel()
                    for name in (self.name, f"{self.name}.dead-letter"):
                        await channel.queue_delete(name)
                    await channel.exchange_delete(f"{self.name}.dead-letter")
            elif self.system == "kafka":
                from aiokafka.admin import AIOKafkaAdminClient

                admin = AIOKafkaAdminClient(bootstrap_servers=self.url.removeprefix("kafka://"))
                await admin.start()
                try:
                    await admin.delete_topics([self.name])
                finally:
                    await admin.close()
            elif self.system == "redis":
                import redis.asyncio as redis

                client = redis.Redis.from_url(self.url)
                await client.delete(self.name, f"{self.name}.dead-letter")
                await client.aclose()
            else:
                import nats

                nc = await nats.connect(self.url)
                js = nc.jetstream()
                for name in (self.name, f"{self.name}-dead-letter"):
                    with contextlib.suppress(Exception):
                        await js.delete_stream(name)
                await nc.close()


def bare_round(system: str, count: int, deadline: float) -> dict:
    async def run() -> dict:
        queue = Queue(system)
        try:
            await queue.fill(notifications(count, queue.name))
            return await queue.drain(count, deadline)
        finally:
            await queue.remove()

    return asyncio.run(run())


def tidings_round(system: str, count: int, deadline: float, store_dir: str) -> dict:
    """Ingest `count` notifications through a Tidings node; inbox latency meanwhile."""
    queue = Queue(system)
    store = {"TIDINGS_STORE": f"sqlite:///{store_dir}/{queue.name}.db"}
    # first the reader's inbox (20 sources, 1,000 unread) and the store's epoch
    with Server("tidings", store) as server:
        epoch = asyncio.run(_prefill_reader(server.url))
        idle = asyncio.run(_inbox_idle(server.url, 200))
    asyncio.run(queue.fill(notifications(count, queue.name)))
    env = {**store, "TIDINGS_MESSAGE_CENTER__INGEST": orjson.dumps(
        {"bench": queue.source()}).decode()}
    try:
        with Server("tidings", env) as server:
            started_cpu = server.cpu_seconds()
            figures = asyncio.run(_ingest(server.url, count, epoch, deadline))
            figures["server_cpu_seconds"] = server.cpu_seconds() - started_cpu
            figures["dead_letters"] = _metric(server.url, "tidings_dead_letters_total")
        return {**figures, **idle}
    finally:
        asyncio.run(queue.remove())


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))


async def _prefill_reader(url: str) -> str:
    async with aiohttp.ClientSession() as http:
        sem = asyncio.Semaphore(50)

        async def send(n: int) -> dict:
            async with sem, http.post(f"{url}/api/send", json={
                    "user": READER, "source": f"source{n % READER_SOURCES}",
                    "data": {"title": f"message {n}"}}) as resp:
                return await resp.json()

        sent = await asyncio.gather(*(send(n) for n in range(READER_UNREAD)))
        return sent[0]["epoch"]


async def _inbox_calls(ws, latencies: list[float], stop: asyncio.Event | None,
                       count: int = 0, at: list[float] | None = None) -> None:
    """`inbox` calls one after another until `stop` is set (or `count` were made); `at`
    gets each call's start (wall clock), to keep only those made while ingest ran."""
    n = 1
    while (stop is None and n <= count) or (stop is not None and not stop.is_set()):
        n += 1
        started = time.perf_counter()
        await ws.send_json({"id": n, "inbox": {}})
        while True:  # skip pushes; wait for this reply
            frame = orjson.loads((await ws.receive(timeout=30)).data)
            if frame.get("id") == n:
                break
        latencies.append(time.perf_counter() - started)
        if at is not None:
            at.append(time.time() - latencies[-1])
        body = frame["inbox"]
        assert len(body["sources"]) == READER_SOURCES and body["unread"] == READER_UNREAD


async def _inbox_idle(url: str, count: int) -> dict:
    """The same `inbox` on the same node with nothing else going on: the reference."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url.replace('http', 'ws')}/ws", max_msg_size=0) as ws:
            await ws.send_json({"id": 1, "connect": {"user": READER}})
            await ws.receive()
            await _inbox_calls(ws, latencies, None, count)
    return {"idle_inbox_p50_ms": percentile(latencies, 0.5) * 1000,
            "idle_inbox_p99_ms": percentile(latencies, 0.99) * 1000}


async def _ingest(url: str, count: int, epoch: str, deadline: float) -> dict:
    per_user = count // USERS
    got: dict[str, int] = {}
    first_time = [float("inf")]
    last = [0.0]
    done = asyncio.Event()
    latencies: list[float] = []
    started_at: list[float] = []
    async with aiohttp.ClientSession() as http:
        async def recipient(user: str) -> None:
            async with http.ws_connect(f"{url.replace('http', 'ws')}/ws", max_msg_size=0) as ws:
                await ws.send_json({"id": 1, "connect": {"user": user, "recover": {
                    f"user:{user}": {"offset": 0, "epoch": epoch}}}})
                async for msg in ws:
                    frame = orjson.loads(msg.data)
                    pubs = (frame["connect"]["subs"][f"user:{user}"].get("publications", [])
                            if "connect" in frame else [frame["pub"]] if "pub" in frame else [])
                    for pub in pubs:
                        first_time[0] = min(first_time[0], pub["time"] / 1000)
                    got[user] = got.get(user, 0) + len(pubs)
                    if pubs:
                        last[0] = time.time()
                    if got[user] >= per_user:
                        if sum(got.values()) >= per_user * USERS:
                            done.set()
                        return

        async def reader() -> None:
            async with http.ws_connect(f"{url.replace('http', 'ws')}/ws", max_msg_size=0) as ws:
                await ws.send_json({"id": 1, "connect": {"user": READER}})
                await ws.receive()
                await _inbox_calls(ws, latencies, done, at=started_at)

        # the reader first: ingest starts with the node, and a reader connected after the
        # 100 recipients sampled little or nothing of it when ingest was fast
        reading = asyncio.create_task(reader())
        tasks = [asyncio.create_task(recipient(f"u{n}")) for n in range(USERS)]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), deadline)
        done.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(reading, return_exceptions=True)
    delivered = sum(got.values())
    # only the calls made while ingest ran (from the first stored notification to the last
    # delivery): the reader also waits through the consumer's start (Kafka's group join)
    latencies = [lat for lat, at in zip(latencies, started_at) if first_time[0] <= at <= last[0]]
    return {"notifications": delivered, "expected": per_user * USERS,
            "notifications_per_s": delivered / max(last[0] - first_time[0], 1e-6),
            "inbox_requests": len(latencies),
            "inbox_p50_ms": percentile(latencies, 0.5) * 1000,
            "inbox_p99_ms": percentile(latencies, 0.99) * 1000}
