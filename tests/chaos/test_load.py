"""A reconnect storm onto one node, and connect/disconnect cycles that must leave nothing behind.

Both run against a real `tidings serve` (Redis broker with a tag of its own, SQLite store).
Sizes: 200 clients and 2,000 cycles in the fast profile; 5,000 and 100,000 with
TIDINGS_CHAOS=full.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import aiohttp
import orjson
import pytest
import websockets

from tests.chaos.checker import percentile
from tests.chaos.conftest import FULL
from tests.chaos.crowd import Crowd
from tests.chaos.harness import Deployment

STORM = 5000 if FULL else 200
STORMS = [("storm:all", STORM)] + ([("room:storm", 1000)] if FULL else [])
CYCLES = 100_000 if FULL else 2000
PARALLEL = 50


async def _publish(node, channel: str, count: int) -> dict:
    async with aiohttp.ClientSession() as http:
        for n in range(count):
            async with http.post(f"{node.url}/api/publish",
                                 json={"channel": channel, "data": n}) as resp:
                body = await resp.json()
    return body


@pytest.mark.parametrize("channel,size", STORMS, ids=[channel for channel, _ in STORMS])
async def test_a_reconnect_storm_recovers_every_client(channel, size, tmp_path, report):
    """Every client at once, as after the node they were on died: each recovers the
    channel's 20 publications, once and in order, from the one node left.

    `storm:all` is one large channel with presence (a Redis entry per client) and no
    join/leave events; `room:storm` (full profile) also has join/leave, N²/2 event frames
    while it fills, so it is measured at a size whose events the clients can still parse.
    """
    dep = Deployment("redis", "sqlite", tmp_path, size=1, TIDINGS_CONNECT_TIMEOUT="60",
                     TIDINGS_PING_INTERVAL="60", TIDINGS_PONG_TIMEOUT="30",
                     TIDINGS_NAMESPACES__STORM__PRESENCE="true")
    crowd = None
    try:
        await dep.start()
        node = dep.nodes[0]
        epoch = (await _publish(node, channel, 20))["epoch"]
        crowd = Crowd(node.ws_url, channel, epoch, 20, size)
        await crowd.ready()
        cpu_before = (await node.metrics())["process_cpu_seconds_total"]
        times, failures = await asyncio.wait_for(crowd.storm(), 240)
        metrics = await node.metrics()
    finally:
        if crowd is not None:
            crowd.kill()
        await dep.close()
    report({"case": f"storm {size} clients {channel} redis/sqlite", "published": 20,
            "recovered": 20 * len(times), "lost": 0, "duplicated": 0, "out_of_order": 0,
            "recover_p50": percentile(times, 0.5), "recover_p99": percentile(times, 0.99),
            "loop_lag_max": metrics["tidings_event_loop_lag_max_seconds"],
            "node_cpu": metrics["process_cpu_seconds_total"] - cpu_before,
            "clients_cpu": crowd.cpu})
    assert not failures, failures[:5]
    assert len(times) == size


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _cycle(node, n: int) -> None:
    """One of four ways a connection ends: orderly, reset after connect, a handshake cut
    halfway, a TCP connection reset at once."""
    kind = n % 4
    if kind == 0:
        async with websockets.connect(node.ws_url, ping_interval=None, close_timeout=1) as ws:
            await ws.send(orjson.dumps({"id": 1, "connect": {"user": f"c{n}"}}).decode())
            await ws.recv()
            await ws.send(orjson.dumps({"id": 2, "subscribe": {
                "channel": f"room:cycle{n % 7}"}}).decode())
            await ws.recv()
        return
    reader, writer = await asyncio.open_connection("127.0.0.1", int(node.env["TIDINGS_PORT"]))
    if kind == 1:
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
                     b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        _rst(writer)
    elif kind == 2:
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
        await writer.drain()
        writer.close()
    else:
        _rst(writer)


async def _settled(node, baseline: dict, deadline: float) -> dict:
    while True:
        now = await node.metrics()
        if (now["tidings_connections"] == 0 and now["tidings_tasks"] <= baseline["tidings_tasks"]
                and now["tidings_broker_subscriptions"] == baseline["tidings_broker_subscriptions"]
                and now["process_open_fds"] <= baseline["process_open_fds"] + 2):
            return now
        if time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.2)


async def test_connect_disconnect_cycles_leave_nothing_behind(tmp_path, report):
    dep = Deployment("redis", "sqlite", tmp_path, size=1)
    try:
        await dep.start()
        node = dep.nodes[0]
        # warm up, in parallel: first-use allocations and the broker's bounded connection
        # pool (it grows to its cap under concurrent presence updates) are not leaks
        await asyncio.gather(*(_cycle(node, n) for n in range(PARALLEL * 4)))
        await asyncio.sleep(1)
        baseline = await _settled(node, await node.metrics(), time.monotonic() + 5)
        queue = iter(range(CYCLES))

        async def worker() -> None:
            for n in queue:
                await _cycle(node, n)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(PARALLEL)))
        took = time.monotonic() - started
        after = await _settled(node, baseline, time.monotonic() + 20)
    finally:
        await dep.close()
    grown = after["process_resident_memory_bytes"] - baseline["process_resident_memory_bytes"]
    report({"case": f"{CYCLES} connect/disconnect cycles redis/sqlite ({took:.0f} s)",
            "loop_lag_max": after["tidings_event_loop_lag_max_seconds"]})
    for name in ("tidings_connections", "tidings_broker_subscriptions", "tidings_tasks"):
        assert after[name] <= baseline[name], (name, baseline[name], after[name])
    assert after["process_open_fds"] <= baseline["process_open_fds"] + 2
    assert grown < 40 * 1024 * 1024, f"resident memory grew {grown / 1e6:.1f} MB"
