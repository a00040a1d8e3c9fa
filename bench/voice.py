"""Voice relay benchmark: Tidings' voice rooms against a bare binary relay on the same stack.

20 rooms of 50 members, two speakers in each room sending 50 frames/s of 100 bytes. Measured
for each server in the same run, on the same generator: relay latency p50/p99 (speaker send
to listener receive, one clock), frames delivered per second against the offered rate, and
the server's CPU per delivered frame. Goal: p99 under 20 ms and at least 0.8x the bare
relay's delivered rate.

The cross-node case (`tidings-cluster`) runs two Tidings nodes on one broker (Redis by
default, `--broker nats` for NATS): members alternate between the nodes, so each room has
one speaker on each node and every frame reaches half its listeners on the speaker's node
and half through the broker. Its latency is reported for both halves, against the
one-node run of the same round (`tidings`), the reference for what the broker hop costs.

    .venv/bin/python -m bench.voice [--rooms 20] [--members 50] [--seconds 10]
                                    [--broker redis|nats] [--targets bare,tidings,tidings-cluster]

The generator runs in two processes (aiohttp clients on uvloop), each holding half the rooms;
every loop is bounded by the round's deadline. Results go to bench/results/<date>-voice.md
and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import uvloop

from bench.procstat import cpu_seconds
from tidings.protocol import voice as voice_frame

ROOT = Path(__file__).parents[1]
PAYLOAD = 100
RATE = 50  # frames per second per speaker
SPEAKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BROKERS = {"redis": "redis://127.0.0.1:6379/0?prefix={tag}",
           "nats": "nats://127.0.0.1:4222?prefix={tag}"}


def start(target: str, port: int, workdir: str, *, node: str = "bench-voice",
          broker: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PORT": str(port), "TIDINGS_PORT": str(port),
           "TIDINGS_STORE": f"sqlite:///{workdir}/{node}.db", "TIDINGS_NODE_NAME": node}
    if broker is not None:
        env["TIDINGS_BROKER"] = broker
    if target.startswith("tidings"):
        cmd = [sys.executable, "-m", "tidings", "serve", "--log-level", "warning"]
    else:
        cmd = [sys.executable, str(ROOT / "bench" / "peers" / "bare_voice.py")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{target} did not start")


def start_servers(target: str, workdir: str, broker: str, tag: str
                  ) -> tuple[list[subprocess.Popen], list[int]]:
    """One server, or for `tidings-cluster` two nodes on the broker namespace `tag`."""
    if target != "tidings-cluster":
        port = free_port()
        return [start(target, port, workdir)], [port]
    url = BROKERS[broker].format(tag=tag)
    ports = [free_port(), free_port()]
    procs = []
    try:
        for n, port in enumerate(ports):
            procs.append(start(target, port, workdir, node=f"bench-voice-{n + 1}", broker=url))
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    return procs, ports


STAMP = struct.Struct("!QB")  # send time, and the node the speaker is on


def speaker_frame(target: str, room: str, seq: int, node: int) -> bytes:
    payload = STAMP.pack(time.monotonic_ns(), node) + b"v" * (PAYLOAD - STAMP.size)
    if target == "bare":
        return payload
    return voice_frame.encode(voice_frame.VoiceFrame(
        voice_frame.Kind.OPUS, seq, seq * 20, f"voice:{room}", "", None, payload))


async def agent(target: str, ports: list[int], rooms: list[str], members: int, seconds: float,
                out: multiprocessing.Queue, go: multiprocessing.Event) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    received = 0
    latencies: dict[str, list[float]] = {"near": [], "far": []}  # speaker's node, another
    measuring = False

    async def member(room: str, index: int, ready: list) -> None:
        nonlocal received
        node = index % len(ports)  # members alternate between the nodes
        port = ports[node]
        url = (f"ws://127.0.0.1:{port}/room/{room}" if target == "bare"
               else f"ws://127.0.0.1:{port}/ws")
        ws = await session.ws_connect(url, max_msg_size=0, autoping=True)
        if target.startswith("tidings"):
            await ws.send_str(json.dumps({"id": 1, "connect": {"user": f"{room}-{index}"}}))
            await ws.receive()
            await ws.send_str(json.dumps({"id": 2, "subscribe": {"channel": f"voice:{room}"}}))
            while True:  # join pushes, then the reply
                msg = json.loads((await ws.receive()).data)
                if msg.get("id") == 2:
                    break
        ready.append((index, ws))
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                if measuring:
                    received += 1
                    if received % 7 == 0:
                        sent, origin = STAMP.unpack_from(msg.data, len(msg.data) - PAYLOAD)
                        latencies["near" if origin == node else "far"].append(
                            (time.monotonic_ns() - sent) / 1e6)

    sockets: dict[str, list] = {room: [] for room in rooms}
    tasks = [asyncio.create_task(member(room, i, sockets[room]))
             for room in rooms for i in range(members)]
    while sum(len(s) for s in sockets.values()) < len(rooms) * members:
        await asyncio.sleep(0.05)
    out.put(("ready", None))
    while not go.is_set():
        await asyncio.sleep(0.01)
    # speaker i is member i: on node i % len(ports)
    speakers = [(room, ws, i % len(ports)) for room in rooms
                for i, ws in sorted(sockets[room])[:SPEAKERS]]
    started = time.monotonic()
    warmup, end = started + 2.0, started + 2.0 + seconds
    seq, tick = 0, started
    cpu0 = None
    while time.monotonic() < end:
        now = time.monotonic()
        if not measuring and now >= warmup:
            measuring, cpu0 = True, resource.getrusage(resource.RUSAGE_SELF)
        seq += 1
        for room, ws, node in speakers:
            await ws.send_bytes(speaker_frame(target, room, seq, node))
        tick += 1 / RATE
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    measuring = False
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out.put(("done", {"received": received, "latencies": latencies,
                      "cpu": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)}))
    for task in tasks:
        task.cancel()
    await session.close()


def run_agent(*args) -> None:
    uvloop.run(agent(*args))


def measure(target: str, rooms: int, members: int, seconds: float, broker: str,
            workers: int = 2) -> dict:
    tag = f"bv{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as workdir:
        servers, ports = start_servers(target, workdir, broker, tag)
        try:
            names = [f"r{n}" for n in range(rooms)]
            out, go = multiprocessing.Queue(), multiprocessing.Event()
            procs = [multiprocessing.Process(target=run_agent, args=(
                target, ports, names[w::workers], members, seconds, out, go)) for w in range(workers)]
            for proc in procs:
                proc.start()
            for _ in procs:
                assert out.get(timeout=120)[0] == "ready"
            time.sleep(0.5)
            go.set()
            time.sleep(2.0)
            cpu_before = sum(cpu_seconds(server.pid) for server in servers)
            results = [out.get(timeout=seconds + 60)[1] for _ in procs]
            cpu_server = sum(cpu_seconds(server.pid) for server in servers) - cpu_before
            for proc in procs:
                proc.join(10)
        finally:
            for server in servers:
                server.kill()  # nothing to drain: the measurement is over
                server.wait(10)
    if target == "tidings-cluster":
        asyncio.run(_clean_broker(broker, tag))
    received = sum(r["received"] for r in results)
    offered = rooms * SPEAKERS * RATE * (members - 1)
    row = {
        "target": target,
        "nodes": len(ports),
        "offered_per_s": offered,
        "delivered_per_s": received / seconds,
        "server_cpu_us_per_frame": cpu_server / received * 1e6 if received else None,
        "server_cpu_share": cpu_server / seconds,
        "generator_cpu_share": sum(r["cpu"] for r in results) / seconds,
    }
    row.update(_percentiles("", [x for r in results for half in r["latencies"].values()
                                 for x in half]))
    if len(ports) > 1:
        for half in ("near", "far"):
            row.update(_percentiles(f"{half}_", [x for r in results for x in r["latencies"][half]]))
    return row


def _percentiles(prefix: str, latencies: list[float]) -> dict:
    latencies = sorted(latencies)
    return {f"{prefix}p50_ms": statistics.median(latencies) if latencies else None,
            f"{prefix}p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None}


async def _clean_broker(broker: str, tag: str) -> None:
    """What the cluster run left on the shared broker: Redis keys, or NATS's KV bucket."""
    if broker == "nats":
        import nats

        conn = await nats.connect("nats://127.0.0.1:4222")
        try:
            await conn.jetstream().delete_key_value(f"{tag}_cluster")
        except Exception:  # nothing was left
            pass
        await conn.close()
        return
    import redis.asyncio as redis

    client = redis.Redis()
    try:
        keys = [key async for key in client.scan_iter(match=f"{tag}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def report(rows: list[dict], args) -> str:
    by = {r["target"]: r for r in rows}
    lines = [
        f"# Voice relay: {args.rooms} rooms x {args.members} members, {SPEAKERS} speakers each "
        f"at {RATE} frames/s of {PAYLOAD} bytes ({args.seconds:g} s measured)", "",
    ]
    tid, bare = by.get("tidings"), by.get("bare")
    if tid and bare:
        ratio = tid["delivered_per_s"] / bare["delivered_per_s"]
        lines += [
            f"- p99 under 20 ms: **{'met' if tid['p99_ms'] < 20 else 'not met'}** "
            f"(Tidings p99 {tid['p99_ms']:.1f} ms; bare relay {bare['p99_ms']:.1f} ms, the ceiling)",
            f"- at least 0.8x the bare relay's rate: **{'met' if ratio >= 0.8 else 'not met'}** "
            f"({ratio:.2f}x)",
        ]
    cluster = by.get("tidings-cluster")
    if cluster and tid:
        rate = cluster["delivered_per_s"] / tid["delivered_per_s"]
        lines += [
            f"- across two nodes on {args.broker}: {rate:.2f}x the one-node relay rate; "
            f"listeners on the other node p50 {cluster['far_p50_ms']:.2f} ms / p99 "
            f"{cluster['far_p99_ms']:.1f} ms, on the speaker's node p50 "
            f"{cluster['near_p50_ms']:.2f} ms / p99 {cluster['near_p99_ms']:.1f} ms "
            f"(one node: p50 {tid['p50_ms']:.2f} ms / p99 {tid['p99_ms']:.1f} ms)",
        ]
    lines += [
        "",
        "| server | nodes | delivered/s | of offered | p50 ms | p99 ms | server CPU µs/frame | server CPU | generator CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['nodes']} | {r['delivered_per_s']:,.0f} "
            f"| {r['delivered_per_s'] / r['offered_per_s']:.2f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_us_per_frame']:.2f} "
            f"| {r['server_cpu_share']:.0%} | {r['generator_cpu_share']:.0%} |")
    lines.append("")
    if tid and bare:
        lines.append(f"Ratio Tidings / bare relay (delivered rate): "
                     f"{tid['delivered_per_s'] / bare['delivered_per_s']:.2f}x; CPU per frame: "
                     f"{tid['server_cpu_us_per_frame'] / bare['server_cpu_us_per_frame']:.2f}x. ")
    if cluster and tid:
        lines.append(f"Two nodes / one node: CPU per delivered frame "
                     f"{cluster['server_cpu_us_per_frame'] / tid['server_cpu_us_per_frame']:.2f}x "
                     f"(both nodes' CPU; {args.broker} itself not counted). ")
    lines.append(f"Machine: {os.cpu_count()} cores, shared with the generator"
                 + (f" and {args.broker}." if cluster else "."))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--broker", choices=sorted(BROKERS), default="redis",
                        help="the broker of the cross-node case")
    parser.add_argument("--targets", default="bare,tidings,tidings-cluster")
    parser.add_argument("--out", default="voice", help="results go to <date>-<out>.md/.json")
    args = parser.parse_args()
    rows = [measure(target, args.rooms, args.members, args.seconds, args.broker)
            for target in args.targets.split(",")]
    text = report(rows, args)
    stamp = time.strftime("%Y-%m-%d")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"{stamp}-{args.out}.md").write_text(text)
    (results / f"{stamp}-{args.out}.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
