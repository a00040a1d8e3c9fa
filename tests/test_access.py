"""Authorization on every command, end to end: a real node, real WebSocket clients, and a real
application backend for the proxy hooks."""

from __future__ import annotations

import time

import jwt
import pytest
import websockets

from tests.backend import deny, running_backend
from tests.conftest import Client, CommandError
from tidings.errors import CloseCode, ErrorCode

SECRET = "a-secret-long-enough-for-hs256-signing"


def _token(**claims) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, SECRET, "HS256")


async def _client(server, *, headers: dict | None = None, **connect) -> Client:
    ws = await websockets.connect(server.ws_url, additional_headers=headers, ping_interval=None)
    client = Client(ws)
    if connect:
        client.connect_result = await client.call("connect", connect)
    return client


async def _error(call) -> CommandError:
    with pytest.raises(CommandError) as err:
        await call
    return err.value


# ---- subscription tokens ------------------------------------------------------------------


@pytest.fixture
async def token_node(make_server):
    async with make_server(jwt_secret=SECRET,
                           namespaces={"vip": {"subscribe": "token"}}) as server:
        yield server


async def test_a_token_namespace_needs_a_subscription_token_for_that_channel(token_node):
    alice = await _client(token_node, token=_token(sub="alice"))
    for token in (None, _token(sub="alice", channel="vip:other"), _token(sub="bob",
                                                                         channel="vip:lounge"),
                  _token(sub="alice")):
        params = {"channel": "vip:lounge", **({"token": token} if token else {})}
        assert (await _error(alice.call("subscribe", params))).code == (
            ErrorCode.BAD_SUBSCRIPTION_TOKEN)
    sub = await alice.call("subscribe", {"channel": "vip:lounge",
                                         "token": _token(sub="alice", channel="vip:lounge")})
    assert sub["channel"] == "vip:lounge"


async def test_history_and_presence_of_a_private_channel_need_the_subscription(token_node):
    alice = await _client(token_node, token=_token(sub="alice"))
    for method in ("history", "presence"):
        error = await _error(alice.call(method, {"channel": "vip:lounge"}))
        assert error.code == ErrorCode.PERMISSION_DENIED and "private" in error.message
    await alice.call("subscribe", {"channel": "vip:lounge",
                                   "token": _token(sub="alice", channel="vip:lounge")})
    assert (await alice.call("history", {"channel": "vip:lounge"}))["offset"] == 0


async def test_recovery_of_a_private_channel_goes_through_the_token(token_node):
    alice = await _client(token_node, token=_token(sub="alice"))
    grant = _token(sub="alice", channel="vip:lounge")
    position = await alice.call("subscribe", {"channel": "vip:lounge", "token": grant})
    await alice.call("publish", {"channel": "vip:lounge", "data": "missed"})
    await alice.close()
    again = await _client(token_node, token=_token(sub="alice"))
    recover = {"channel": "vip:lounge", "offset": position["offset"],
               "epoch": position["epoch"]}
    error = await _error(again.call("subscribe", recover))
    assert error.code == ErrorCode.BAD_SUBSCRIPTION_TOKEN
    sub = await again.call("subscribe", {**recover, "token": grant})
    assert [p["data"] for p in sub["publications"]] == ["missed"]


async def test_a_token_naming_a_client_works_on_that_connection_only(token_node):
    alice = await _client(token_node, token=_token(sub="alice"))
    other = await _client(token_node, token=_token(sub="alice"))
    grant = _token(sub="alice", channel="vip:lounge", client=alice.connect_result["client"])
    error = await _error(other.call("subscribe", {"channel": "vip:lounge", "token": grant}))
    assert "another connection" in error.message
    await alice.call("subscribe", {"channel": "vip:lounge", "token": grant})


async def test_the_session_ends_when_a_subscription_token_expires(token_node):
    alice = await _client(token_node, token=_token(sub="alice"))
    short = jwt.encode({"sub": "alice", "channel": "vip:lounge", "exp": int(time.time()) + 2},
                       SECRET, "HS256")
    await alice.call("subscribe", {"channel": "vip:lounge", "token": short})
    code, _ = await alice.closed(timeout=6)
    assert code == CloseCode.TOKEN_EXPIRED


async def test_unsubscribing_drops_the_subscription_tokens_expiry(token_node):
    alice = await _client(token_node, token=_token(sub="alice"))
    short = jwt.encode({"sub": "alice", "channel": "vip:lounge", "exp": int(time.time()) + 2},
                       SECRET, "HS256")
    await alice.call("subscribe", {"channel": "vip:lounge", "token": short})
    await alice.call("unsubscribe", {"channel": "vip:lounge"})
    session = token_node.node.sessions[alice.connect_result["client"]]
    assert session.expires == session._token_expires


# ---- the subscribe and publish hooks ------------------------------------------------------


@pytest.fixture
async def backend():
    async with running_backend() as running:
        yield running


@pytest.fixture
async def proxy_node(make_server, backend):
    def members_only(body, headers):
        if body["user"] == "alice":
            return 200, {"result": {}}
        return 200, {"error": {"message": f"{body['user']} is not in {body['channel']}"}}

    backend.answers.update(subscribe=members_only, publish=members_only)
    security = {"proxy": {"subscribe_url": backend.hook_url("subscribe"),
                          "publish_url": backend.hook_url("publish"), "timeout": 0.5}}
    async with make_server(jwt_secret=SECRET, security=security, namespaces={
            "club": {"subscribe": "proxy", "publish": "proxy"}}) as server:
        yield server


