"""Centrifugo-protocol test clients: real centrifuge-js on Node, and JWTs for them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import aiohttp
import jwt
import orjson
import pytest

from tests.node_driver import NodeDriver
from tidings.node import Node

SECRET = "centrifugo-test-secret-of-32-bytes-or-more"


def token(user: str, ttl: float = 3600, **claims) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + ttl), **claims}, SECRET,
                      algorithm="HS256")


def ws_url(port: int, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{port}/connection/websocket" + (f"?{params}" if params else "")


async def api(server, method: str, body: dict) -> dict:
    async with aiohttp.ClientSession(headers={"Authorization": "apikey k"}) as http:
        async with http.post(f"{server.url}/api/{method}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def publish_offline(settings, channel: str, values: list) -> None:
    """Publications made by the node's own pipeline while its port is closed."""
    node = Node(settings)
    await node.start()
    try:
        for value in values:
            await node.publish(node.channel(channel), orjson.dumps(value), sender="bob")
    finally:
        await node.stop()


class CentrifugeJs(NodeDriver):
    """A real centrifuge-js client in a Node process (tests/js/centrifuge_driver.mjs)."""

    script = "centrifuge_driver.mjs"

    def __init__(self, proc: asyncio.subprocess.Process):
        self.arrived = asyncio.Event()
        self.taken: set[int] = set()  # indexes in `log` that event() returned
        self.refs = itertools.count(1)
        self.log: list[dict] = []  # every event but replies to calls
        self.calls: dict[int, asyncio.Future] = {}
        super().__init__(proc)

    def received(self, event: dict) -> None:
        waiting = self.calls.pop(event.get("ref"), None)
        if waiting is not None:
            waiting.set_result(event)
        else:
            self.log.append(event)
            self.arrived.set()

    async def event(self, kind: str, timeout: float = 10, **match) -> dict:
        """The oldest event of `kind` (whose fields equal `match`) not taken yet; events of
        other kinds or fields stay for later calls."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(len(self.log)):
                event = self.log[index]
                if index not in self.taken and event["event"] == kind and all(
                        event.get(k) == v for k, v in match.items()):
                    self.taken.add(index)
                    return event
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())

    async def call(self, op: str, timeout: float = 10, **params) -> dict:
        """A command's result; AssertionError with the error when it failed."""
        ref = next(self.refs)
        self.calls[ref] = asyncio.get_running_loop().create_future()
        await self.do(op, ref=ref, **params)
        event = await asyncio.wait_for(self.calls[ref], timeout)
        if event["event"] == "failed":
            raise CentrifugoCallFailed(event["error"])
        return event["result"]

    async def subscribe(self, channel: str, **options) -> dict:
        await self.do("subscribe", channel=channel, options=options)
        return await self.event("subscribed", channel=channel)

    async def publications(self, count: int, timeout: float = 10, **match) -> list[dict]:
        return [await self.event("publication", timeout, **match) for _ in range(count)]

    async def no_publication(self, wait: float = 0.5) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            event = await self.event("publication", wait)
            raise AssertionError(f"unexpected publication: {event}")


class CentrifugoCallFailed(AssertionError):
    def __init__(self, error: dict):
        super().__init__(f"centrifuge-js call failed: {error}")
        self.code = error.get("code")
        self.message = error.get("message")


@pytest.fixture
async def centrifuge_js():
    """Start centrifuge-js clients: `await centrifuge_js(url, token=...)`; all stopped after."""
    started: list[CentrifugeJs] = []

    async def start(url: str, *, wait: bool = True, **config) -> CentrifugeJs:
        client = await CentrifugeJs.start(url, **config)
        started.append(client)
        if wait:
            await client.event("connected", timeout=20)
        return client

    yield start
    for client in started:
        print("centrifuge-js events:", client.log)  # shown when the test fails
        await client.stop()
