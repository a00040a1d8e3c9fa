"""Voice relay benchmark: Tidings' voice rooms against a bare binary relay on the same stack.

20 rooms of 50 members, two speakers in each room sending 50 frames/s of 100 bytes. Measured
for each server in the same run, on the same generator: relay latency p50/p99 (speaker send
to listener receive, one clock), frames delivered per second against the offered rate, and
the server's CPU per delivered frame. Goal: p99 under 20 ms and at least 0.8x the bare
relay's delivered rate.

    .venv/bin/python -m bench.voice [--rooms 20] [--members 50] [--seconds 10]

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


def start(target: str, port: int, workdir: str) -> subprocess.Popen:
    env = {**os.environ, "PORT": str(port), "TIDINGS_PORT": str(port),
           "TIDINGS_STORE": f"sqlite:///{workdir}/voice.db", "TIDINGS_NODE_NAME": "bench-voice"}
    if target == "tidings":
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


def speaker_frame(target: str, room: str, seq: int) -> bytes:
    payload = struct.pack("!Q", time.monotonic_ns()) + b"v" * (PAYLOAD - 8)
    if target == "bare":
        return payload
    return voice_frame.encode(voice_frame.VoiceFrame(
        voice_frame.Kind.OPUS, seq, seq * 20, f"voice:{room}", "", None, payload))


async def agent(target: str, port: int, rooms: list[str], members: int, seconds: float,
                out: multiprocessing.Queue, go: multiprocessing.Event) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    received = 0
    latencies: list[float] = []
    measuring = False

    async def member(room: str, index: int, ready: list) -> None:
        nonlocal received
        url = (f"ws://127.0.0.1:{port}/room/{room}" if target == "bare"
               else f"ws://127.0.0.1:{port}/ws")
        ws = await session.ws_connect(url, max_msg_size=0, autoping=True)
        if target == "tidings":
            await ws.send_str(json.dumps({"id": 1, "connect": {"user": f"{room}-{index}"}}))
            await ws.receive()
            await ws.send_str(json.dumps({"id": 2, "subscribe": {"channel": f"voice:{room}"}}))
            while True:  # join pushes, then the reply
                msg = json.loads((await ws.receive()).data)
                if msg.get("id") == 2:
                    break
        ready.append(ws)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                if measuring:
                    received += 1
                    if received % 7 == 0:
                        sent = struct.unpack_from("!Q", msg.data, len(msg.data) - PAYLOAD)[0]
                        latencies.append((time.monotonic_ns() - sent) / 1e6)

    sockets: dict[str, list] = {room: [] for room in rooms}
    tasks = [asyncio.create_task(member(room, i, sockets[room]))
             for room in rooms for i in range(members)]
    while sum(len(s) for s in sockets.values()) < len(rooms) * members:
        await asyncio.sleep(0.05)
    out.put(("ready", None))
    while not go.is_set():
        await asyncio.sleep(0.01)
    speakers = [(room, ws) for room in rooms for ws in sockets[room][:SPEAKERS]]
    started = time.monotonic()
    warmup, end = started + 2.0, started + 2.0 + seconds
    seq, tick = 0, started
    cpu0 = None
    while time.monotonic() < end:
        now = time.monotonic()
        if not measuring and now >= warmup:
            measuring, cpu0 = True, resource.getrusage(resource.RUSAGE_SELF)
        seq += 1
        for room, ws in speakers:
            await ws.send_bytes(speaker_frame(target, room, seq))
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


def measure(target: str, rooms: int, members: int, seconds: float, workers: int = 2) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = start(target, port, workdir)
        try:
            names = [f"r{n}" for n in range(rooms)]
            out, go = multiprocessing.Queue(), multiprocessing.Event()
            procs = [multiprocessing.Process(target=run_agent, args=(
                target, port, names[w::workers], members, seconds, out, go)) for w in range(workers)]
            for proc in procs:
                proc.start()
            for _ in procs:
                assert out.get(timeout=120)[0] == "ready"
            time.sleep(0.5)
            go.set()
            time.sleep(2.0)
            cpu_before = cpu_seconds(server.pid)
            results = [out.get(timeout=seconds + 60)[1] for _ in procs]
            cpu_server = cpu_seconds(server.pid) - cpu_before
            for proc in procs:
                proc.join(10)
        finally:
            server.kill()  # nothing to drain: the measurement is over
            server.wait(10)
    received = sum(r["received"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    offered = rooms * SPEAKERS * RATE * (members - 1)
    return {
        "target": target,
        "offered_per_s": offered,
        "delivered_per_s": received / seconds,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
        "server_cpu_us_per_frame": cpu_server / received * 1e6 if received else None,
        "server_cpu_share": cpu_server / seconds,
        "generator_cpu_share": sum(r["cpu"] for r in results) / seconds,
    }


def report(rows: list[dict], args) -> str:
    bare = next(r for r in rows if r["target"] == "bare")
    tid = next(r for r in rows if r["target"] == "tidings")
    ratio = tid["delivered_per_s"] / bare["delivered_per_s"]
    lines = [
        f"# Voice relay: {args.rooms} rooms x {args.members} members, {SPEAKERS} speakers each "
        f"at {RATE} frames/s of {PAYLOAD} bytes ({args.seconds:g} s measured)", "",
        f"- p99 under 20 ms: **{'met' if tid['p99_ms'] < 20 else 'not met'}** "
        f"(Tidings p99 {tid['p99_ms']:.1f} ms; bare relay {bare['p99_ms']:.1f} ms, the ceiling)",
        f"- at least 0.8x the bare relay's rate: **{'met' if ratio >= 0.8 else 'not met'}** "
        f"({ratio:.2f}x)", "",
        "| server | delivered/s | of offered | p50 ms | p99 ms | server CPU µs/frame | server CPU | generator CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['delivered_per_s']:,.0f} | {r['delivered_per_s'] / r['offered_per_s']:.2f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_us_per_frame']:.2f} "
            f"| {r['server_cpu_share']:.0%} | {r['generator_cpu_share']:.0%} |")
    lines += ["", f"Ratio Tidings / bare relay (delivered rate): {ratio:.2f}x; CPU per frame: "
              f"{tid['server_cpu_us_per_frame'] / bare['server_cpu_us_per_frame']:.2f}x. "
              f"Machine: {os.cpu_count()} cores, shared with the generator."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    rows = [measure(target, args.rooms, args.members, args.seconds) for target in ("bare", "tidings")]
    text = report(rows, args)
    stamp = time.strftime("%Y-%m-%d")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"{stamp}-voice.md").write_text(text)
    (results / f"{stamp}-voice.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
