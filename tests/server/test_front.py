"""One port for everything: the front keeps /ws upgrades and hands the rest to aiohttp."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from tests.wsraw import TEXT, client_frame, open_raw


async def test_a_ws_socket_holds_no_aiohttp_request_handler(server):
    raw = await open_raw(server.port)
    assert raw.status == 101
    raw.send(client_frame(orjson.dumps({"id": 1, "connect": {"user": "alice"}})))
    opcode, _ = await raw.frame()
    assert opcode == TEXT
    assert len(server.runner.server.connections) == 0  # aiohttp never saw this connection


async def test_plain_requests_on_the_same_port_are_aiohttps_keep_alive_included(server):
    async with aiohttp.ClientSession() as http:
        for _ in range(3):  # one connection, kept alive across requests
            async with http.get(f"{server.url}/health/live") as resp:
                assert resp.status == 200
        assert len(server.runner.server.connections) == 1


async def test_a_get_of_ws_that_is_no_handshake_gets_426_with_what_is_missing(server):
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/ws") as resp:
        assert resp.status == 426
        assert resp.headers["Upgrade"] == "websocket"
        body = await resp.json()
    assert body["error"]["code"] == 101 and "Upgrade: websocket" in body["error"]["message"]


async def test_a_handshake_sent_a_byte_at_a_time_is_still_upgraded(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    for byte in head:
        writer.write(bytes((byte,)))
        await writer.drain()
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response
    writer.close()


async def test_another_protocols_websocket_is_handed_to_aiohttp(server):
    raw = await open_raw(server.port, "/connection/websocket")
    assert raw.status == 101
    assert len(server.runner.server.connections) == 1


async def test_an_upgrade_on_a_kept_alive_connection_is_served_too(server):
    """A proxy reusing its upstream connections sends the upgrade after API requests."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    writer.write(f"GET /health/live HTTP/1.1\r\n{host}\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    await reader.readexactly(length)
    writer.write((f"GET /ws HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.write(client_frame(orjson.dumps({"id": 1, "connect": {"user": "alice"}})))
    first, size = await asyncio.wait_for(reader.readexactly(2), 5)
    reply = orjson.loads(await reader.readexactly(size & 0x7F if size & 0x7F < 126 else
                                                   int.from_bytes(await reader.readexactly(2),
                                                                  "big")))
    assert reply["connect"]["user"] == "alice"
    assert [s.user for s in server.node.sessions.values()] == ["alice"]
    writer.close()
