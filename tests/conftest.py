"""Shared fixtures: a real node on a real loopback port, and a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import websockets
from aiohttp import web
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.private import PrivateServer, free_port
from tidings.config import load_settings
from tidings.node import Node
from tidings.server.app import make_app
from tidings.server.front import TidingsSite

# The suite shares a loaded machine: how fast hypothesis can draw inputs or run one example
# says nothing about the code. Bounds that matter are asserted by the tests themselves.
hypothesis_settings.register_profile("shared-machine", deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("shared-machine")


class CommandError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Client:
    """A native-protocol client over the `websockets` library: calls by id, pushes in a queue."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.replies: dict[int, asyncio.Future] = {}
        self.pushes: asyncio.Queue = asyncio.Queue()
        self.errors: asyncio.Queue = asyncio.Queue()  # error frames without id
        self.binary: asyncio.Queue = asyncio.Queue()  # binary (voice) frames
        self.reader = asyncio.create_task(self._read())
        self.connect_result: dict = {}

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.binary.put_nowait(frame)
                    continue
                if frame == "pong":
                    self.pushes.put_nowait({"pong": "text"})
                    continue
                message = orjson.loads(frame)
                id = message.get("id")
                if id is not None and id in self.replies:
                    self.replies.pop(id).set_result(message)
                elif "error" in message:
                    self.errors.put_nowait(message)
                else:
                    self.pushes.put_nowait(message)

    async def request(self, method: str, params: dict, timeout: float = 10) -> dict:
        """The whole reply frame."""
        id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.replies[id] = future
        await self.ws.send(orjson.dumps({"id": id, method: params}).decode())
        return await asyncio.wait_for(future, timeout)

    async def call(self, method: str, params: dict, timeout: float = 10) -> dict:
        """The result, or CommandError."""
        reply = await self.request(method, params, timeout)
        if "error" in reply:
            raise CommandError(reply["error"]["code"], reply["error"]["message"])
        return reply[method]

    async def push(self, kind: str | None = None, timeout: float = 5) -> dict:
        """The next push (of `kind`, skipping pings and other kinds)."""
        deadline = time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(self.pushes.get(), deadline - time.monotonic())
            if "ping" in message and kind != "ping":
                continue
            if kind is None or kind in message:
                return message[kind] if kind else message

    async def pubs(self, count: int, timeout: float = 5) -> list[dict]:
        return [await self.push("pub", timeout) for _ in range(count)]

    async def no_push(self, kind: str = "pub", wait: float = 0.3) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            message = await self.push(kind, wait)
            raise AssertionError(f"unexpected {kind}: {message}")

    async def closed(self, timeout: float = 5) -> tuple[int, str]:
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code, self.ws.close_reason

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


class Server:
    """A node running in the test's event loop on a real loopback port."""

    def __init__(self, node: Node, runner: web.AppRunner, port: int):
        self.node = node
        self.runner = runner
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"

    async def client(self, user: str | None = "alice", *, connect: bool = True,
                     **connect_params) -> Client:
        ws = await websockets.connect(self.ws_url, max_size=None, ping_interval=None)
        client = Client(ws)
        if connect:
            params = {"user": user, **connect_params} if user else connect_params
            client.connect_result = await client.call("connect", params)
        return client


def settings_for(tmp_path: Path, **overrides):
    overrides.setdefault("store", f"sqlite:///{tmp_path / 'tidings.db'}")
    overrides.setdefault("port", free_port())
    overrides.setdefault("node_name", f"test-{overrides['port']}")
    return load_settings(None, **overrides)


@contextlib.asynccontextmanager
async def running_node(settings) -> AsyncIterator[Server]:
    node = Node(settings)
    runner = web.AppRunner(make_app(node), handle_signals=False, access_log=None,
                           shutdown_timeout=1)
    await runner.setup()
    site = TidingsSite(runner, "127.0.0.1", settings.port)
    await site.start()
    try:
        yield Server(node, runner, settings.port)
    finally:
        await runner.cleanup()


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[Server]:
    async with running_node(settings_for(tmp_path)) as running:
        yield running


@pytest.fixture
def make_server(tmp_path):
    """Start a node with settings overridden: `async with make_server(ping_interval=1) as s`."""
    return lambda **overrides: running_node(settings_for(tmp_path, **overrides))


def start_process(env: dict[str, str], *args: str) -> subprocess.Popen:
    """A real `tidings serve` process; waits until /health answers."""
    full_env = {**os.environ, **env}
    proc = subprocess.Popen([sys.executable, "-m", "tidings", "serve", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    port = int(env["TIDINGS_PORT"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tidings exited: {proc.stdout.read().decode()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("tidings did not start listening")


@pytest.fixture
async def private_tansu() -> AsyncIterator[PrivateServer]:
    """A tansu of the test's own, not started: a test that needs it starts it."""
    server = PrivateServer("kafka")
    yield server
    await asyncio.to_thread(server.remove)


@pytest.fixture
async def private_nats() -> AsyncIterator[PrivateServer]:
    """A nats-server with JetStream of the test's own, not started."""
    server = PrivateServer("nats")
    yield server
    await asyncio.to_thread(server.remove)
