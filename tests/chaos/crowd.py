"""Thousands of recovering clients, in worker processes so the node, not the test, is measured.

One Python process driving 5,000 `websockets` clients spends as much CPU as the node it
tests, and on one core; so the storm's clients live in worker processes (uvloop, one per
core), each started, made ready, then told "go" on stdin, when all of its clients connect
at once. Each client connects, subscribes to the channel with `(offset 0, epoch)`, checks
that it got every publication once and in order (`recovered` true, offsets 1..N), and
reports the seconds from its start to that reply. A worker prints one JSON line: the times,
the first 20 failures (if any), and the CPU seconds it spent.

Run as `python -m tests.chaos.crowd URL CHANNEL EPOCH EXPECTED FIRST COUNT`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import orjson
import uvloop
import websockets

ROOT = Path(__file__).resolve().parents[2]  # where `-m tests.chaos.crowd` is found
TIMEOUT = 120  # seconds one client may take at most, however loaded the machine


async def recover(url: str, user: str, channel: str, epoch: str, expected: int) -> float:
    started = time.monotonic()
    async with websockets.connect(url, ping_interval=None, open_timeout=TIMEOUT,
                                  close_timeout=1) as ws:
        await ws.send(orjson.dumps({"id": 1, "connect": {"user": user}}).decode())
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send(orjson.dumps({"id": 2, "subscribe": {
            "channel": channel, "offset": 0, "epoch": epoch}}).decode())
        while True:
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if reply.get("id") == 2:
                break
        took = time.monotonic() - started
    sub = reply.get("subscribe")
    if sub is None:
        raise AssertionError(f"{user}: {reply}")
    offsets = [p["offset"] for p in sub["publications"]]
    if not sub["recovered"] or offsets != list(range(1, expected + 1)):
        raise AssertionError(f"{user}: recovered {sub['recovered']}, offsets {offsets}")
    return took


async def main(url: str, channel: str, epoch: str, expected: int, first: int,
               count: int) -> None:
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    outcomes = await asyncio.gather(*(recover(url, f"storm{n}", channel, epoch, expected)
                                      for n in range(first, first + count)),
                                    return_exceptions=True)
    times = [o for o in outcomes if isinstance(o, float)]
    failures = [repr(o) for o in outcomes if not isinstance(o, float)]
    print(orjson.dumps({"times": times, "failures": failures[:20],
                        "cpu": time.process_time()}).decode(), flush=True)


class Crowd:
    """`size` clients over `workers` processes, ready to storm `url` at once."""

    def __init__(self, url: str, channel: str, epoch: str, expected: int, size: int,
                 workers: int = 2):
        self.args = [url, channel, epoch, str(expected)]
        share = -(-size // workers)
        self.parts = [(first, min(share, size - first)) for first in range(0, size, share)]
        self.procs: list[asyncio.subprocess.Process] = []
        self.cpu = 0.0

    async def ready(self) -> None:
        for first, count in self.parts:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.chaos.crowd", *self.args, str(first), str(count),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
            self.procs.append(proc)
        for proc in self.procs:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"ready", line

    async def storm(self) -> tuple[list[float], list[str]]:
        """Every client at once; their times to recovered, and what failed.

        `cpu` is then the seconds of CPU the workers spent: when it is near the node's, the
        clients, not the node, set the pace on a small machine."""
        for proc in self.procs:
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        times: list[float] = []
        failures: list[str] = []
        self.cpu = 0.0
        for proc in self.procs:
            line = await proc.stdout.readline()
            assert line, f"a crowd worker exited with {await proc.wait()} before reporting"
            result = orjson.loads(line)
            times += result["times"]
            failures += result["failures"]
            self.cpu += result["cpu"]
            await proc.wait()
        return times, failures

    def kill(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()


if __name__ == "__main__":
    url, channel, epoch, expected, first, count = sys.argv[1:7]
    uvloop.run(main(url, channel, epoch, int(expected), int(first), int(count)))
