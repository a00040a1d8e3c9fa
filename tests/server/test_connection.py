"""Writing to a socket that is already gone is harmless: a node drains cleanly at SIGTERM.

A real `tidings serve` process (uvloop, as in production, where writing to a closed
transport raises instead of being dropped) holds sessions in every state when SIGTERM comes:
handshakes cut halfway, WebSockets that never sent `connect`, connected clients receiving a
stream, clients that sent their close frame and stopped reading, and clients whose sockets
were reset a moment before. It must exit 0 without a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import struct

import orjson
import websockets

from tests.conftest import free_port, start_process

EACH = 30  # sessions per state


def _reset(ws) -> None:
    """Drop the connection with a TCP RST, as a crashed client or a middlebox would."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def _connected(url: str, user: str):
    ws = await websockets.connect(url, ping_interval=None, max_size=None)
    await ws.send(orjson.dumps({"id": 1, "connect": {"user": user}}).decode())
    await ws.recv()
    await ws.send(orjson.dumps({"id": 2, "subscribe": {"channel": "room:drain"}}).decode())
    await ws.recv()
    return ws


async def test_sigterm_with_sessions_in_every_state_exits_0_without_a_traceback(tmp_path):
    port = free_port()
    proc = start_process({"TIDINGS_PORT": str(port), "TIDINGS_NODE_NAME": "drain",
                          "TIDINGS_STORE": f"sqlite:///{tmp_path / 'drain.db'}",
                          "TIDINGS_SHUTDOWN_GRACE": "2"})
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        half = []
        for _ in range(EACH):  # an upgrade request cut off mid-headers
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            half.append(writer)
        connecting = [await websockets.connect(url, ping_interval=None) for _ in range(EACH)]
        connected = [await _connected(url, f"u{n}") for n in range(EACH)]
        closing = [await _connected(url, f"c{n}") for n in range(EACH)]
        doomed = [await _connected(url, f"r{n}") for n in range(EACH)]

        async def publish() -> None:  # keeps frames flowing to every subscriber
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for n in range(400):
                body = orjson.dumps({"channel": "room:drain", "data": n})
                writer.write(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                await asyncio.sleep(0.002)
            writer.close()

        stream = asyncio.create_task(publish())
        await asyncio.sleep(0.2)
        for ws in closing:  # a close frame sent, the answer never read
            ws.transport.write(b"\x88\x82abcd" + bytes([0x03 ^ 0x61, 0xE8 ^ 0x62]))
        for ws in doomed:
            _reset(ws)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 20)
        output = proc.stdout.read().decode()
        assert code == 0, output
        assert "Traceback" not in output and "Exception in callback" not in output, output
        stream.cancel()
        for writer in half:
            writer.transport.abort()
        for ws in connecting + connected + closing:
            ws.transport.abort()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_writing_to_a_reset_connection_under_uvloop_is_harmless():
    """Deterministic: the socket is written to only after the peer's RST closed its transport."""
    import uvloop

    from tidings.server.wsserver import WebSocket

    outcome: dict = {}

    class Upgraded(asyncio.Protocol):
        """Stands for the front: the accepted transport goes to a WebSocket."""

        def connection_made(self, transport: asyncio.Transport) -> None:
            outcome["socket"] = WebSocket(transport, 1024, lambda socket: None)

    async def scenario() -> None:
        server = await asyncio.get_running_loop().create_server(Upgraded, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            _reset(writer)
            for _ in range(200):
                if "socket" in outcome and outcome["socket"].transport.is_closing():
                    break
                await asyncio.sleep(0.01)
            socket = outcome["socket"]
            assert socket.transport.is_closing()
            try:
                socket.write(b"frame")
                socket.writelines([b"a", b"b"])
                socket.close(4006, "node shutting down")
                outcome["error"] = None
            except Exception as exc:  # what the test is about
                outcome["error"] = exc
        finally:
            server.close()

    uvloop.run(scenario())
    assert outcome["error"] is None


def test_writing_to_a_reset_aiohttp_connection_under_uvloop_is_harmless():
    """aiohttp's WebSocket (an upgrade on a reused connection): the same, deterministic."""
    import uvloop
    from aiohttp import web

    from tidings.server.connection import WebSocketConnection

    outcome: dict = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = WebSocketConnection(ws, request.transport)
        while not conn.transport.is_closing():
            await asyncio.sleep(0.01)
        try:
            conn.write(b"frame")
            conn.writelines([b"a", b"b"])
            conn.close(4006, "node shutting down")
            await conn.closing
            outcome["error"] = None
        except Exception as exc:  # what the test is about
            outcome["error"] = exc
        return ws

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
            _reset(ws)
            for _ in range(200):
                if "error" in outcome:
                    break
                await asyncio.sleep(0.01)
        finally:
            await runner.cleanup()

    uvloop.run(scenario())
    assert outcome == {"error": None}


def test_a_connection_whose_transport_vanished_during_the_handshake_is_closed():
    from tidings.server.connection import WebSocketConnection

    conn = WebSocketConnection(None, None)
    conn.write(b"x")
    conn.writelines([b"x"])
    assert conn.buffered() == 0 and conn.transport.is_closing()
