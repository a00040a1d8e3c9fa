"""The server API for backends, against a real node over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import CommandError, settings_for
from tidings import __version__
from tidings.errors import CloseCode, ErrorCode
from tidings.node import Node
from tidings.server.app import make_app
from tidings.server.front import TidingsSite


async def _call(base, method: str, path: str, *, headers=None, **kwargs):
    url = base if isinstance(base, str) else base.url
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.request(method, f"{url}{path}", **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)


# ---- publish, send, broadcast -----------------------------------------------------------


async def test_publish_returns_offset_and_epoch_and_reaches_subscribers(server):
    bob = await server.client("bob")
    sub = await bob.call("subscribe", {"channel": "room:api"})
    status, body = await _call(server, "POST", "/api/publish",
                               json={"channel": "room:api", "data": {"n": "ü"}, "source": "crm"})
    assert status == 200
    assert body == {"channel": "room:api", "offset": 1, "epoch": sub["epoch"]}
    pub = await bob.push("pub")
    assert pub["channel"] == "room:api" and pub["data"] == {"n": "ü"}
    assert (pub["offset"], pub["epoch"]) == (1, sub["epoch"])
    assert pub["source"] == "crm" and "sender" not in pub  # the server API is nobody
    status, body = await _call(server, "POST", "/api/publish",
                               json={"channel": "room:api", "data": 2})
    assert body["offset"] == 2 and "source" not in await bob.push("pub")


async def test_send_returns_offset_and_epoch_and_reaches_every_tab_of_the_user(server):
    tab1, tab2, carol = (await server.client("bob"), await server.client("bob"),
                         await server.client("carol"))
    epoch = tab1.connect_result["subs"]["user:bob"]["epoch"]
    status, body = await _call(server, "POST", "/api/send",
                               json={"user": "bob", "data": "dm", "source": "billing"})
    assert status == 200
    assert body == {"channel": "user:bob", "offset": 1, "epoch": epoch}
    for tab in (tab1, tab2):
        pub = await tab.push("pub")
        assert (pub["channel"], pub["data"], pub["source"]) == ("user:bob", "dm", "billing")
    await carol.no_push()


async def test_send_to_an_offline_user_is_stored_for_later(server):
    status, body = await _call(server, "POST", "/api/send", json={"user": "dave", "data": 1})
    assert status == 200 and body["offset"] == 1
    dave = await server.client("dave")
    page = await dave.call("history", {"channel": "user:dave"})
    assert [p["data"] for p in page["publications"]] == [1]


async def test_broadcast_returns_offset_and_epoch_and_reaches_everyone(server):
    clients = [await server.client(f"u{i}") for i in range(3)]
    epoch = clients[0].connect_result["subs"]["broadcast"]["epoch"]
    status, body = await _call(server, "POST", "/api/broadcast", json={"data": "all"})
    assert status == 200
    assert body == {"channel": "broadcast", "offset": 1, "epoch": epoch}
    for client in clients:
        pub = await client.push("pub")
        assert (pub["channel"], pub["data"], pub["offset"]) == ("broadcast", "all", 1)


async def test_publish_to_an_ephemeral_channel_has_no_offset(server):
    alice = await server.client("alice")
    await alice.call("subscribe", {"channel": "voice:r"})
    status, body = await _call(server, "POST", "/api/publish",
                               json={"channel": "voice:r", "data": "hi"})
    assert status == 200 and body == {"channel": "voice:r"}
    assert (await alice.push("pub"))["data"] == "hi"


async def test_api_publishes_to_a_server_only_namespace(make_server):
    async with make_server(namespaces={"alerts": {"publish": "server"}}) as server:
        alice = await server.client("alice")
        await alice.call("subscribe", {"channel": "alerts:ops"})
        with pytest.raises(CommandError) as err:  # a client may not
            await alice.call("publish", {"channel": "alerts:ops", "data": "x"})
        assert err.value.code == ErrorCode.PERMISSION_DENIED
        status, body = await _call(server, "POST", "/api/publish",
                                   json={"channel": "alerts:ops", "data": "disk full"})
        assert status == 200 and body["offset"] == 1  # the API is the server
        assert (await alice.push("pub"))["data"] == "disk full"


async def test_api_publishes_to_the_server_only_broadcast_channel(server):
    status, body = await _call(server, "POST", "/api/publish",
                               json={"channel": "broadcast", "data": "from the server"})
    assert status == 200 and body["offset"] == 1


# ---- history, presence, info, disconnect ------------------------------------------------


async def test_history_pages_through_the_query_string(server):
    for n in range(1, 8):
        await _call(server, "POST", "/api/publish", json={"channel": "room:q", "data": n})

    async def page(**query):
        status, body = await _call(server, "GET", "/api/history",
                                   params={"channel": "room:q", **query})
        assert status == 200 and body["channel"] == "room:q" and body["offset"] == 7
        return [p["data"] for p in body["publications"]]

    assert await page() == [1, 2, 3, 4, 5, 6, 7]
    assert await page(limit="3") == [1, 2, 3]
    assert await page(limit="3", since="3") == [4, 5, 6]
    assert await page(limit="3", since="6") == [7]
    assert await page(limit="3", reverse="true") == [7, 6, 5]
    assert await page(limit="3", reverse="true", since="5") == [4, 3, 2]
    assert await page(limit="3", reverse="false", since="5") == [6, 7]


async def test_history_publications_have_the_pub_shape(server):
    _, sent = await _call(server, "POST", "/api/publish",
                          json={"channel": "room:s", "data": {"a": 1}, "source": "ops"})
    _, body = await _call(server, "GET", "/api/history", params={"channel": "room:s"})
    pub = body["publications"][0]
    assert body["epoch"] == sent["epoch"]
    assert {k: pub[k] for k in ("channel", "offset", "epoch", "data", "source")} == {
        "channel": "room:s", "offset": 1, "epoch": sent["epoch"], "data": {"a": 1},
        "source": "ops"}
    assert abs(pub["time"] - time.time() * 1000) < 60_000


async def test_history_of_an_empty_channel(server):
    status, body = await _call(server, "GET", "/api/history", params={"channel": "room:none"})
    assert status == 200 and body["offset"] == 0 and body["publications"] == []
    assert body["epoch"]


async def test_presence_lists_the_subscribers(server):
    alice, bob = await server.client("alice"), await server.client("bob")
    for client in (alice, bob):
        await client.call("subscribe", {"channel": "room:p"})
    status, body = await _call(server, "GET", "/api/presence", params={"channel": "room:p"})
    assert status == 200 and body["channel"] == "room:p"
    assert sorted(c["user"] for c in body["clients"].values()) == ["alice", "bob"]
    assert body["clients"][alice.connect_result["client"]] == {
        "client": alice.connect_result["client"], "user": "alice", "node": server.node.name}
    await bob.call("unsubscribe", {"channel": "room:p"})
    _, body = await _call(server, "GET", "/api/presence", params={"channel": "room:p"})
    assert [c["user"] for c in body["clients"].values()] == ["alice"]


async def test_info_lists_the_node_with_its_connection_count(make_server):
    async with make_server(cluster_ttl=0.3) as server:  # a heartbeat every 0.1 s
        clients = [await server.client(u) for u in ("alice", "bob", "bob")]
        deadline = time.monotonic() + 5
        while True:
            status, body = await _call(server, "GET", "/api/info")
            assert status == 200
            assert body["node"] == server.node.name and body["version"] == __version__
            [node] = body["nodes"]
            if node["connections"] == 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert node["name"] == server.node.name
        assert (node["connections"], node["users"]) == (3, 2)
        assert node["version"] == __version__ and node["address"].endswith(f":{server.port}")
        await clients[0].close()


async def test_disconnect_closes_the_users_sessions_with_reconnect_allowed(server):
    bob1, bob2, alice = [await server.client(u) for u in ("bob", "bob", "alice")]
    status, body = await _call(server, "POST", "/api/disconnect", json={"user": "bob"})
    assert status == 200 and body == {"user": "bob", "closed_here": 2}
    for bob in (bob1, bob2):
        assert (await bob.push("disconnect"))["reconnect"] is True
        code, _ = await bob.closed()
        assert code == CloseCode.DISCONNECTED
    await alice.call("subscribe", {"channel": "room:x"})  # others stay


async def test_disconnect_of_one_client_leaves_the_users_other_tabs(server):
    tab1, tab2 = await server.client("bob"), await server.client("bob")
    status, body = await _call(server, "POST", "/api/disconnect",
                               json={"user": "bob", "client": tab1.connect_result["client"]})
    assert status == 200 and body["closed_here"] == 1
    await tab1.closed()
    await tab2.call("subscribe", {"channel": "room:still-here"})


async def test_disconnect_of_an_absent_user_closes_nothing(server):
    status, body = await _call(server, "POST", "/api/disconnect", json={"user": "nobody"})
    assert status == 200 and body == {"user": "nobody", "closed_here": 0}


# ---- health and metrics -----------------------------------------------------------------


async def test_health_is_ok_with_the_node_and_its_connections(server):
    await server.client("alice")
    status, body = await _call(server, "GET", "/health")
    assert status == 200
    assert body == {"status": "ok", "node": server.node.name, "connections": 1}


async def test_metrics_are_prometheus_text_with_the_connection_gauge(server):
    await server.client("alice")
    await server.client("bob")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            text = await resp.text()
    assert "# TYPE tidings_connections gauge" in text
    [line] = [ln for ln in text.splitlines() if ln.startswith("tidings_connections{")]
    assert f'node="{server.node.name}"' in line and float(line.rsplit(" ", 1)[1]) == 2


# ---- API key ----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    None, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"Authorization": "apikey wrong"},
    {"Authorization": "Bearer k3y"}, {"Authorization": "k3y"},
    {"X-API-Key": "K3Y"},
])
async def test_missing_or_wrong_api_key_is_401(make_server, headers):
    async with make_server(api_key="k3y") as server:
        for method, path, kwargs in (("GET", "/api/info", {}),
                                     ("POST", "/api/publish",
                                      {"json": {"channel": "room:a", "data": 1}})):
            status, body = await _call(server, method, path, headers=headers, **kwargs)
            assert status == 401 and body["error"]["code"] == ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize("headers", [
    {"X-API-Key": "k3y"}, {"Authorization": "apikey k3y"}, {"Authorization": "ApiKey k3y"},
])
async def test_right_api_key_in_either_header_is_served(make_server, headers):
    async with make_server(api_key="k3y") as server:
        status, body = await _call(server, "GET", "/api/info", headers=headers)
        assert status == 200 and body["node"] == server.node.name
        status, body = await _call(server, "POST", "/api/publish", headers=headers,
                                   json={"channel": "room:a", "data": 1})
        assert status == 200 and body["offset"] == 1


async def test_health_and_metrics_need_no_api_key(make_server):
    async with make_server(api_key="k3y") as server:
        status, _ = await _call(server, "GET", "/health")
        assert status == 200
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/metrics") as resp:
                assert resp.status == 200


async def test_without_api_key_a_loopback_caller_is_served(server):
    status, _ = await _call(server, "GET", "/api/info")
    assert status == 200


def _non_loopback_address() -> str | None:
    """This machine's own address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


