"""The faults, each done for real to one deployment while publications stream through it.

Each takes the Deployment (and the private broker server, when it needs one) and returns
once the fault is over. Only this run's own processes and connections are touched.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import asyncpg
import redis.asyncio as redis

from tests.chaos.harness import DEAD_AFTER, Deployment
from tests.cluster.conftest import PG
from tests.private import PrivateServer

SQLITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout=5000")
conn.execute("BEGIN EXCLUSIVE")
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def _in_thread(fn, *args):
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def sigkill(dep: Deployment, server: PrivateServer | None) -> None:
    """The last node SIGKILLed mid-stream; a lone node is started again on its store."""
    victim = dep.nodes[-1]
    victim.kill()
    if len(dep.nodes) == 1:
        await asyncio.sleep(0.5)
        await _in_thread(victim.start)


async def sigstop(dep: Deployment, server: PrivateServer | None) -> None:
    """The last node paused past its clients' patience and its own ping timeout, resumed."""
    victim = dep.nodes[-1]
    victim.signal(signal.SIGSTOP)
    await asyncio.sleep(DEAD_AFTER + 1.5)
    victim.signal(signal.SIGCONT)


async def broker_lost(dep: Deployment, server: PrivateServer | None) -> None:
    """Subscription connections killed again and again, then the broker restarted."""
    kind = dep.broker_name
    if kind == "redis":
        admin = redis.Redis(port=server.port)
        try:
            for _ in range(5):
                await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
                await asyncio.sleep(0.4)
        finally:
            await admin.aclose()
    elif kind == "amqp":
        from tests.cluster.test_broker_failures import _close_rabbitmq_connections

        for _ in range(2):
            for node in dep.nodes:
                await _in_thread(_close_rabbitmq_connections, f"tidings-{node.name}")
        return  # the shared RabbitMQ is never restarted
    if server is not None:
        await _in_thread(server.restart)


async def pg_backends_terminated(dep: Deployment, server: PrivateServer | None) -> None:
    """Every PostgreSQL backend of this run's nodes terminated, five times (found by the
    application_name the run's store URL sets: nobody else's)."""
    conn = await asyncpg.connect(PG)
    try:
        for _ in range(5):
            await conn.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE application_name = $1", dep.tag)
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def sqlite_locked(dep: Deployment, server: PrivateServer | None) -> None:
    """Another process holds the SQLite file's write lock for 5 s."""
    path = dep.nodes[0].env["TIDINGS_STORE"].removeprefix("sqlite:///")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SQLITE_LOCK, path, "5")
    await proc.wait()


async def slow_commits(dep: Deployment, server: PrivateServer | None) -> None:
    """Commits held up by a table lock, 300 ms of every 600 ms for 4 s, while both nodes
    append to the same channels."""
    conn = await asyncpg.connect(PG, server_settings={"search_path": dep.tag})
    try:
        for _ in range(7):
            async with conn.transaction():
                await conn.execute("LOCK TABLE tidings_publications IN EXCLUSIVE MODE")
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.3)
    finally:
        await conn.close()


def needs(fault) -> dict:
    """What a fault needs of the deployment: store kind, cluster size, a private broker."""
    return {
        sigkill: {"size": 2},
        sigstop: {"size": 2},
        broker_lost: {"size": 2, "private": True, "network": True},
        pg_backends_terminated: {"size": 1, "store": "postgresql"},
        sqlite_locked: {"size": 1, "store": "sqlite"},
        slow_commits: {"size": 2, "store": "postgresql", "network": True,
                       "publish_everywhere": True},
    }[fault]

