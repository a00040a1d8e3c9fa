"""Accepting a WebSocket on a real node: RFC 6455 strictness over raw sockets, the Origin
allow-list, the connection caps and the handshake timeout."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import aiohttp
import orjson
import pytest
import websockets

from tests.conftest import settings_for
from tests.server.test_api import _node_bound_to, _non_loopback_address
from tests.wsraw import BINARY, TEXT, client_frame, close_frame, open_raw
from tidings.errors import CloseCode, ErrorCode

SECRET = "a-secret-long-enough-for-hs256-signing"


def _command(obj: dict, **kwargs) -> bytes:
    return client_frame(orjson.dumps(obj), TEXT, **kwargs)


async def _metric(url: str, name: str, reason: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    match = re.search(rf'^{name}\{{[^}}]*reason="{reason}"[^}}]*\}} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


# ---- RFC 6455: masking and close codes (defect 3) ----------------------------------------


async def test_an_unmasked_frame_fails_the_connection_with_1002_unexecuted(server):
    raw = await open_raw(server.port)
    assert raw.status == 101
    raw.send(_command({"id": 1, "connect": {"user": "mallory"}}, masked=False))
    assert await raw.close_code() == 1002
    assert await raw.eof()
    assert "mallory" not in server.node.by_user


async def test_masked_commands_before_an_unmasked_frame_still_run(server):
    raw = await open_raw(server.port)
    raw.send(_command({"id": 1, "connect": {"user": "alice"}}))
    opcode, reply = await raw.frame()
    assert opcode == TEXT and orjson.loads(reply)["id"] == 1
    raw.send(_command({"id": 2, "subscribe": {"channel": "room:a"}}, masked=False))
    assert await raw.close_code() == 1002
    assert "room:a" not in server.node.hub.channels


async def test_an_unmasked_frame_sent_with_the_handshake_is_caught_too(server):
    raw = await open_raw(server.port, early=_command({"id": 1, "connect": {"user": "m"}},
                                                     masked=False))
    assert raw.status == 101
    assert await raw.close_code() == 1002
    assert "m" not in server.node.by_user


async def test_masked_frames_sent_with_the_handshake_are_handled(server):
    raw = await open_raw(server.port, early=_command({"id": 1, "connect": {"user": "early"}}))
    opcode, reply = await raw.frame()
    assert orjson.loads(reply)["connect"]["user"] == "early"
    raw.close()


@pytest.mark.parametrize("code", [1005, 1006, 1015, 999, 1016, 2999, 5000])
async def test_a_close_frame_with_a_forbidden_code_is_answered_with_1002(server, code):
    raw = await open_raw(server.port)
    raw.send(close_frame(code))
    assert await raw.close_code() == 1002


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_a_close_frame_with_an_allowed_code_is_answered_normally(server, code):
    raw = await open_raw(server.port)
    raw.send(close_frame(code))
    assert await raw.close_code() in (1000, code)


async def test_a_binary_frame_passes_the_strict_layer_to_the_voice_path(server):
    raw = await open_raw(server.port)
    raw.send(_command({"id": 1, "connect": {"user": "alice"}}))
    await raw.frame()
    raw.send(client_frame(b"\x00", BINARY))
    assert await raw.close_code() == CloseCode.BAD_VOICE_FRAME


# Every other endpoint is on the same layer: the same two rules, checked on each.
CONNECTS = {
    "/stomp": b"CONNECT\naccept-version:1.2\nlogin:mallory\n\n\x00",
    "/sockjs/websocket": b"CONNECT\naccept-version:1.2\nlogin:mallory\n\n\x00",
    "/sockjs/000/abcdefgh/websocket":
        b'["CONNECT\\naccept-version:1.2\\nlogin:mallory\\n\\n\\u0000"]',
    "/connection/websocket?user=mallory": b'{"id":1,"connect":{}}',
}


@pytest.mark.parametrize("path", CONNECTS)
async def test_an_unmasked_connect_on_any_endpoint_gets_1002_unexecuted(server, path):
    raw = await open_raw(server.port, path)
    assert raw.status == 101
    raw.send(client_frame(CONNECTS[path], TEXT, masked=False))
    assert await raw.close_code() == 1002
    assert "mallory" not in server.node.by_user


@pytest.mark.parametrize("path", CONNECTS)
async def test_a_forbidden_close_code_on_any_endpoint_gets_1002(server, path):
    raw = await open_raw(server.port, path)
    raw.send(close_frame(1005))
    assert await raw.close_code() == 1002


# ---- Origin (defect 2) ------------------------------------------------------------------


async def test_a_client_without_origin_is_accepted(server):
    raw = await open_raw(server.port)
    assert raw.status == 101


@pytest.mark.parametrize("origin", ["http://127.0.0.1:3000", "http://localhost:8000",
                                    "http://[::1]"])
async def test_in_insecure_mode_a_loopback_page_is_accepted(server, origin):
    assert (await open_raw(server.port, headers={"Origin": origin})).status == 101


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, Host and Origin agree
    {"Origin": "http://evil.example:8000", "Host": "evil.example:8000"},
])
async def test_in_insecure_mode_any_other_page_gets_403_and_is_counted(server, headers):
    raw = await open_raw(server.port, headers=headers)
    assert raw.status == 403
    error = orjson.loads(raw.body)["error"]
    assert error["code"] == ErrorCode.PERMISSION_DENIED and "origin" in error["message"]
    assert await _metric(server.url, "tidings_refused_total", "origin") == 1
    assert not server.node.sessions


async def test_a_refused_page_cannot_even_name_a_user(server):
    """The hijack: a page on another site opening /ws on a developer's machine."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws_url, origin="https://evil.example")
    assert refused.value.response.status_code == 403


