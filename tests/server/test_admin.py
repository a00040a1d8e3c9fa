"""The admin console's endpoints on a real node: off by default, its own token only, and the
JSON the page is drawn from (overview, user lookup, presence, test publish, disconnect)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from tidings.config import ConfigError, load_settings

TOKEN = "admin-" + "k" * 26
API_KEY = "api-" + "q" * 28
JWT_SECRET = "jwt-" + "s" * 28


async def _call(server, method: str, path: str, *, token: str | None = TOKEN, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, server.url + path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def console(make_server):
    async with make_server(admin_token=TOKEN, api_key=API_KEY) as server:
        yield server


async def test_the_console_is_off_without_an_admin_token(server):
    for path in ("/admin", "/admin/admin.js", "/admin/api/overview"):
        status, body = await _call(server, "GET", path)
        assert status == 404 and body["error"]["code"] == 140
        assert "admin_token" in body["error"]["message"]


@pytest.mark.parametrize("header", [None, f"Bearer wrong-{TOKEN}", f"apikey {API_KEY}",
                                    f"Bearer {API_KEY}", TOKEN])
async def test_only_the_admin_token_opens_the_endpoints(console, header):
    headers = {"Authorization": header} if header else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(console.url + "/admin/api/overview", headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"] == {"code": 105,
                                                    "message": "missing or wrong admin token"}
    refused = console.node.metrics.registry.get_sample_value("tidings_refused_total",
                                                             {"reason": "admin_token"})
    assert refused == 1


async def test_a_users_jwt_does_not_open_the_console(make_server):
    import jwt

    user_token = jwt.encode({"sub": "alice"}, JWT_SECRET, algorithm="HS256")
    async with make_server(admin_token=TOKEN, jwt_secret=JWT_SECRET) as server:
        status, _ = await _call(server, "GET", "/admin/api/overview", token=user_token)
        assert status == 401


def test_the_admin_token_must_be_long_and_a_secret_of_its_own():
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings(None, admin_token="short")
    with pytest.raises(ConfigError, match="secret of its own"):
        load_settings(None, admin_token=API_KEY, api_key=API_KEY)


async def test_the_page_is_served_without_the_token_under_a_strict_policy(console):
    async with aiohttp.ClientSession() as http:
        async with http.get(console.url + "/admin") as resp:
            assert resp.status == 200
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            assert 'id="signin-form"' in await resp.text()


async def test_overview_shows_nodes_connections_channels_and_trends(console):
    alice, bob = await console.client("alice"), await console.client("bob")
    for client in (alice, bob):
        await client.call("subscribe", {"channel": "room:busy"})
    console_state = console.node
    trends = _trends(console)
    trends.sample()
    for n in range(5):
        await alice.call("publish", {"channel": "room:busy", "data": n})
    await bob.pubs(5)
    trends.sample()
    status, view = await _call(console, "GET", "/admin/api/overview")
    assert status == 200
    assert view["node"] == console_state.name
    assert [n["name"] for n in view["nodes"]] == [console_state.name]
    assert view["local"]["connections"] == 2 and view["local"]["users"] == 2
    assert view["local"]["protocols"] == [{"protocol": "native", "transport": "websocket",
                                           "connections": 2}]
    assert view["local"]["subscriptions"]["room"] == 2
    busiest = view["channels"][0]
    assert busiest["channel"] == "room:busy" and busiest["subscribers"] == 2
    assert busiest["rate"] > 0
    assert view["trends"]["connections"][-1] == 2
    assert view["trends"]["publications"][-1] > 0
    assert view["ingest"] == []


async def test_overview_lists_recent_warnings_newest_first(console):
    logging.getLogger("tidings.node").warning("first problem")
    logging.getLogger("tidings.hub").error("second problem")
    _, view = await _call(console, "GET", "/admin/api/overview")
    messages = [p["message"] for p in view["problems"]]
    assert messages.index("second problem") < messages.index("first problem")
    assert view["problems"][0]["level"] == "error" and view["problems"][0]["logger"] == "tidings.hub"


async def test_user_lookup_shows_connections_and_the_inbox(console):
    alice = await console.client("alice")
    await alice.call("subscribe", {"channel": "room:x"})
    status, _ = await _call(console, "POST", "/admin/api/publish",
                            json={"channel": "user:alice", "data": {"t": 1}, "source": "ops"})
    assert status == 200
    status, view = await _call(console, "GET", "/admin/api/user?user=alice")
    assert status == 200
    [connection] = view["connections"]
    assert connection["client"] == alice.connect_result["client"]
    assert connection["protocol"] == "native" and connection["address"] == "127.0.0.1"
    assert connection["subscriptions"] == ["broadcast", "room:x", "user:alice"]
    assert view["inbox"]["unread"] == 1 and view["inbox"]["sources"]["ops"]["unread"] == 1


async def test_test_publish_reaches_subscribers(console):
    alice = await console.client("alice")
    await alice.call("subscribe", {"channel": "room:lobby"})
    status, result = await _call(console, "POST", "/admin/api/publish",
                                 json={"channel": "room:lobby", "data": {"text": "test"}})
    assert status == 200 and result["offset"] == 1
    pub = await alice.push("pub")
    assert pub["data"] == {"text": "test"} and pub["sender"] == "admin"


async def test_disconnect_closes_the_user_with_the_chosen_code(console):
    alice, again = await console.client("alice"), await console.client("alice")
    status, result = await _call(console, "POST", "/admin/api/disconnect",
                                 json={"user": "alice", "client": again.connect_result["client"],
                                       "reconnect": False})
    assert status == 200 and result == {"user": "alice", "closed_here": 1}
    assert (await again.closed())[0] == 4502
    status, result = await _call(console, "POST", "/admin/api/disconnect", json={"user": "alice"})
    assert result["closed_here"] == 1 and (await alice.closed())[0] == 4007


async def test_presence_lists_the_channels_members(console):
    alice = await console.client("alice")
    await alice.call("subscribe", {"channel": "room:p"})
    status, view = await _call(console, "GET", "/admin/api/presence?channel=room:p")
    assert status == 200 and [c["user"] for c in view["clients"]] == ["alice"]


@pytest.mark.parametrize("method, path, kwargs, status, code", [
    ("GET", "/admin/api/presence?channel=nowhere:x", {}, 400, 107),
    ("GET", "/admin/api/presence?channel=user:alice", {}, 400, 107),
    ("GET", "/admin/api/user?user=", {}, 400, 101),
    ("POST", "/admin/api/publish", {"data": b"{"}, 400, 101),
    ("POST", "/admin/api/publish", {"json": {"channel": "room:a"}}, 400, 101),
    ("POST", "/admin/api/publish", {"json": {"channel": "room:a", "data": 1, "source": ""}}, 400, 101),
    ("POST", "/admin/api/disconnect", {"json": {"user": 5}}, 400, 101),
])
async def test_bad_requests_get_the_api_error_shape(console, method, path, kwargs, status, code):
    got, body = await _call(console, method, path, **kwargs)
    assert (got, body["error"]["code"]) == (status, code), body


async def test_the_trends_sampler_runs_on_a_console_node(console):
    trends = _trends(console)
    await asyncio.sleep(trends.interval * 2 + 0.5)
    assert len(trends.points) >= 1


def _trends(server):
    from tidings.server.admin import CONSOLE

    return server.runner.app[CONSOLE].trends