@contextlib.asynccontextmanager
async def _node_bound_to(address: str, settings):
    """A node listening only on `address`: a request to it comes from `address`, not loopback."""
    runner = web.AppRunner(make_app(Node(settings)), handle_signals=False, access_log=None,
                           shutdown_timeout=1)
    await runner.setup()
    await TidingsSite(runner, address, settings.port).start()
    try:
        yield f"http://{address}:{settings.port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("api_key, headers, status, code", [
    (None, None, 403, ErrorCode.PERMISSION_DENIED),
    ("k3y", None, 401, ErrorCode.UNAUTHORIZED),
    ("k3y", {"X-API-Key": "k3y"}, 200, None),
])
async def test_non_loopback_caller_needs_an_api_key(tmp_path, api_key, headers, status, code):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to call from")
    # bound off loopback, so auth is configured as `tidings serve` would insist
    settings = settings_for(tmp_path, host=address, api_key=api_key,
                            jwt_secret="a-secret-long-enough-for-hs256-signing")
    async with _node_bound_to(address, settings) as url:
        got, body = await _call(url, "GET", "/api/info", headers=headers)
        assert got == status
        if code is not None:
            assert body["error"]["code"] == code
        got, _ = await _call(url, "GET", "/health")  # health checks come from anywhere
        assert got == 200


