"""Revoked token ids: refused at once, sessions holding them closed, kept across a restart."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import jwt
import pytest
import websockets

from tests.conftest import Client, running_node, settings_for
from tidings.errors import CloseCode, ErrorCode

SECRET = "a-secret-long-enough-for-hs256-signing"


def _token(**claims) -> str:
    return jwt.encode({"sub": "alice", "exp": int(time.time()) + 600, **claims}, SECRET, "HS256")


async def _connect(server, token: str) -> tuple[Client, dict]:
    client = Client(await websockets.connect(server.ws_url, ping_interval=None))
    return client, await client.request("connect", {"token": token})


async def _revoke(server, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/revoke", json=body) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def node(make_server):
    async with make_server(jwt_secret=SECRET, namespaces={"vip": {"subscribe": "token"}}) as s:
        yield s


async def test_revoking_a_token_closes_its_sessions_with_4505_and_spares_the_rest(node):
    held, _ = await _connect(node, _token(jti="t-1"))
    other, _ = await _connect(node, _token(jti="t-2"))
    assert await _revoke(node, {"jti": "t-1"}) == (200, {"jti": "t-1"})
    code, reason = await held.closed()
    assert (code, reason) == (CloseCode.TOKEN_REVOKED, "token revoked")
    assert (await other.call("history", {"channel": "room:a"}))["offset"] == 0


async def test_a_revoked_token_cannot_connect_again(node):
    await _revoke(node, {"jti": "t-1"})
    client, reply = await _connect(node, _token(jti="t-1"))
    assert reply["error"] == {"code": ErrorCode.UNAUTHORIZED, "message": "token revoked"}
    assert (await client.closed())[0] == CloseCode.UNAUTHORIZED


async def test_revoking_a_subscription_token_closes_the_session_using_it(node):
    client, _ = await _connect(node, _token())
    grant = _token(channel="vip:lounge", jti="s-1")
    assert "error" not in await client.request("subscribe", {"channel": "vip:lounge",
                                                             "token": grant})
    await _revoke(node, {"jti": "s-1"})
    assert (await client.closed())[0] == CloseCode.TOKEN_REVOKED
    again, _ = await _connect(node, _token())
    reply = await again.request("subscribe", {"channel": "vip:lounge", "token": grant})
    assert reply["error"]["code"] == ErrorCode.BAD_SUBSCRIPTION_TOKEN


async def test_revocations_survive_a_restart(tmp_path):
    settings = settings_for(tmp_path, jwt_secret=SECRET)
    async with running_node(settings) as first:
        await _revoke(first, {"jti": "t-1"})
    async with running_node(settings) as second:
        _, reply = await _connect(second, _token(jti="t-1"))
        assert reply["error"]["message"] == "token revoked"


async def test_a_revocation_lapses_after_revocation_ttl_or_the_tokens_exp(make_server):
    async with make_server(jwt_secret=SECRET, security={"revocation_ttl": 1}) as server:
        await _revoke(server, {"jti": "short"})
        await _revoke(server, {"jti": "until-exp", "exp": int(time.time())})
        _, reply = await _connect(server, _token(jti="short"))
        assert "error" in reply
        _, reply = await _connect(server, _token(jti="until-exp"))
        assert "error" not in reply  # its exp (now) came before the ttl
        await asyncio.sleep(1.2)
        _, reply = await _connect(server, _token(jti="short"))
        assert "error" not in reply


async def test_at_most_max_revocations_are_held(make_server):
    async with make_server(jwt_secret=SECRET, security={"max_revocations": 2}) as server:
        assert (await _revoke(server, {"jti": "a"}))[0] == 200
        assert (await _revoke(server, {"jti": "b"}))[0] == 200
        status, body = await _revoke(server, {"jti": "c"})
        assert (status, body["error"]["code"]) == (429, ErrorCode.LIMIT_EXCEEDED)


@pytest.mark.parametrize("body", [{}, {"jti": ""}, {"jti": 5}, {"jti": "x" * 201},
                                  {"jti": "a", "exp": "soon"}])
async def test_a_malformed_revocation_is_a_bad_request(node, body):
    status, answer = await _revoke(node, body)
    assert (status, answer["error"]["code"]) == (400, ErrorCode.BAD_REQUEST)


async def test_no_client_can_reach_the_revocation_channel(node):
    client, _ = await _connect(node, _token())
    for method, params in [("subscribe", {"channel": "$revoked"}),
                           ("history", {"channel": "$revoked"}),
                           ("publish", {"channel": "$revoked", "data": {"jti": "x"}})]:
        reply = await client.request(method, params)
        assert reply["error"]["code"] == ErrorCode.BAD_CHANNEL
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{node.url}/api/history", params={"channel": "$revoked"}) as resp:
            assert resp.status == 400


async def test_the_revoked_count_is_a_metric(node):
    await _revoke(node, {"jti": "a"})
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as resp:
        assert 'tidings_revoked_tokens{node=' in (text := await resp.text())
    assert [line for line in text.splitlines()
            if line.startswith("tidings_revoked_tokens{")][0].endswith(" 1.0")
