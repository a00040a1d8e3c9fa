"""Brokers as the nodes of a throwaway cluster, and real ways to cut a node off its broker.

Every test gets its own namespace on the shared servers (Redis key prefix, RabbitMQ
exchange, NATS subject prefix and KV bucket, Kafka topic prefix), removed afterwards.
Outages never touch the shared servers: a node is cut off through a TCP relay of its own,
its connection is killed server-side by id or name, or it talks to a private nats-server
or tansu that can be restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.private import PrivateServer, free_port
from tidings.broker import open_broker
from tidings.broker.base import Broker

KINDS = ["memory", "redis", "redis-shards", "redis-cluster", "amqp", "nats", "kafka"]
PORTS = {"redis": 6379, "amqp": 5672, "nats": 4222, "kafka": 9092}
# The Redis Cluster scripts/services.sh starts; the independent shards are started here.
REDIS_CLUSTER_PORTS = [7000, 7001, 7002]
REDIS_SHARD_PORTS: list[int] = []  # filled by the redis_shards fixture
TTL = 1.5


def broker_url(kind: str, tag: str, port: int | None = None) -> str:
    port = port or PORTS.get(kind)
    if kind == "redis-shards":
        hosts = ",".join(f"127.0.0.1:{shard}" for shard in REDIS_SHARD_PORTS)
        return f"redis://{hosts}/0?prefix={tag}"
    if kind == "redis-cluster":
        return f"redis+cluster://127.0.0.1:{REDIS_CLUSTER_PORTS[0]}?prefix={tag}"
    if kind == "redis":
        return f"redis://127.0.0.1:{port}/0?prefix={tag}"
    if kind == "amqp":
        return f"amqp://guest:guest@127.0.0.1:{port}/?exchange={tag}"
    if kind == "nats":
        return f"nats://127.0.0.1:{port}?prefix={tag}"
    if kind == "kafka":
        return f"kafka://127.0.0.1:{port}?prefix={tag}&partitions=16"
    return "memory://"


async def remove_namespace(kind: str, tag: str) -> None:
    """Delete what brokers on namespace `tag` leave behind on the shared servers."""
    if kind.startswith("redis"):
        ports = {"redis": [6379], "redis-shards": REDIS_SHARD_PORTS,
                 "redis-cluster": REDIS_CLUSTER_PORTS}[kind]
        for port in ports:
            await delete_redis_keys(port, f"{tag}:*")
    elif kind == "amqp":
        import aio_pika

        conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        channel = await conn.channel()
        await channel.exchange_delete(tag)
        await conn.close()
    elif kind == "nats":
        import nats
        from nats.js.errors import NotFoundError

        conn = await nats.connect("nats://127.0.0.1:4222")
        with contextlib.suppress(NotFoundError):
            await conn.jetstream().delete_key_value(f"{tag}_cluster")
        await conn.close()
    elif kind == "kafka":
        await delete_kafka_topics(tag)


async def delete_redis_keys(port: int, pattern: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis(port=port)
    try:
        for key in [key async for key in client.scan_iter(match=pattern)]:
            await client.delete(key)  # one by one: a cluster master refuses cross-slot DEL
    finally:
        await client.aclose()


async def delete_kafka_topics(tag: str, port: int = 9092) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
    await admin.start()
    try:
        await admin.delete_topics([f"{tag}-live", f"{tag}-cluster"])
    finally:
        await admin.close()


class Inbox:
    """What one node's broker delivered, and how often it came back after losing it."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.reconnects = 0

    def __call__(self, channel: str, payload: bytes) -> None:
        self.messages.append((channel, payload))

    async def on_reconnect(self) -> None:
        self.reconnects += 1

    def of(self, channel: str) -> list[bytes]:
        return [payload for name, payload in self.messages if name == channel]

    async def wait(self, predicate, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; got {self.messages[-5:]} "
                                     f"({len(self.messages)} messages)")
            await asyncio.sleep(0.01)

    async def count(self, channel: str, n: int, timeout: float = 10) -> list[bytes]:
        await self.wait(lambda: len(self.of(channel)) >= n, timeout)
        return self.of(channel)