# ---- bad requests -----------------------------------------------------------------------

BAD, CHANNEL = ErrorCode.BAD_REQUEST, ErrorCode.BAD_CHANNEL


@pytest.mark.parametrize("method, path, kwargs, status, code", [
    # not JSON, not an object
    ("POST", "/api/publish", {"data": b"{oops"}, 400, BAD),
    ("POST", "/api/publish", {"data": b""}, 400, BAD),
    ("POST", "/api/publish", {"data": b"[1, 2]"}, 400, BAD),
    ("POST", "/api/send", {"data": b'"bob"'}, 400, BAD),
    ("POST", "/api/broadcast", {"data": b"{,}"}, 400, BAD),
    ("POST", "/api/disconnect", {"data": b"nope"}, 400, BAD),
    # missing and wrongly typed fields
    ("POST", "/api/publish", {"json": {"data": 1}}, 400, BAD),
    ("POST", "/api/publish", {"json": {"channel": "room:a"}}, 400, BAD),
    ("POST", "/api/publish", {"json": {"channel": 5, "data": 1}}, 400, BAD),
    ("POST", "/api/publish", {"json": {"channel": "room:a", "data": 1, "source": ""}}, 400, BAD),
    ("POST", "/api/publish", {"json": {"channel": "room:a", "data": 1, "source": "s" * 101}},
     400, BAD),
    ("POST", "/api/publish", {"json": {"channel": "room:a", "data": 1, "source": 7}}, 400, BAD),
    ("POST", "/api/send", {"json": {"data": 1}}, 400, BAD),
    ("POST", "/api/send", {"json": {"user": "bob"}}, 400, BAD),
    ("POST", "/api/send", {"json": {"user": "a b", "data": 1}}, 400, BAD),
    ("POST", "/api/broadcast", {"json": {}}, 400, BAD),
    ("POST", "/api/disconnect", {"json": {}}, 400, BAD),
    ("POST", "/api/disconnect", {"json": {"user": "bob", "reconnect": "no"}}, 400, BAD),
    ("GET", "/api/history", {"params": {"channel": "room:a", "limit": "0"}}, 400, BAD),
    ("GET", "/api/history", {"params": {"channel": "room:a", "limit": "1001"}}, 400, BAD),
    ("GET", "/api/history", {"params": {"channel": "room:a", "limit": "ten"}}, 400, BAD),
    ("GET", "/api/history", {"params": {"channel": "room:a", "since": "-1"}}, 400, BAD),
    ("GET", "/api/history", {"params": {"channel": "room:a", "reverse": "1"}}, 400, BAD),
    # channels: malformed, unknown namespace, a feature the namespace lacks
    ("POST", "/api/publish", {"json": {"channel": "weird:a", "data": 1}}, 400, CHANNEL),
    ("POST", "/api/publish", {"json": {"channel": "room:a b", "data": 1}}, 400, CHANNEL),
    ("POST", "/api/publish", {"json": {"channel": "lobby", "data": 1}}, 400, CHANNEL),
    ("GET", "/api/history", {}, 400, CHANNEL),
    ("GET", "/api/history", {"params": {"channel": "weird:a"}}, 400, CHANNEL),
    ("GET", "/api/history", {"params": {"channel": "voice:x"}}, 400, CHANNEL),  # ephemeral
    ("GET", "/api/presence", {"params": {"channel": "user:a"}}, 400, CHANNEL),
    ("GET", "/api/presence", {"params": {"channel": "weird:a"}}, 400, CHANNEL),
])
async def test_bad_requests_get_400_and_an_error_code(server, method, path, kwargs, status, code):
    got, body = await _call(server, method, path, **kwargs)
    assert got == status
    assert body["error"]["code"] == code and body["error"]["message"]
    ok, _ = await _call(server, "GET", "/health")  # and the node goes on
    assert ok == 200


