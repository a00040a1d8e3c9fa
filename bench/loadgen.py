"""Load-generator processes: many picows WebSocket clients on uvloop, driven over a pipe.

A worker connects its share of the clients, says "ready", waits for "go", runs its role
(subscribe and count, publish, send direct messages, or hold idle connections) until the
expected count or its deadline, and sends back what it measured, including its own CPU
time, so the report can say when the generator, not the server, was the limit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from dataclasses import dataclass, field

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.protocols import PROTOCOLS

PAD = "x" * 64


@dataclass
class Job:
    proto: str
    url: str  # http://127.0.0.1:PORT
    role: str  # "sub" | "pub" | "dm" | "idle"
    users: list[str]
    room: str = "room:bench"
    expect: int = 0  # publications each subscriber should see (sub, dm)
    count: int = 0  # messages to publish or send (pub, dm: per client)
    rate: float = 0.0  # messages/s for the whole worker; 0 = as fast as acks allow
    partners: list[str] = field(default_factory=list)  # dm: whom each user writes to
    deadline: float = 60.0


class Client(WSListener):
    def __init__(self, worker: "Worker", user: str):
        self.worker, self.user, self.proto = worker, user, worker.proto
        self.transport: WSTransport | None = None
        # exists from the start: a server may answer (Socket.IO's open/connect) before
        # the first call is made
        self.reply: asyncio.Future = asyncio.get_running_loop().create_future()
        self.ids = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        kind, value = self.proto.read(frame.get_payload_as_bytes())
        if kind == "pub":
            self.worker.received(value)
        elif kind == "reply":
            if not self.reply.done():
                self.reply.set_result(value)
        elif kind == "ping":
            transport.send(WSMsgType.TEXT, value)
        elif kind == "open":
            transport.send(WSMsgType.TEXT, self.proto.open_reply(self.user))

    async def call(self, frame: bytes | None, wait: bool = True) -> None:
        """Send a command and wait for its acknowledgement (if the protocol has one)."""
        self.ids += 1
        if frame is not None:
            self.reply = asyncio.get_running_loop().create_future()
            self.transport.send(WSMsgType.TEXT, frame)
        if wait:
            await asyncio.wait_for(self.reply, 30)


class Worker:
    def __init__(self, job: Job):
        self.job = job
        self.proto = PROTOCOLS[job.proto]
        self.clients: list[Client] = []
        self.count = 0
        self.latencies: list[float] = []
        self.first = self.last = 0.0
        self.done = asyncio.Event()
        self.expected_total = job.expect * len(job.users)

    def received(self, data: dict) -> None:
        now = time.time()
        self.count += 1
        if not self.first:
            self.first = now
        self.last = now
        if self.count % self.sample == 0:
            self.latencies.append(now - data["t"])
        if self.count >= self.expected_total:
            self.done.set()

    @property
    def sample(self) -> int:
        return max(1, self.expected_total // 200_000)

    async def connect_all(self) -> None:
        url = self.job.url.replace("http", "ws", 1) + self.proto.path

        async def one(user: str) -> Client:
            _, client = await ws_connect(lambda: Client(self, user), url, max_frame_size=1 << 24)
            await client.call(self.proto.connect(user, 1), wait=self.job.proto != "bare")
            if self.job.role == "sub" and self.job.proto != "bare":
                await client.call(self.proto.join(self.job.room, client.ids + 1))
            return client

        for start in range(0, len(self.job.users), 200):
            batch = self.job.users[start:start + 200]
            self.clients += await asyncio.gather(*(one(u) for u in batch))

    async def publish(self) -> dict:
        job, sent, started = self.job, 0, time.time()
        per_client = job.count // max(1, len(self.clients))
        interval = len(self.clients) / job.rate if job.rate else 0.0

        async def run(client: Client, index: int) -> None:
            nonlocal sent
            next_at = started + index * (interval / max(1, len(self.clients)))
            for k in range(per_client):
                if interval:
                    delay = next_at - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_at += interval
                data = {"t": time.time(), "k": k, "p": PAD}
                if job.role == "dm":
                    frame = self.proto.send(job.partners[index], data, client.ids + 1)
                else:
                    frame = self.proto.publish(job.room, data, client.ids + 1)
                await client.call(frame)
                sent += 1

        await asyncio.gather(*(run(c, i) for i, c in enumerate(self.clients)))
        return {"sent": sent, "send_seconds": time.time() - started}

    async def wait_received(self) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), self.job.deadline)
        except asyncio.TimeoutError:
            pass


async def _main(job: Job, pipe) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(job)
    cpu0 = time.process_time()
    connect_started = time.time()
    await worker.connect_all()
    connect_seconds = time.time() - connect_started
    pipe.send(("ready", connect_seconds))
    await loop.run_in_executor(None, pipe.recv)  # "go"
    cpu1, wall1 = time.process_time(), time.time()
    result: dict = {"connect_seconds": connect_seconds, "clients": len(worker.clients)}
    if job.role == "pub":
        result.update(await worker.publish())
    elif job.role == "dm":
        sending = asyncio.create_task(worker.publish())
        await worker.wait_received()
        result.update(await sending)
    elif job.role == "sub":
        await worker.wait_received()
    else:  # idle: hold the connections until told to let go
        await loop.run_in_executor(None, pipe.recv)
    result.update(
        received=worker.count, first=worker.first, last=worker.last,
        latencies=worker.latencies, sample=worker.sample,
        cpu_seconds=time.process_time() - cpu1, wall_seconds=time.time() - wall1,
        connect_cpu_seconds=cpu1 - cpu0,
    )
    pipe.send(("result", result))
    for client in worker.clients:
        client.transport.disconnect()


def _run(job: Job, pipe) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(_main(job, pipe))


class Generator:
    """Worker processes for one step of a scenario."""

    def __init__(self, jobs: list[Job]):
        ctx = multiprocessing.get_context("spawn")
        self.pipes, self.procs = [], []
        for job in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_run, args=(job, child), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ready(self, timeout: float = 120) -> list[float]:
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError("load generator did not get ready")
            out.append(pipe.recv()[1])
        return out

    def go(self) -> None:
        for pipe in self.pipes:
            pipe.send("go")

    def results(self, timeout: float = 180) -> list[dict]:
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError("load generator did not finish")
            out.append(pipe.recv()[1])
        return out

    def release(self) -> None:
        """For idle workers: let go of the connections."""
        for pipe in self.pipes:
            pipe.send("release")

    def close(self) -> None:
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
