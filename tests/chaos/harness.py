"""Real nodes, subscribers that recover like a client library, a publisher that keeps score.

BROKERS and STORES are the backends the suite runs on: adding one is one line in each
(a URL for a run's tag, and how to clean up after it).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import websockets

from tests.chaos.checker import ACKED, REFUSED, UNKNOWN, Ledger
from tests.cluster.conftest import PG, clean_broker, drop_schema
from tests.cluster.conftest import broker_url as network_broker_url
from tests.conftest import free_port, start_process
from tests.store.test_store import MYSQL, mysql_execute
from tidings.supervision import cancel_and_wait


async def _drop_mysql_database(tag: str) -> None:
    await mysql_execute(f"DROP DATABASE IF EXISTS `{tag}`")


async def _nothing(tag: str) -> None:
    return None


@dataclass(frozen=True)
class Backend:
    url: Callable[..., str]  # (tag, port of a private server or None / tmp dir) -> URL
    clean: Callable  # async (tag) -> None
    private: str | None = None  # the PrivateServer kind a restart test can run it on


BROKERS: dict[str, Backend] = {
    "memory": Backend(lambda tag, port=None: "memory://", _nothing),
    "redis": Backend(lambda tag, port=None: network_broker_url("redis", tag, port),
                     lambda tag: clean_broker("redis", tag), "redis"),
    "amqp": Backend(lambda tag, port=None: network_broker_url("amqp", tag, port),
                    lambda tag: clean_broker("amqp", tag)),
    "nats": Backend(lambda tag, port=None: network_broker_url("nats", tag, port),
                    lambda tag: clean_broker("nats", tag), "nats"),
    "kafka": Backend(lambda tag, port=None: network_broker_url("kafka", tag, port),
                     lambda tag: clean_broker("kafka", tag), "kafka"),
}
STORES: dict[str, Backend] = {
    "sqlite": Backend(lambda tag, tmp: f"sqlite:///{tmp}/chaos.db", _nothing),
    "postgresql": Backend(lambda tag, tmp: f"{PG}?schema={tag}&application_name={tag}",
                          drop_schema),
    "mysql": Backend(lambda tag, tmp: f"{MYSQL}/{tag}", _drop_mysql_database),
}

NODE_SETTINGS = {
    "TIDINGS_PING_INTERVAL": "1", "TIDINGS_PONG_TIMEOUT": "1", "TIDINGS_CLUSTER_TTL": "2",
    "TIDINGS_SHUTDOWN_GRACE": "1", "TIDINGS_RESILIENCE__PUBLISH_TIMEOUT": "2",
}
DEAD_AFTER = 2.5  # a client hearing nothing (not even a ping) this long reconnects
PONG = "{\"pong\":{}}"


class NodeProcess:
    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.env = {**env, "TIDINGS_NODE_NAME": name, "TIDINGS_PORT": str(free_port())}
        self.url = f"http://127.0.0.1:{self.env['TIDINGS_PORT']}"
        self.ws_url = f"ws://127.0.0.1:{self.env['TIDINGS_PORT']}/ws"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = start_process(self.env)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    async def metrics(self) -> dict[str, float]:
        """Unlabelled-by-task gauges of /metrics, by name (labels dropped)."""
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.url}/metrics", timeout=aiohttp.ClientTimeout(5)) as r:
                text = await r.text()
        values: dict[str, float] = {}
        for name, value in re.findall(r"^([a-z_]+)(?:\{[^}]*\})? ([-0-9.e+]+)$", text, re.M):
            values[name] = values.get(name, 0.0) + float(value)
        return values


class Deployment:
    """`size` nodes on one broker and store, with a fresh tag for every name they use."""

    def __init__(self, broker: str, store: str, tmp: Path, *, size: int,
                 broker_port: int | None = None, **settings: str):
        self.tag = f"x{uuid.uuid4().hex[:10]}"
        self.broker_name, self.store_name = broker, store
        env = {"TIDINGS_BROKER": BROKERS[broker].url(self.tag, broker_port),
               "TIDINGS_STORE": STORES[store].url(self.tag, tmp), **NODE_SETTINGS, **settings}
        self.nodes = [NodeProcess(f"{self.tag}-n{i + 1}", env) for i in range(size)]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for node in self.nodes:
            await loop.run_in_executor(None, node.start)

    async def close(self) -> None:
        for node in self.nodes:
            node.kill()
        await BROKERS[self.broker_name].clean(self.tag)
        await STORES[self.store_name].clean(self.tag)


class Subscriber:
    """One client: recovers every channel from its last offset after any lost connection,
    trying the nodes in turn, as a client library behind a load balancer would."""

    def __init__(self, name: str, channels: list[str], nodes: list[NodeProcess],
                 ledger: Ledger, first: int = 0):
        self.name = name
        self.channels = channels
        self.nodes = nodes
        self.ledger = ledger
        self.turn = first
        self.positions: dict[str, tuple[int, str]] = {}
        self.ready = asyncio.Event()
        self.reconnects = 0
        self.cannot_recover: list[str] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        for channel in self.channels:
            self.ledger.subscribed(self.name, channel)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        lost_at: float | None = None
        while True:
            node = self.nodes[self.turn % len(self.nodes)]
            try:
                async with websockets.connect(node.ws_url, ping_interval=None, max_size=None,
                                              open_timeout=DEAD_AFTER) as ws:
                    await self._session(ws, lost_at)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                pass
            lost_at = lost_at or time.monotonic()
            self.reconnects += 1
            self.turn += 1
            await asyncio.sleep(0.05)

    async def _session(self, ws, lost_at: float | None) -> None:
        ids = itertools.count(1)
        await ws.send(orjson.dumps({"id": next(ids), "connect": {"user": self.name}}).decode())
        await self._reply(ws)
        for channel in self.channels:
            params: dict = {"channel": channel}
            if channel in self.positions:
                params.update(offset=self.positions[channel][0],
                              epoch=self.positions[channel][1])
            await ws.send(orjson.dumps({"id": next(ids), "subscribe": params}).decode())
            reply = await self._reply(ws)
            if "error" in reply:
                raise websockets.WebSocketException(f"subscribe failed: {reply['error']}")
            sub = reply["subscribe"]
            for pub in sub.get("publications", []):
                self._take(pub, "recovered")
            if channel in self.positions and not sub.get("recovered"):
                self.cannot_recover.append(channel)
            self.positions[channel] = (max(self.positions.get(channel, (0,))[0], sub["offset"]),
                                       sub["epoch"])
        if lost_at is not None:
            self.ledger.recoveries.append(time.monotonic() - lost_at)
        self.ready.set()
        while True:
            message = await self._next(ws)
            if "pub" in message:
                self._take(message["pub"], "live")
            elif "ping" in message:
                await ws.send(PONG)
            elif "disconnect" in message:
                return

    async def _next(self, ws) -> dict:
        frame = await asyncio.wait_for(ws.recv(), DEAD_AFTER)
        return orjson.loads(frame)

    async def _reply(self, ws) -> dict:
        """The next reply; live publications of channels already subscribed are taken."""
        while True:
            message = await self._next(ws)
            if "id" in message:
                return message
            if "pub" in message:
                self._take(message["pub"], "live")
            elif "ping" in message:
                await ws.send(PONG)

    def _take(self, pub: dict, how: str) -> None:
        channel = pub["channel"]
        self.ledger.received(self.name, channel, pub["offset"], pub["data"], how)
        self.positions[channel] = (pub["offset"], pub["epoch"])


class Publisher:
    """Publishes tokens through the server API of the given nodes, in turn, keeping score."""

    def __init__(self, name: str, nodes: list[NodeProcess], ledger: Ledger):
        self.name = name
        self.nodes = nodes
        self.ledger = ledger
        self.sent = 0

    async def run(self, channels: list[str], fault_over: asyncio.Event, *, after: int,
                  limit: int, pause: float = 0.01) -> None:
        """Publish before and during the fault, then `after` more (`limit` in all at most)."""
        timeout = aiohttp.ClientTimeout(total=4)
        since_fault = 0
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for n in range(limit):
                if since_fault >= after:
                    return
                since_fault += fault_over.is_set()
                channel = channels[n % len(channels)]
                node = self.nodes[n % len(self.nodes)]
                token = f"{self.name}-{n}"
                self.ledger.published(token, channel, *await self._one(http, node, channel,
                                                                        token))
                self.sent += 1
                await asyncio.sleep(pause)

    async def _one(self, http, node: NodeProcess, channel: str, token: str):
        try:
            async with http.post(f"{node.url}/api/publish",
                                 json={"channel": channel, "data": token}) as resp:
                body = await resp.json(content_type=None)
        except aiohttp.ClientConnectorError:
            return REFUSED, None  # never reached the node
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return UNKNOWN, None  # sent; the answer was lost
        if resp.status == 200:
            return ACKED, body["offset"]
        if body["error"]["code"] == 111:
            return REFUSED, None
        return UNKNOWN, None


async def converge(ledger: Ledger, timeout: float = 30) -> None:
    """Until every subscriber has every acknowledged publication, or `timeout`."""
    deadline = time.monotonic() + timeout
    while ledger.missing() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
