"""One port for everything: the front keeps WebSocket upgrades and hands the rest to aiohttp."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

import pytest

from tests.wsraw import TEXT, client_frame, open_raw

STOMP_CONNECT = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:alice\n\n\x00"


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


async def test_a_stomp_socket_holds_no_aiohttp_request_handler(server):
    raw = await open_raw(server.port, "/stomp", {"Sec-WebSocket-Protocol": "v12.stomp"})
    assert raw.status == 101
    raw.send(client_frame(STOMP_CONNECT))
    opcode, frame = await raw.frame()
    assert opcode == TEXT and frame.startswith(b"CONNECTED\n")
    assert len(server.runner.server.connections) == 0  # aiohttp never saw this connection


@pytest.mark.parametrize("path", ["/connection/websocket", "/sockjs/websocket",
                                  "/sockjs/000/abcdefgh/websocket"])
async def test_every_other_websocket_endpoint_is_kept_by_the_front_too(server, path):
    raw = await open_raw(server.port, path)
    assert raw.status == 101
    assert len(server.runner.server.connections) == 0


@pytest.mark.parametrize("offered, chosen", [
    ("v10.stomp, v12.stomp", "v10.stomp"),  # the client's first supported choice
    ("mqtt, v11.stomp", "v11.stomp"),
])
async def test_stomp_names_the_first_offered_subprotocol_it_supports(server, offered, chosen):
    raw = await open_raw(server.port, "/stomp", {"Sec-WebSocket-Protocol": offered})
    assert raw.status == 101
    assert f"sec-websocket-protocol: {chosen}\r\n" in raw.head.lower()


@pytest.mark.parametrize("headers", [{}, {"Sec-WebSocket-Protocol": "mqtt"}])
async def test_stomp_without_a_supported_subprotocol_names_none_and_still_speaks(server,
                                                                                 headers):
    raw = await open_raw(server.port, "/stomp", headers)
    assert raw.status == 101
    assert "sec-websocket-protocol" not in raw.head.lower()
    raw.send(client_frame(STOMP_CONNECT))
    _, frame = await raw.frame()
    assert frame.startswith(b"CONNECTED\n")


async def test_centrifugo_names_its_protobuf_subprotocol_when_offered(server):
    raw = await open_raw(server.port, "/connection/websocket",
                         {"Sec-WebSocket-Protocol": "centrifuge-protobuf"})
    assert "sec-websocket-protocol: centrifuge-protobuf\r\n" in raw.head.lower()


@pytest.mark.parametrize("path", ["/stomp", "/connection/websocket", "/sockjs/websocket",
                                  "/sockjs/000/abcdefgh/websocket"])
async def test_a_get_of_a_websocket_path_that_is_no_handshake_gets_426(server, path):
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}{path}") as resp:
        assert resp.status == 426
        assert resp.headers["Upgrade"] == "websocket"


@pytest.mark.parametrize("path", ["/sockjs/000/a.b/websocket", "/sockjs/0.0/abc/websocket"])
async def test_a_sockjs_websocket_path_with_a_bad_session_id_is_aiohttps_404(server, path):
    raw = await open_raw(server.port, path)
    assert raw.status == 404


async def _kept_alive(port: int, path: str, headers: str = ""):
    """A connection that served an API request, then sends an upgrade (as a proxy reusing
    its upstream connections does); the reader, the writer and the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    host = f"Host: 127.0.0.1:{port}\r\n"
    writer.write(f"GET /health/live HTTP/1.1\r\n{host}\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    await reader.readexactly(length)
    writer.write((f"GET {path} HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return reader, writer, head


async def _small_frame(reader: asyncio.StreamReader) -> bytes:
    _, size = await asyncio.wait_for(reader.readexactly(2), 5)
    size &= 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(size)


async def test_an_upgrade_on_a_kept_alive_connection_is_served_too(server):
    reader, writer, head = await _kept_alive(server.port, "/ws")
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.write(client_frame(orjson.dumps({"id": 1, "connect": {"user": "alice"}})))
    reply = orjson.loads(await _small_frame(reader))
    assert reply["connect"]["user"] == "alice"
    assert [s.user for s in server.node.sessions.values()] == ["alice"]
    writer.close()


async def test_stomp_on_a_kept_alive_connection_negotiates_and_reads_the_url_the_same(server):
    reader, writer, head = await _kept_alive(server.port, "/stomp?user=b%2Bob",
                                             "Sec-WebSocket-Protocol: mqtt, v11.stomp\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-protocol: v11.stomp\r\n" in head.lower()
    writer.write(client_frame(b"CONNECT\naccept-version:1.2\n\n\x00"))
    assert (await _small_frame(reader)).startswith(b"CONNECTED\n")
    assert [s.user for s in server.node.sessions.values()] == ["b+ob"]
    writer.close()


@pytest.mark.parametrize("path", ["/connection/websocket", "/sockjs/websocket",
                                  "/sockjs/000/abcdefgh/websocket"])
async def test_every_endpoint_upgrades_on_a_kept_alive_connection(server, path):
    reader, writer, head = await _kept_alive(server.port, path)
    assert head.startswith(b"HTTP/1.1 101 ")
    if path.endswith("abcdefgh/websocket"):
        assert await _small_frame(reader) == b"o"  # SockJS' open frame, as on the front
    writer.close()


async def test_a_bad_sockjs_session_id_on_a_kept_alive_connection_is_404(server):
    _, writer, head = await _kept_alive(server.port, "/sockjs/000/a.b/websocket")
    assert head.startswith(b"HTTP/1.1 404 ")
    writer.close()