async def test_body_over_one_mib_is_413(server):
    body = b'{"channel":"room:a","data":"' + b"x" * (1024 * 1024) + b'"}'
    status, reply = await _call(server, "POST", "/api/publish", data=body)
    assert status == 413 and reply["error"]["code"] == ErrorCode.BAD_REQUEST
    _, page = await _call(server, "GET", "/api/history", params={"channel": "room:a"})
    assert page["publications"] == []  # nothing was published


async def test_body_just_under_one_mib_is_accepted(server):
    padding = 1024 * 1024 - len(b'{"channel":"room:a","data":""}')
    body = b'{"channel":"room:a","data":"' + b"x" * padding + b'"}'
    status, reply = await _call(server, "POST", "/api/publish", data=body)
    assert status == 200 and reply["offset"] == 1


@pytest.mark.parametrize("limit", ["--5", "²"])
async def test_malformed_number_in_the_query_is_400(server, limit):
    status, body = await _call(server, "GET", "/api/history",
                               params={"channel": "room:a", "limit": limit})
    assert status == 400 and body["error"]["code"] == ErrorCode.BAD_REQUEST


async def test_deeply_nested_data_is_400(server):
    body = b'{"channel":"room:a","data":' + b"[" * 300 + b"]" * 300 + b"}"
    status, reply = await _call(server, "POST", "/api/publish", data=body)
    assert status == 400 and reply["error"]["code"] == ErrorCode.BAD_REQUEST