class Namespace:
    """Starts brokers (nodes) on one namespace and closes them all at the end."""

    def __init__(self, kind: str):
        self.kind = kind
        self.tag = f"t{uuid.uuid4().hex[:10]}"
        self.started: list[Broker] = []

    @property
    def shared(self) -> bool:
        return self.kind != "memory"

    async def node(self, name: str, *, port: int | None = None) -> tuple[Broker, Inbox]:
        broker = open_broker(broker_url(self.kind, self.tag, port), f"{name}-{self.tag}",
                             ttl=TTL)
        inbox = Inbox()
        await broker.start(inbox, inbox.on_reconnect)
        self.started.append(broker)
        return broker, inbox

    async def close(self) -> None:
        for broker in self.started:
            await broker.close()
        await remove_namespace(self.kind, self.tag)


@pytest.fixture(params=KINDS)
async def space(request) -> AsyncIterator[Namespace]:
    if request.param == "redis-shards":
        request.getfixturevalue("redis_shards")
    namespace = Namespace(request.param)
    yield namespace
    await namespace.close()


@pytest.fixture(params=[kind for kind in KINDS if kind != "memory"])
async def network_space(request) -> AsyncIterator[Namespace]:
    if request.param == "redis-shards":
        request.getfixturevalue("redis_shards")
    namespace = Namespace(request.param)
    yield namespace
    await namespace.close()


class Relay:
    """A TCP relay to a real server; `cut()` is an outage as the client sees it."""

    def __init__(self, target: int):
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer),
                             return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


@pytest.fixture
async def relay_for() -> AsyncIterator:
    """A relay to the kind's shared server; for Kafka, to a private tansu behind it.

    Kafka clients connect to the address the broker advertises, not the one they were
    given, so a relay in front of the shared tansu would be bypassed: the private tansu
    advertises the relay's port instead.
    """
    relays: list[Relay] = []
    servers: list[PrivateServer] = []

    async def make(kind: str) -> Relay:
        relay = Relay(PORTS[kind])
        if kind == "kafka":
            server = PrivateServer("kafka", advertised_port=relay.port)
            servers.append(server)
            await asyncio.to_thread(server.start)
            relay.target = server.port
        await relay.start()
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        if relay._server is not None and relay._server.is_serving():
            await relay.cut()
    for server in servers:
        await asyncio.to_thread(server.remove)


@pytest.fixture(scope="session")
def redis_shards() -> Iterator[list[int]]:
    """Three independent Redis servers of our own, for client-side sharding."""
    servers = []
    for _ in range(3):
        port = free_port()
        servers.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        REDIS_SHARD_PORTS.append(port)
    for port in REDIS_SHARD_PORTS:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"redis shard on {port} did not start"
                time.sleep(0.05)
    yield REDIS_SHARD_PORTS
    for server in servers:
        server.kill()
        server.wait()
    REDIS_SHARD_PORTS.clear()


async def kill_redis_subscriber(node: str, port: int = 6379) -> None:
    """CLIENT KILL the one connection holding `node`'s subscriptions, no one else's."""
    import redis.asyncio as redis

    client = redis.Redis(port=port)
    try:
        ids = [c["id"] for c in await client.client_list()
               if c.get("name") == f"tidings-{node}"
               and int(c.get("sub", 0)) + int(c.get("ssub", 0)) > 0]
        assert ids, f"no subscriber connection named tidings-{node}"
        for id in ids:
            await client.client_kill_filter(_id=id)
    finally:
        await client.aclose()


def close_rabbitmq_connection(node: str) -> None:
    """Have RabbitMQ force-close `node`'s connection (found by its connection name)."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines()
            if f'"tidings-{node}"' in line]
    assert pids, f"no RabbitMQ connection named tidings-{node}"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: connection lost"],
                       capture_output=True, timeout=60, check=True)
