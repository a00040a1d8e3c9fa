"""`tidings serve --workers N`: several node processes on one port, joined by the broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

from tests.cluster.conftest import PG, Member, Node, broker_url, clean_broker, drop_schema
from tests.conftest import free_port, start_process


def test_workers_refuse_the_in_process_broker():
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "serve", "--workers", "2"],
        env={**os.environ, "TIDINGS_BROKER": "memory://", "TIDINGS_PORT": str(free_port())},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "--workers > 1 needs a shared broker" in result.stderr


async def test_two_workers_share_one_port_and_route_between_them():
    tag = f"t{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {"TIDINGS_PORT": str(port), "TIDINGS_NODE_NAME": "wk",
           "TIDINGS_BROKER": broker_url("redis", tag), "TIDINGS_STORE": f"{PG}?schema={tag}",
           "TIDINGS_CLUSTER_TTL": "2"}
    proc = start_process(env, "--workers", "2")
    node = Node("wk", env)
    try:
        for _ in range(100):  # both workers up and registered
            info = await node.get("/api/info")
            if len(info["nodes"]) == 2:
                break
            await asyncio.sleep(0.1)
        assert sorted(n["name"] for n in info["nodes"]) == ["wk-w0", "wk-w1"]

        class One:  # a cluster of one address: the kernel picks the worker
            nodes = [node]

        members = [Member(One, f"u{i}") for i in range(12)]
        for member in members:
            await member.connect(0)
        landed = {m.user: m.client.connect_result["node"] for m in members}
        assert set(landed.values()) == {"wk-w0", "wk-w1"}
        sender = members[0]
        for member in members[1:]:
            await sender.client.call("send", {"user": member.user, "data": "hello"})
        for member in members[1:]:
            pubs = await member.drain(f"user:{member.user}", 1)
            assert [p["data"] for p in pubs] == ["hello"]
        for member in members:
            await member.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await drop_schema(tag)
        await clean_broker("redis", tag)
