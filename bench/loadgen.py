"""Load-generator processes: picows WebSocket clients on uvloop, driven over a pipe.

Why separate processes: the server under test gets one core's worth of Python at most, and
so would a generator living in the harness; several workers, each holding a share of the
clients, parse frames in compiled code (picows) and spread over both cores.

An agent connects its clients once (and subscribes them, if it has a room), says "ready",
then runs any number of rounds on those same connections: the harness arms every agent for
a round (counters reset), says "go", and each agent publishes and/or counts what it
receives until the round's count or deadline, then reports, with its own CPU time, so the
report can tell when the generator rather than the server was the limit. Reusing the
connections across rounds is what lets a point be repeated three times in seconds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.limits import bound_socket, raise_nofile
from bench.protocols import PROTOCOLS

PAD = "x" * 64
MAX_LATENCY_SAMPLES = 50_000  # per agent and round: enough for a p99.9
CONNECT_BATCH = 200  # connections opened at once by one agent


@dataclass
class Setup:
    """Who an agent is: its clients, where they connect, and which room they join."""

    proto: str
    url: str  # http://127.0.0.1:PORT
    users: list[str]
    room: str | None = None  # subscribe every client here after connecting
    publisher: bool = False  # bare relay: publishers connect where they receive nothing
    sources: tuple[str, ...] = ()  # local addresses the clients connect from, in turn


@dataclass
class Round:
    """One measured round. Counts and the deadline bound every loop in it."""

    number: int
    expect: int = 0  # publications each client should receive
    count: int = 0  # messages each client sends
    rate: float = 0.0  # messages/s for the whole agent; 0 = as fast as acks come back
    room: str = "room:bench"  # where `count` publications go
    partners: list[str] = field(default_factory=list)  # direct messages: one per client
    deadline: float = 60.0
    idle: bool = False  # wait out the deadline whatever arrives: an idle window


def round_marker(number: int) -> bytes:
    """Tags a round's payloads (inside a string, so no server's JSON spacing changes it):
    a late frame from an earlier round is told apart without parsing it."""
    return f"<round {number}>".encode()


class Client(WSListener):
    def __init__(self, agent: "Agent", user: str):
        self.agent, self.user, self.proto = agent, user, agent.proto
        self.transport: WSTransport | None = None
        # exists from the start: a server may speak first (Socket.IO's open packet)
        self.reply: asyncio.Future = asyncio.get_running_loop().create_future()
        self.ids = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return
        payload = frame.get_payload_as_bytes()
        kind, value = self.proto.read(payload)
        if kind == "pub":
            self.agent.received(payload)
        elif kind == "reply":
            if not self.reply.done():
                self.reply.set_result(value)
        elif kind == "ping":
            self.agent.pings += 1
            transport.send(self.agent.opcode, value)
        elif kind == "open":
            transport.send(WSMsgType.TEXT, self.proto.open_reply(self.user))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.agent.dropped += 1
        if not self.reply.done():
            self.reply.set_exception(ConnectionError("server closed the connection"))
            self.reply.exception()  # retrieved here; a waiter still gets it raised

    async def call(self, frame: bytes | None, wait: bool = True, timeout: float = 30) -> None:
        """Send a command and wait for its acknowledgement (if the protocol has one)."""
        self.ids += 1
        if frame is not None:
            self.reply = asyncio.get_running_loop().create_future()
            self.transport.send(self.agent.opcode, frame)
        if wait:
            await asyncio.wait_for(self.reply, timeout)


class Agent:
    def __init__(self, setup: Setup):
        self.setup = setup
        self.proto = PROTOCOLS[setup.proto]
        # Protobuf clients (Centrifugo's) send binary frames; every other protocol text
        self.opcode = WSMsgType.BINARY if getattr(self.proto, "binary", False) else WSMsgType.TEXT
        self.clients: list[Client] = []
        self.dropped = 0
        self.arm(Round(0))

    # ---- receiving -------------------------------------------------------------------

    def arm(self, rnd: Round) -> None:
        self.round = rnd
        self.marker = round_marker(rnd.number)
        self.count = self.stale = self.pings = 0
        self.latencies: list[float] = []
        self.last = 0.0
        self.expected_total = rnd.expect * len(self.clients)
        self.sample = max(1, self.expected_total // MAX_LATENCY_SAMPLES)
        self.done = asyncio.Event()
        if self.expected_total == 0 and not rnd.idle:
            self.done.set()

    def received(self, payload: bytes) -> None:
        """Count a publication; parse it only when its latency is sampled, so the
        generator's cost per frame stays far below the server's."""
        if self.marker not in payload:
            self.stale += 1  # late from an earlier round that hit its deadline
            return
        self.count += 1
        self.last = now = time.time()
        if self.count % self.sample == 0:
            self.latencies.append(now - self.proto.data(payload)["t"])
        if self.count >= self.expected_total:
            self.done.set()

    # ---- connecting ------------------------------------------------------------------

    async def connect_all(self) -> None:
        proto, setup = self.proto, self.setup
        path = proto.pub_path if setup.publisher else proto.path
        url = setup.url.replace("http", "ws", 1) + path

        async def one(user: str, index: int) -> Client:
            source = setup.sources[index % len(setup.sources)] if setup.sources else ""
            bound = (lambda _: bound_socket(source)) if source else None
            # a generous handshake timeout: 10,000 clients connect on a 2-core machine
            # that is also running the server under test
            _, client = await ws_connect(lambda: Client(self, user), url,
                                         max_frame_size=1 << 24, websocket_handshake_timeout=30,
                                         socket_factory=bound)
            # setting up is not measured: a slow server gets minutes, not the round's 30 s
            await client.call(proto.connect(user, 1), wait=proto.acknowledges, timeout=180)
            if setup.room and proto.acknowledges:
                await client.call(proto.join(setup.room, client.ids + 1), timeout=180)
            return client

        for start in range(0, len(setup.users), CONNECT_BATCH):
            batch = setup.users[start:start + CONNECT_BATCH]
            self.clients += await asyncio.gather(*(one(u, start + k)
                                                   for k, u in enumerate(batch)))

    # ---- sending ---------------------------------------------------------------------

    async def send_all(self) -> dict:
        rnd, started = self.round, time.time()
        clients = [c for c in self.clients if not c.transport.is_disconnected]
        interval = len(clients) / rnd.rate if rnd.rate else 0.0
        sent = failed = 0
        marker = round_marker(rnd.number).decode()

        async def run(client: Client, index: int) -> None:
            nonlocal sent, failed
            next_at = started + index * interval / max(1, len(clients))
            for k in range(rnd.count):
                if time.time() - started > rnd.deadline:
                    return
                if interval:
                    delay = next_at - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    # latency counts from when the message was due, not when a publisher
                    # held up by a slow acknowledgement got to send it (no coordinated
                    # omission: a server that falls behind the rate shows it in its tail)
                    stamp = next_at
                    next_at += interval
                else:
                    stamp = time.time()
                data = {"t": stamp, "k": k, "p": marker + PAD}
                if rnd.partners:
                    frame = self.proto.send(rnd.partners[index], data, client.ids + 1)
                else:
                    frame = self.proto.publish(rnd.room, data, client.ids + 1)
                try:
                    await client.call(frame, timeout=max(1.0, rnd.deadline))
                except (asyncio.TimeoutError, ConnectionError):
                    failed += 1
                    return
                sent += 1

        await asyncio.gather(*(run(c, i) for i, c in enumerate(clients)))
        return {"sent": sent, "failed_sends": failed, "send_seconds": time.time() - started}

    async def run_round(self) -> dict:
        rnd = self.round
        cpu0, wall0 = time.process_time(), time.time()
        result: dict = {}
        sending = asyncio.create_task(self.send_all()) if rnd.count else None
        try:
            await asyncio.wait_for(self.done.wait(), rnd.deadline)
        except asyncio.TimeoutError:
            pass
        if sending:
            result.update(await sending)
        result.update(
            received=self.count, expected=self.expected_total, stale=self.stale,
            last=self.last, latencies=self.latencies, sample=self.sample,
            cpu_seconds=time.process_time() - cpu0, wall_seconds=time.time() - wall0,
            dropped=self.dropped, pings=self.pings,
        )
        return result


async def _main(setup: Setup, pipe) -> None:
    loop = asyncio.get_running_loop()
    agent = Agent(setup)
    cpu0, wall0 = time.process_time(), time.time()
    try:
        await agent.connect_all()
    except Exception as exc:  # reported to the harness, which fails the point
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    pipe.send(("ready", {"connect_seconds": time.time() - wall0,
                         "connect_cpu_seconds": time.process_time() - cpu0,
                         "clients": len(agent.clients)}))
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "close":
            break
        try:
            if command == "arm":
                agent.arm(arg)
                pipe.send(("armed", None))
            elif command == "go":
                pipe.send(("result", await agent.run_round()))
        except Exception as exc:
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
            break
    for client in agent.clients:
        client.transport.disconnect()
    await asyncio.sleep(0.05)


def _run(setup: Setup, pipe) -> None:
    raise_nofile()
    uvloop.run(_main(setup, pipe))


class Generator:
    """A set of agent processes for one point; used as a context manager."""

    def __init__(self, setups: list[Setup]):
        ctx = multiprocessing.get_context("spawn")
        self.pipes, self.procs = [], []
        for setup in setups:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_run, args=(setup, child), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def _gather(self, expected: str, timeout: float, pipes=None) -> list:
        out = []
        deadline = time.monotonic() + timeout
        for pipe in pipes or self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"load generator: no {expected!r} within {timeout:.0f} s")
            kind, value = pipe.recv()
            if kind == "error":
                raise RuntimeError(f"load generator: {value}")
            out.append(value)
        return out

    def ready(self, timeout: float = 300) -> list[dict]:
        """Wait until every agent has connected its clients."""
        return self._gather("ready", timeout)

    def arm(self, rounds: list[Round]) -> None:
        for pipe, rnd in zip(self.pipes, rounds):
            pipe.send(("arm", rnd))
        self._gather("armed", 30)

    def go(self) -> None:
        for pipe in self.pipes:
            pipe.send(("go", None))

    def results(self, deadline: float) -> list[dict]:
        return self._gather("result", deadline + 30)

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
