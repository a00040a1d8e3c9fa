"""The brokers the cluster scenarios run on, each point in a namespace of its own.

Redis, RabbitMQ, NATS and tansu (Kafka) are the shared servers `scripts/services.sh`
starts; every Kafka point gets its own topic prefix, deleted afterwards, because tansu
keeps every topic in memory until it is deleted. The shard scenario starts Redis servers
of its own on spare ports (`RedisShards`), so its figures never include another run's
traffic, and reads their CPU time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid

from bench import procstat

BROKERS = {"redis": "redis://127.0.0.1:6379/0",
           "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
           "nats": "nats://127.0.0.1:4222",
           "kafka": "kafka://127.0.0.1:9092"}


@contextlib.contextmanager
def namespaced(kind: str, url: str):
    """The URL to give the nodes; for Kafka, topics of their own, deleted afterwards."""
    if kind != "kafka":
        yield url
        return
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    try:
        yield f"{url}?prefix={prefix}"
    finally:
        asyncio.run(_delete_topics(url.removeprefix("kafka://"),
                                   [f"{prefix}-live", f"{prefix}-cluster"]))


async def _delete_topics(servers: str, topics: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    with contextlib.suppress(Exception):
        await admin.start()
        await admin.delete_topics(topics)
    with contextlib.suppress(Exception):
        await admin.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisShards:
    """`count` independent redis-servers on loopback, as one sharded broker URL."""

    def __init__(self, count: int):
        self.ports = [_free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return "redis://" + ",".join(f"127.0.0.1:{port}" for port in self.ports) + "/0"

    def cpu_seconds(self) -> float:
        return sum(procstat.cpu_seconds(proc.pid) for proc in self.procs)

    def __enter__(self) -> "RedisShards":
        for port in self.ports:
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        for port in self.ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.__exit__()
                        raise RuntimeError(f"redis-server on {port} did not start")
                    time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
