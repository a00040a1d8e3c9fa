"""Three real `tidings serve` processes on one broker and one PostgreSQL database.

Every cluster gets a throwaway PostgreSQL schema and broker namespace (Redis key prefix,
RabbitMQ exchange, NATS subject prefix and KV bucket, Kafka topic prefix) that are removed
afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import asyncpg
import pytest
import websockets

from tests.conftest import Client, free_port, start_process

PG = "postgresql://postgres@127.0.0.1:5432/test"
BROKERS = ["redis", "redis-cluster", "amqp", "nats", "kafka"]


def broker_url(kind: str, tag: str, port: int | None = None) -> str:
    if kind == "redis-cluster":  # the three masters scripts/services.sh starts
        return f"redis+cluster://127.0.0.1:{port or 7000}?prefix={tag}"
    if kind == "redis":
        return f"redis://127.0.0.1:{port or 6379}/0?prefix={tag}"
    if kind == "amqp":
        return f"amqp://guest:guest@127.0.0.1:{port or 5672}/?exchange={tag}"
    if kind == "kafka":
        return f"kafka://127.0.0.1:{port or 9092}?prefix={tag}"
    return f"nats://127.0.0.1:{port or 4222}?prefix={tag}"


class Node:
    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.env = env
        self.port = int(env["TIDINGS_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = start_process(self.env)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    async def metric(self, name: str) -> float:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.url}/metrics") as resp:
                text = await resp.text()
        match = re.search(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
        assert match, f"{name} not in /metrics"
        return float(match.group(1))

    async def get(self, path: str, **params) -> dict:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.url}{path}", params=params) as resp:
                return await resp.json()

    async def post(self, path: str, body: dict) -> dict:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}{path}", json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()


class Cluster:
    def __init__(self, kind: str, broker: str, schema: str, size: int = 3, **settings: str):
        self.kind = kind
        self.broker = broker
        self.schema = schema
        self.nodes: list[Node] = []
        for index in range(size):
            port = free_port()
            env = {
                "TIDINGS_PORT": str(port),
                "TIDINGS_NODE_NAME": f"n{index + 1}",
                "TIDINGS_BROKER": broker,
                "TIDINGS_STORE": f"{PG}?schema={schema}",
                "TIDINGS_CLUSTER_TTL": "2",
                "TIDINGS_SHUTDOWN_GRACE": "2",
                # the cluster tests publish as fast as replies come; the limit has its own tests
                "TIDINGS_SECURITY__COMMAND_RATE": "100000",
                "TIDINGS_SECURITY__COMMAND_BURST": "100000",
                **settings,
            }
            self.nodes.append(Node(f"n{index + 1}", env))

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    async def client(self, node: int, user: str) -> "Member":
        member = Member(self, user)
        await member.connect(node)
        return member


class Member:
    """A client that remembers its last offset per channel and recovers like a real library."""

    def __init__(self, cluster: Cluster, user: str):
        self.cluster = cluster
        self.user = user
        self.client: Client | None = None
        self.positions: dict[str, tuple[int, str]] = {}
        self.rooms: list[str] = []
        self.received: dict[str, list] = {}

    async def connect(self, node: int) -> None:
        ws = await websockets.connect(self.cluster.nodes[node].ws_url, max_size=None,
                                      ping_interval=None)
        self.client = Client(ws)
        own = f"user:{self.user}"
        recover = ({own: {"offset": self.positions[own][0], "epoch": self.positions[own][1]}}
                   if own in self.positions else {})
        result = await self.client.call("connect", {"user": self.user, "recover": recover})
        self.client.connect_result = result
        for channel, sub in result["subs"].items():
            self._take(channel, sub)
        for room in self.rooms:
            await self._subscribe(room)

    async def join(self, room: str) -> None:
        self.rooms.append(room)
        await self._subscribe(room)

    async def _subscribe(self, room: str) -> None:
        params: dict = {"channel": room}
        if room in self.positions:
            params.update(offset=self.positions[room][0], epoch=self.positions[room][1])
        self._take(room, await self.client.call("subscribe", params))

    def _take(self, channel: str, sub: dict) -> None:
        for pub in sub.get("publications", []):
            self._record(pub)
        if "offset" in sub:
            self.positions[channel] = (sub["offset"], sub["epoch"])

    def _record(self, pub: dict) -> None:
        self.received.setdefault(pub["channel"], []).append(pub)
        self.positions[pub["channel"]] = (pub["offset"], pub["epoch"])

    async def drain(self, channel: str, count: int, timeout: float = 20) -> list:
        """Collect pushes until `count` publications of `channel` have arrived in total."""
        deadline = time.monotonic() + timeout
        while len(self.received.get(channel, [])) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                pub = await self.client.push("pub", min(remaining, 1.0))
                self._record(pub)
        return self.received.get(channel, [])

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def clean_broker(kind: str, tag: str) -> None:
    if kind == "redis-cluster":
        from tests.broker.conftest import REDIS_CLUSTER_PORTS, delete_redis_keys

        for port in REDIS_CLUSTER_PORTS:
            await delete_redis_keys(port, f"{tag}:*")
    elif kind == "redis":
        import redis.asyncio as redis

        client = redis.Redis()
        keys = [key async for key in client.scan_iter(match=f"{tag}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif kind == "amqp":
        import aio_pika

        conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        channel = await conn.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(tag)
        await conn.close()
    elif kind == "kafka":
        from tests.broker.conftest import delete_kafka_topics

        await delete_kafka_topics(tag)
    else:  # NATS: subjects vanish with their subscribers; the KV bucket stays until deleted
        import nats

        conn = await nats.connect("nats://127.0.0.1:4222")
        with contextlib.suppress(Exception):
            await conn.jetstream().delete_key_value(f"{tag}_cluster")
        await conn.close()


@contextlib.asynccontextmanager
async def running_cluster(kind: str, size: int = 3, **settings: str) -> AsyncIterator[Cluster]:
    """A started cluster on `kind` with its own schema and broker namespace, removed after."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    running = Cluster(kind, broker_url(kind, tag), tag, size, **settings)
    await asyncio.get_running_loop().run_in_executor(None, running.start)
    try:
        yield running
    finally:
        running.stop()
        await drop_schema(tag)
        await clean_broker(kind, tag)


@pytest.fixture(params=BROKERS)
async def cluster(request) -> Iterator[Cluster]:
    async with running_cluster(request.param) as running:
        yield running