async def test_with_auth_the_nodes_own_origin_and_configured_ones_are_accepted(make_server):
    async with make_server(jwt_secret=SECRET, security={
            "allowed_origins": ["https://app.example.com", "https://*.example.org"]}) as server:
        accepted = ["https://app.example.com", "https://chat.example.org",
                    f"http://127.0.0.1:{server.port}"]
        for origin in accepted:
            assert (await open_raw(server.port, headers={"Origin": origin})).status == 101
        refused = ["https://app.example.com:8443", "http://app.example.com",
                   "https://example.org", "https://evil.example", "http://localhost:1"]
        for origin in refused:
            assert (await open_raw(server.port, headers={"Origin": origin})).status == 403


async def test_with_auth_a_star_accepts_every_page(make_server):
    async with make_server(jwt_secret=SECRET, security={"allowed_origins": ["*"]}) as server:
        raw = await open_raw(server.port, headers={"Origin": "https://anywhere.example"})
        assert raw.status == 101


# ---- connection caps (defect 4) ----------------------------------------------------------


async def test_past_max_connections_the_handshake_gets_503_until_a_place_frees(make_server):
    async with make_server(security={"max_connections": 2}) as server:
        first, second = await open_raw(server.port), await open_raw(server.port)
        assert (first.status, second.status) == (101, 101)
        third = await open_raw(server.port)
        assert third.status == 503
        assert orjson.loads(third.body)["error"]["code"] == ErrorCode.LIMIT_EXCEEDED
        assert "Retry-After" in third.head
        assert await _metric(server.url, "tidings_refused_total", "max_connections") == 1
        first.close()
        deadline = time.monotonic() + 5
        while server.node.caps.total > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert (await open_raw(server.port)).status == 101


async def test_loopback_peers_are_not_capped_per_address(make_server):
    async with make_server(security={"max_connections_per_address": 1}) as server:
        sockets = [await open_raw(server.port) for _ in range(3)]
        assert [raw.status for raw in sockets] == [101, 101, 101]


async def test_past_the_per_address_cap_a_remote_peer_gets_429(tmp_path):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to call from")
    settings = settings_for(tmp_path, host=address, jwt_secret=SECRET,
                            security={"max_connections_per_address": 2})
    async with _node_bound_to(address, settings) as url:
        port = settings.port
        opened = []
        for _ in range(2):
            opened.append(await websockets.connect(f"ws://{address}:{port}/ws"))
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://{address}:{port}/ws")
        assert refused.value.response.status_code == 429
        assert await _metric(url, "tidings_refused_total", "max_connections_per_address") == 1
        for ws in opened:
            await ws.close()


async def test_past_the_per_user_cap_connect_gets_112_and_close_4504(make_server):
    async with make_server(security={"max_connections_per_user": 2}) as server:
        await server.client("alice")
        await server.client("alice")
        third = await server.client("alice", connect=False)
        reply = await third.request("connect", {"user": "alice"})
        assert reply["error"]["code"] == ErrorCode.LIMIT_EXCEEDED
        assert (await third.closed())[0] == CloseCode.TOO_MANY_CONNECTIONS
        await server.client("bob")  # other users are not affected
        assert await _metric(server.url, "tidings_refused_total",
                             "max_connections_per_user") == 1


# ---- handshake timeout -------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
async def test_a_connection_that_never_completes_its_request_is_closed(make_server, sent):
    async with make_server(security={"handshake_timeout": 0.5}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        assert time.monotonic() - started < 3
        writer.close()


async def test_a_handshake_within_the_timeout_is_not_cut(make_server):
    async with make_server(security={"handshake_timeout": 0.5}) as server:
        client = await server.client("alice")
        await asyncio.sleep(1.0)  # past the timeout, now upgraded: the socket stays
        assert (await client.call("history", {"channel": "room:x"}))["offset"] == 0
