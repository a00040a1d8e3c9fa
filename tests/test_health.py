"""Live, ready, degraded, and publishes that answer in bounded time while the store is stuck.

The store is stalled for real: SQLite's file locked by another process (`BEGIN EXCLUSIVE`
in a child Python), PostgreSQL's publications table locked by another connection in a
throwaway schema. The broker is lost for real: a private Redis stopped.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import CommandError
from tests.private import PrivateServer
from tests.store.test_store import throwaway_schema

BOUND = {"publish_timeout": 1.0, "store_stalled_after": 0.5}

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout=5000")
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


async def _get(server, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}{path}") as resp:
            return resp.status, await resp.json()


async def _publish(server, data) -> tuple[int, dict, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/publish",
                             json={"channel": "room:h", "data": data}) as resp:
            return resp.status, await resp.json(), time.monotonic() - started


def _lock_sqlite(path: Path, seconds: float) -> subprocess.Popen:
    """Another process holds the database file's write lock for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


async def test_live_and_ready_on_a_healthy_node(server):
    assert await _get(server, "/health/live") == (200, {"status": "live",
                                                         "node": server.node.name})
    status, body = await _get(server, "/health/ready")
    assert status == 200 and body["status"] == "ok"
    assert await _get(server, "/health") == (status, body)


async def test_sqlite_locked_by_another_process(make_server, tmp_path):
    """Publishes answer within the bound, never acknowledged before durable; health says
    unready while commits are stuck and live throughout; all heals when the lock goes."""
    path = tmp_path / "locked.db"
    async with make_server(store=f"sqlite:///{path}", resilience=BOUND) as server:
        bob = await server.client("bob")
        await bob.call("subscribe", {"channel": "room:h"})
        assert (await _publish(server, "before"))[0] == 200
        await bob.pubs(1)
        locker = _lock_sqlite(path, 3.0)
        try:
            status, body, took = await _publish(server, "stuck")  # inside a waiting commit
            assert (status, body["error"]["code"]) == (503, 113), body
            assert "retry with the same idempotency key" in body["error"]["message"]
            assert took < BOUND["publish_timeout"] + 0.5
            status, body, took = await _publish(server, "refused")  # refused at once
            assert (status, body["error"]["code"]) == (503, 111), body
            assert "not stored" in body["error"]["message"] and took < 0.3
            with pytest.raises(CommandError) as refused:  # a client's publish: the same
                await bob.call("publish", {"channel": "room:h", "data": "native"})
            assert refused.value.code == 111
            status, body = await _get(server, "/health/ready")
            assert status == 503 and body["status"] == "unavailable"
            assert "store commits stalled" in body["problems"][0]
            assert (await _get(server, "/health/live"))[0] == 200
        finally:
            await asyncio.get_running_loop().run_in_executor(None, locker.wait)
        # The waiting commit went through once the lock was gone: stored, so delivered
        pub = await bob.push("pub", timeout=5)
        assert (pub["data"], pub["offset"]) == ("stuck", 2)
        status, body, _ = await _publish(server, "after")
        assert (status, body["offset"]) == (200, 3)
        assert (await bob.push("pub"))["data"] == "after"
        assert (await _get(server, "/health/ready"))[0] == 200


async def test_postgres_publications_table_locked(make_server):
    """A batch behind a table lock: the publish answers 113 within the bound; lock_timeout
    then fails the batch, so that publication was never stored and never delivered."""
    import asyncpg

    async with throwaway_schema() as url:
        async with make_server(store=f"{url}&lock_timeout=1500ms", resilience=BOUND) as server:
            bob = await server.client("bob")
            await bob.call("subscribe", {"channel": "room:h"})
            assert (await _publish(server, "before"))[0] == 200
            await bob.pubs(1)
            schema = url.split("schema=")[1].split("&")[0]
            other = await asyncpg.connect(url.split("?")[0],
                                          server_settings={"search_path": schema})
            try:
                lock = other.transaction()
                await lock.start()
                await other.execute("LOCK TABLE tidings_publications IN EXCLUSIVE MODE")
                status, body, took = await _publish(server, "stuck")
                assert (status, body["error"]["code"]) == (503, 113), body
                assert took < BOUND["publish_timeout"] + 0.5
                status, body = await _get(server, "/health/ready")
                assert status == 503 and "stalled" in body["problem"]
                await asyncio.sleep(1.0)  # lock_timeout (1.5 s) fails the batch
                status, body = await _get(server, "/health/ready")
                assert (status, body["status"]) == (200, "degraded"), body
                assert "lock timeout" in body["problems"][0]
                await lock.rollback()
            finally:
                await other.close()
            status, body, _ = await _publish(server, "after")
            assert (status, body["offset"]) == (200, 2)  # "stuck" took no offset
            assert (await bob.push("pub"))["data"] == "after"
            page = await server.node.store.history("room:h", limit=10)
            assert [p.data for p in page.publications] == [b'"before"', b'"after"']
            assert (await _get(server, "/health"))[1]["status"] == "ok"


async def test_broker_down_is_degraded_but_ready(make_server):
    redis = PrivateServer("redis")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, redis.start)
    try:
        async with make_server(broker=f"redis://127.0.0.1:{redis.port}/0") as server:
            await loop.run_in_executor(None, redis.stop)
            deadline = time.monotonic() + 10
            while (await _get(server, "/health"))[1]["status"] != "degraded":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            status, body = await _get(server, "/health/ready")
            assert status == 200 and body["problems"] == ["broker connection lost: reconnecting"]
            assert (await _publish(server, "local"))[0] == 200  # stored; others resync
            await loop.run_in_executor(None, redis.start)
            while (await _get(server, "/health"))[1]["status"] != "ok":
                assert time.monotonic() < deadline + 10
                await asyncio.sleep(0.1)
    finally:
        redis.remove()


async def test_draining_is_not_ready_but_live(server):
    server.node.draining = True
    status, body = await _get(server, "/health/ready")
    assert (status, body["status"]) == (503, "draining")
    assert (await _get(server, "/health/live"))[0] == 200
    server.node.draining = False
