"""The server API for backends, against a real node over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from tidings.errors import ErrorCode


async def _call(server, method: str, path: str, *, headers=None, **kwargs):
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.request(method, f"{server.url}{path}", **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_publish_send_and_broadcast_reach_websocket_clients(server):
    bob = await server.client("bob")
    await bob.call("subscribe", {"channel": "room:api"})
    status, body = await _call(server, "POST", "/api/publish",
                               json={"channel": "room:api", "data": {"n": 1}, "source": "crm"})
    assert status == 200 and body["offset"] == 1 and body["epoch"]
    pub = await bob.push("pub")
    assert pub["data"] == {"n": 1} and pub["source"] == "crm" and "sender" not in pub
    status, body = await _call(server, "POST", "/api/send", json={"user": "bob", "data": "dm"})
    assert status == 200 and (await bob.push("pub"))["channel"] == "user:bob"
    status, _ = await _call(server, "POST", "/api/broadcast", json={"data": "all"})
    assert status == 200 and (await bob.push("pub"))["channel"] == "broadcast"


async def test_history_presence_info_and_disconnect(server):
    alice = await server.client("alice")
    await alice.call("subscribe", {"channel": "room:q"})
    for n in range(5):
        await alice.call("publish", {"channel": "room:q", "data": n})
    status, page = await _call(server, "GET", "/api/history",
                               params={"channel": "room:q", "limit": "2", "reverse": "true"})
    assert status == 200 and [p["data"] for p in page["publications"]] == [4, 3]
    status, page = await _call(server, "GET", "/api/history",
                               params={"channel": "room:q", "since": "3"})
    assert [p["data"] for p in page["publications"]] == [3, 4]
    status, presence = await _call(server, "GET", "/api/presence", params={"channel": "room:q"})
    assert [c["user"] for c in presence["clients"].values()] == ["alice"]
    status, info = await _call(server, "GET", "/api/info")
    assert info["nodes"][0]["name"] == server.node.name
    status, body = await _call(server, "POST", "/api/disconnect", json={"user": "alice"})
    assert status == 200 and body["closed_here"] == 1
    code, _ = await alice.closed()
    assert code == 4007


async def test_health_and_metrics(server):
    status, body = await _call(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as resp:
            text = await resp.text()
    assert resp.status == 200 and "tidings_connections{" in text


@pytest.mark.parametrize("method, path, kwargs, status, code", [
    ("POST", "/api/publish", {"data": b"{oops"}, 400, ErrorCode.BAD_REQUEST),
    ("POST", "/api/publish", {"json": {"data": 1}}, 400, ErrorCode.BAD_REQUEST),
    ("POST", "/api/publish", {"json": {"channel": "room:a"}}, 400, ErrorCode.BAD_REQUEST),
    ("POST", "/api/publish", {"json": {"channel": "weird:a", "data": 1}}, 400,
     ErrorCode.BAD_CHANNEL),
    ("POST", "/api/publish", {"json": {"channel": "room:a", "data": 1, "source": ""}}, 400,
     ErrorCode.BAD_REQUEST),
    ("POST", "/api/send", {"json": {"user": "a b", "data": 1}}, 400, ErrorCode.BAD_REQUEST),
    ("GET", "/api/history", {"params": {"channel": "voice:x"}}, 400, ErrorCode.BAD_CHANNEL),
    ("GET", "/api/history", {"params": {"channel": "room:a", "limit": "0"}}, 400,
     ErrorCode.BAD_REQUEST),
    ("GET", "/api/presence", {"params": {"channel": "user:a"}}, 400, ErrorCode.BAD_CHANNEL),
    ("POST", "/api/publish", {"data": b'{"channel":"room:a","data":"' + b"x" * 1_100_000 + b'"}'},
     413, ErrorCode.BAD_REQUEST),
])
async def test_bad_requests_get_a_status_and_an_error_code(server, method, path, kwargs, status,
                                                          code):
    got, body = await _call(server, method, path, **kwargs)
    assert got == status
    assert body["error"]["code"] == code and body["error"]["message"]
    ok, _ = await _call(server, "GET", "/health")  # and the node goes on
    assert ok == 200


async def test_api_publishes_where_clients_may_not(server):
    status, body = await _call(server, "POST", "/api/publish",
                               json={"channel": "broadcast", "data": "from the server"})
    assert status == 200 and body["offset"] == 1


async def test_api_key_is_required_once_configured(make_server):
    async with make_server(api_key="k3y") as server:
        status, body = await _call(server, "GET", "/api/info")
        assert status == 401 and body["error"]["code"] == ErrorCode.UNAUTHORIZED
        status, _ = await _call(server, "GET", "/api/info", headers={"X-API-Key": "wrong"})
        assert status == 401
        for headers in ({"X-API-Key": "k3y"}, {"Authorization": "apikey k3y"}):
            status, _ = await _call(server, "GET", "/api/info", headers=headers)
            assert status == 200