# ---- cross-site requests -----------------------------------------------------------------


async def test_a_page_on_another_site_cannot_call_the_api(server):
    """A no-cors POST from evil.example to the loopback node: refused, nothing published."""
    status, body = await _call(server, "POST", "/api/publish",
                               headers={"Origin": "https://evil.example",
                                        "Content-Type": "text/plain"},
                               data=b'{"channel":"room:csrf","data":1}')
    assert (status, body["error"]["code"]) == (403, ErrorCode.PERMISSION_DENIED)
    page = await server.node.store.history("room:csrf", limit=10, since=None, reverse=False)
    assert page.publications == []


@pytest.mark.parametrize("headers", [None, {"Origin": "http://localhost:5173"}])
async def test_backends_and_loopback_pages_may_call_the_api(server, headers):
    status, _ = await _call(server, "POST", "/api/publish", headers=headers,
                            json={"channel": "room:ok", "data": 1})
    assert status == 200


async def test_revoke_needs_the_api_key_like_every_endpoint(make_server):
    async with make_server(api_key="k3y", jwt_secret="a-secret-long-enough-for-hs256-signing") as s:
        status, _ = await _call(s, "POST", "/api/revoke", json={"jti": "x"})
        assert status == 401
        status, body = await _call(s, "POST", "/api/revoke", json={"jti": "x"},
                                   headers={"X-API-Key": "k3y"})
        assert (status, body) == (200, {"jti": "x"})
