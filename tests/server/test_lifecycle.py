"""Connection lifecycle: nothing leaks across connects and disconnects; a restart keeps history."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

import aiohttp
import websockets

from tests.conftest import Client, free_port, start_process
from tidings.session import Session

CYCLES = 2_000  # the fault suite's full profile runs 100,000 against a node process
CONCURRENCY = 50


async def _cycle(url: str, n: int) -> None:
    async with websockets.connect(url, ping_interval=None) as ws:
        client = Client(ws)
        await client.call("connect", {"user": f"user{n % 500}"})
        if n % 2:
            await client.call("subscribe", {"channel": f"room:r{n % 20}"})
        client.reader.cancel()


async def test_connect_disconnect_cycles_leave_nothing_behind(server):
    node = server.node
    await _cycle(server.ws_url, 0)  # warm up lazily created state
    await asyncio.sleep(0.2)
    tasks_before = len(asyncio.all_tasks())
    internal = set(node.hub.channels)  # the node's own ($revoked), with no session in them
    queue = iter(range(1, CYCLES + 1))

    async def worker() -> None:
        for n in queue:
            await _cycle(server.ws_url, n)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    for _ in range(100):  # server-side cleanup runs after each client's close
        if not node.sessions and set(node.hub.channels) == internal:
            break
        await asyncio.sleep(0.05)
    assert node.sessions_opened == CYCLES + 1
    assert node.sessions == {}
    assert node.by_user == {}
    assert set(node.hub.channels) == internal
    assert not node.presence
    assert node.broker.subscriptions == frozenset(internal)
    assert len(asyncio.all_tasks()) <= tasks_before + 2
    gc.collect()
    assert not [obj for obj in gc.get_objects() if isinstance(obj, Session)]


async def test_restart_keeps_history_and_offsets(tmp_path):
    port = free_port()
    env = {"TIDINGS_PORT": str(port), "TIDINGS_STORE": f"sqlite:///{tmp_path / 'r.db'}",
           "TIDINGS_NODE_NAME": "restart-test"}
    url = f"http://127.0.0.1:{port}"
    proc = start_process(env)
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(5):
                async with http.post(f"{url}/api/publish",
                                     json={"channel": "room:keep", "data": n}) as resp:
                    last = await resp.json()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proc = start_process(env)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/history", params={"channel": "room:keep"}) as resp:
                page = await resp.json()
            assert [p["data"] for p in page["publications"]] == [0, 1, 2, 3, 4]
            assert (page["offset"], page["epoch"]) == (last["offset"], last["epoch"])
            async with http.post(f"{url}/api/publish",
                                 json={"channel": "room:keep", "data": 5}) as resp:
                assert (await resp.json())["offset"] == 6  # offsets go on where they stopped
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            client = Client(ws)
            await client.call("connect", {"user": "back"})
            sub = await client.call("subscribe", {"channel": "room:keep", "offset": 3,
                                                  "epoch": last["epoch"]})
            assert [p["data"] for p in sub["publications"]] == [3, 4, 5]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