async def test_the_backend_decides_who_subscribes_and_sees_the_handshake_cookie(proxy_node,
                                                                                backend):
    alice = await _client(proxy_node, headers={"Cookie": "sid=alice-session"},
                          token=_token(sub="alice"))
    bob = await _client(proxy_node, token=_token(sub="bob"))
    await alice.call("subscribe", {"channel": "club:chess"})
    error = await _error(bob.call("subscribe", {"channel": "club:chess"}))
    assert error.code == ErrorCode.PERMISSION_DENIED
    assert error.message == "bob is not in club:chess"
    asked = [(body, headers) for hook, body, headers in backend.calls if hook == "subscribe"]
    assert asked[0][0]["client"] == alice.connect_result["client"]
    assert asked[0][1]["Cookie"] == "sid=alice-session"
    assert (await _error(bob.call("history", {"channel": "club:chess"}))).code == (
        ErrorCode.PERMISSION_DENIED)


async def test_the_backend_decides_who_publishes(proxy_node, backend):
    alice = await _client(proxy_node, token=_token(sub="alice"))
    bob = await _client(proxy_node, token=_token(sub="bob"))
    assert (await alice.call("publish", {"channel": "club:chess", "data": {"move": "e4"}}))[
        "offset"] == 1
    assert backend.calls_of("publish")[0]["data"] == {"move": "e4"}
    error = await _error(bob.call("publish", {"channel": "club:chess", "data": 1}))
    assert error.code == ErrorCode.PERMISSION_DENIED


async def test_a_failing_backend_means_111_and_nothing_is_let_through(proxy_node, backend):
    backend.answers["subscribe"] = lambda body, headers: (503, {})
    alice = await _client(proxy_node, token=_token(sub="alice"))
    error = await _error(alice.call("subscribe", {"channel": "club:chess"}))
    assert error.code == ErrorCode.UNAVAILABLE
    backend.delay = 2.0
    error = await _error(alice.call("subscribe", {"channel": "club:go"}))
    assert error.code == ErrorCode.UNAVAILABLE
    assert "club:go" not in proxy_node.node.hub.channels


async def test_a_subscription_token_spares_the_backend(proxy_node, backend):
    bob = await _client(proxy_node, token=_token(sub="bob"))
    await bob.call("subscribe", {"channel": "club:chess",
                                 "token": _token(sub="bob", channel="club:chess")})
    assert backend.calls_of("subscribe") == []


# ---- the connect hook ---------------------------------------------------------------------


@pytest.fixture
async def connect_node(make_server, backend):
    def by_cookie(body, headers):
        cookie = headers.get("Cookie", "")
        if cookie == "sid=good":
            return 200, {"result": {"user": "carol", "info": {"name": "Carol"}}}
        if cookie == "sid=expired":
            return 200, {"result": {"user": "carol", "expire_at": int(time.time()) - 1}}
        if cookie == "sid=broken":
            return 200, {"result": {"user": "not a valid id"}}
        return 200, {"error": {"message": "no session"}}

    backend.answers["connect"] = by_cookie
    async with make_server(jwt_secret=SECRET, security={"proxy": {
            "connect_url": backend.hook_url("connect")}}) as server:
        yield server


async def test_without_a_token_the_backend_names_the_user_from_its_cookie(connect_node,
                                                                          backend):
    carol = await _client(connect_node, headers={"Cookie": "sid=good"}, user="ignored")
    assert carol.connect_result["user"] == "carol"
    body = backend.calls_of("connect")[0]
    assert body == {"client": carol.connect_result["client"], "transport": "websocket",
                    "protocol": "native"}
    session = connect_node.node.sessions[carol.connect_result["client"]]
    assert session.meta == {"name": "Carol"}


@pytest.mark.parametrize("cookie, code", [
    ("sid=bad", ErrorCode.UNAUTHORIZED),
    ("sid=expired", ErrorCode.UNAUTHORIZED),
    ("sid=broken", ErrorCode.UNAVAILABLE),
])
async def test_a_refused_or_broken_connect_answer(connect_node, cookie, code):
    client = await _client(connect_node, headers={"Cookie": cookie})
    reply = await client.request("connect", {})
    assert reply["error"]["code"] == code
    if code == ErrorCode.UNAUTHORIZED:
        assert (await client.closed())[0] == CloseCode.UNAUTHORIZED


async def test_a_token_still_connects_without_asking_the_backend(connect_node, backend):
    dave = await _client(connect_node, token=_token(sub="dave"))
    assert dave.connect_result["user"] == "dave"
    assert backend.calls_of("connect") == []


async def test_the_connect_hook_down_means_111(connect_node, backend):
    backend.answers["connect"] = lambda body, headers: (500, {})
    client = await _client(connect_node, headers={"Cookie": "sid=good"})
    reply = await client.request("connect", {})
    assert reply["error"]["code"] == ErrorCode.UNAVAILABLE


# ---- send follows the user namespace's publish rule ---------------------------------------


async def test_send_to_a_user_asks_the_publish_hook_when_the_user_namespace_says_so(
        make_server, backend):
    backend.answers["publish"] = deny("alice blocked you")
    async with make_server(jwt_secret=SECRET, security={"proxy": {
            "publish_url": backend.hook_url("publish")}},
            namespaces={"user": {"publish": "proxy"}}) as server:
        bob = await _client(server, token=_token(sub="bob"))
        error = await _error(bob.call("send", {"user": "alice", "data": "hi"}))
        assert (error.code, error.message) == (ErrorCode.PERMISSION_DENIED, "alice blocked you")
        assert backend.calls_of("publish")[0]["channel"] == "user:alice"
