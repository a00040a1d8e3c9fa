"""STOMP test clients: raw frames over a real WebSocket, and real @stomp/stompjs on Node."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import websockets

from tests.node_driver import NodeDriver
from tidings.protocol import stomp
from tidings.protocol.stomp import SERVER_COMMANDS, Frame, FrameParser, HeartBeat, Limits


class RawStomp:
    """Frames written by hand over the `websockets` library, frames read with a parser."""

    def __init__(self, ws):
        self.ws = ws
        self.parser = FrameParser(Limits(max_frame_bytes=1 << 24), commands=SERVER_COMMANDS)
        self.frames: asyncio.Queue = asyncio.Queue()
        self.heartbeats = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, path: str = "/stomp", **kwargs) -> "RawStomp":
        ws = await websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=None,
                                      ping_interval=None, **kwargs)
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.ws:
                data = message.encode() if isinstance(message, str) else message
                for event in self.parser.feed(data):
                    if isinstance(event, HeartBeat):
                        self.heartbeats += 1
                    else:
                        self.frames.put_nowait(event)

    async def send(self, command: str, headers: dict | list = (), body: bytes | str = b"",
                   *, raw: bytes | None = None) -> None:
        if raw is None:
            items = headers.items() if isinstance(headers, dict) else headers
            body = body.encode() if isinstance(body, str) else body
            raw = stomp.encode(command, list(items), body)
        await self.ws.send(raw)

    async def frame(self, command: str | None = None, timeout: float = 5) -> Frame:
        frame = await asyncio.wait_for(self.frames.get(), timeout)
        if command is not None:
            assert frame.command == command, frame
        return frame

    async def connect(self, user: str = "alice", **headers) -> Frame:
        await self.send("CONNECT", {"accept-version": "1.2", "login": user,
                                    "heart-beat": "0,0", **headers})
        return await self.frame("CONNECTED")

    async def subscribe(self, destination: str, id: str = "sub-0", *, wait: bool = True,
                        **headers) -> None:
        """SUBSCRIBE with a receipt; `wait` for it (recovered messages come before it)."""
        headers = {"id": id, "destination": destination, "receipt": f"s-{id}", **headers}
        await self.send("SUBSCRIBE", headers)
        if wait:
            receipt = await self.frame()
            assert (receipt.command, receipt.header("receipt-id")) == ("RECEIPT", f"s-{id}"), \
                receipt

    async def messages(self, count: int, timeout: float = 5) -> list[Frame]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            frame = await self.frame(timeout=deadline - time.monotonic())
            if frame.command == "MESSAGE":
                out.append(frame)
        return out

    async def no_frame(self, wait: float = 0.3) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            frame = await self.frame(timeout=wait)
            raise AssertionError(f"unexpected frame: {frame}")

    async def closed(self, timeout: float = 5) -> int:
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def stomp_client(port: int, user: str = "alice", **headers) -> RawStomp:
    client = await RawStomp.open(port)
    await client.connect(user, **headers)
    return client


class StompJs(NodeDriver):
    """A real @stomp/stompjs client in a Node process (tests/js/stomp_driver.mjs)."""

    script = "stomp_driver.mjs"

    def __init__(self, proc: asyncio.subprocess.Process):
        self.events: asyncio.Queue = asyncio.Queue()
        super().__init__(proc)

    def received(self, event: dict) -> None:
        self.events.put_nowait(event)

    async def event(self, kind: str, timeout: float = 10) -> dict:
        """The next event of `kind`; others before it are dropped, except a failure."""
        deadline = time.monotonic() + timeout
        while True:
            event = await asyncio.wait_for(self.events.get(), deadline - time.monotonic())
            if event["event"] == "failed":
                raise AssertionError(f"stompjs failed: {event}")
            if event["event"] == kind:
                return event

    async def messages(self, count: int, timeout: float = 10) -> list[dict]:
        return [await self.event("message", timeout) for _ in range(count)]

    async def subscribe(self, destination: str, *, wait: bool = True, **options) -> None:
        """SUBSCRIBE with a receipt, and (with `wait`) until the server has it."""
        receipt = f"sub-{destination}-{time.monotonic()}"
        await self.do("receipt", id=receipt)
        headers = {**options.pop("headers", {}), "receipt": receipt}
        await self.do("subscribe", destination=destination, headers=headers, **options)
        if wait:
            await self.event("receipt")

    async def no_message(self, wait: float = 0.5) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            event = await self.event("message", wait)
            raise AssertionError(f"unexpected message: {event}")


@pytest.fixture
async def stompjs():
    """Start stompjs clients: `await stompjs(url, connectHeaders={...})`; all stopped after."""
    started: list[StompJs] = []

    async def start(url: str, **config) -> StompJs:
        client = await StompJs.start(url, **config)
        started.append(client)
        await client.event("connected", timeout=20)
        return client

    yield start
    for client in started:
        await client.stop()
