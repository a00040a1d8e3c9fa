"""The native protocol end to end: real node, real sockets, real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
import pytest

import websockets

from tests.conftest import CommandError
from tidings.errors import CloseCode, ErrorCode


async def test_connect_reports_identity_and_automatic_channels(server):
    alice = await server.client("alice")
    result = alice.connect_result
    assert result["user"] == "alice"
    assert result["node"] == server.node.name
    assert set(result["subs"]) == {"user:alice", "broadcast"}
    assert result["subs"]["user:alice"]["offset"] == 0


async def test_two_tabs_of_one_user_both_get_a_direct_message(server):
    tab1, tab2 = await server.client("bob"), await server.client("bob")
    alice = await server.client("alice")
    sent = await alice.call("send", {"user": "bob", "data": {"text": "hi"}})
    for tab in (tab1, tab2):
        pub = await tab.push("pub")
        assert pub["channel"] == "user:bob"
        assert pub["data"] == {"text": "hi"}
        assert pub["sender"] == "alice"
        assert pub["offset"] == sent["offset"]
    await alice.no_push()


async def test_offline_user_gets_missed_messages_on_next_connect(server):
    bob = await server.client("bob")
    position = bob.connect_result["subs"]["user:bob"]
    await bob.close()
    alice = await server.client("alice")
    for n in range(3):
        await alice.call("send", {"user": "bob", "data": {"n": n}})
    bob = await server.client(
        "bob", recover={"user:bob": {"offset": position["offset"], "epoch": position["epoch"]}}
    )
    sub = bob.connect_result["subs"]["user:bob"]
    assert sub["recovered"] is True
    assert [p["data"]["n"] for p in sub["publications"]] == [0, 1, 2]
    await bob.no_push()


async def test_never_seen_user_reads_inbox_history(server):
    alice = await server.client("alice")
    await alice.call("send", {"user": "carol", "data": "welcome"})
    carol = await server.client("carol")
    page = await carol.call("history", {"channel": "user:carol"})
    assert [p["data"] for p in page["publications"]] == ["welcome"]


async def test_refresh_scenario_recovers_exactly_the_missed_messages(server):
    alice, bob = await server.client("alice"), await server.client("bob")
    for client in (alice, bob):
        await client.call("subscribe", {"channel": "room:chat"})
    for n in range(4):
        await alice.call("publish", {"channel": "room:chat", "data": {"n": n}})
    seen = await bob.pubs(4)
    last = seen[-1]
    await bob.close()  # bob closes the page
    for n in range(4, 7):
        await alice.call("publish", {"channel": "room:chat", "data": {"n": n}})
    bob = await server.client("bob")
    sub = await bob.call("subscribe", {"channel": "room:chat", "offset": last["offset"],
                                       "epoch": last["epoch"]})
    assert [p["data"]["n"] for p in sub["publications"]] == [4, 5, 6]
    assert sub["offset"] == last["offset"] + 3
    await alice.call("publish", {"channel": "room:chat", "data": {"n": 7}})
    live = await bob.push("pub")
    assert live["data"]["n"] == 7  # then live, with nothing repeated
    await bob.no_push()


async def test_room_join_leave_events_and_presence(server):
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.call("subscribe", {"channel": "room:lobby"})
    own = await alice.push("join")  # members, the joiner included, see every join
    assert own["info"]["user"] == "alice"
    await bob.call("subscribe", {"channel": "room:lobby"})
    join = await alice.push("join")
    assert join["channel"] == "room:lobby" and join["info"]["user"] == "bob"
    presence = await alice.call("presence", {"channel": "room:lobby"})
    assert sorted(c["user"] for c in presence["clients"].values()) == ["alice", "bob"]
    await bob.call("unsubscribe", {"channel": "room:lobby"})
    leave = await alice.push("leave")
    assert leave["info"]["user"] == "bob"
    presence = await alice.call("presence", {"channel": "room:lobby"})
    assert [c["user"] for c in presence["clients"].values()] == ["alice"]


async def test_disconnect_removes_presence_and_announces_leave(server):
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.call("subscribe", {"channel": "room:lobby"})
    await bob.call("subscribe", {"channel": "room:lobby"})
    await bob.close()
    leave = await alice.push("leave")
    assert leave["info"]["user"] == "bob"
    presence = await alice.call("presence", {"channel": "room:lobby"})
    assert [c["user"] for c in presence["clients"].values()] == ["alice"]


async def test_room_publication_reaches_members_only(server):
    alice, bob, carol = [await server.client(u) for u in ("alice", "bob", "carol")]
    await alice.call("subscribe", {"channel": "room:a"})
    await bob.call("subscribe", {"channel": "room:a"})
    await alice.call("publish", {"channel": "room:a", "data": 1})
    assert (await bob.push("pub"))["data"] == 1
    assert (await alice.push("pub"))["data"] == 1
    await carol.no_push()


async def test_publish_to_room_requires_membership(server):
    alice = await server.client("alice")
    with pytest.raises(CommandError) as err:
        await alice.call("publish", {"channel": "room:a", "data": 1})
    assert err.value.code == ErrorCode.PERMISSION_DENIED


async def test_broadcast_reaches_every_connection(server):
    import aiohttp

    clients = [await server.client(f"u{i}") for i in range(5)]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/broadcast", json={"data": "all"}) as resp:
            assert resp.status == 200
    for client in clients:
        pub = await client.push("pub")
        assert pub["channel"] == "broadcast" and pub["data"] == "all"


async def test_clients_cannot_publish_to_broadcast(server):
    alice = await server.client("alice")
    with pytest.raises(CommandError) as err:
        await alice.call("publish", {"channel": "broadcast", "data": 1})
    assert err.value.code == ErrorCode.PERMISSION_DENIED


async def test_history_pages_both_directions(server):
    alice = await server.client("alice")
    await alice.call("subscribe", {"channel": "room:h"})
    for n in range(1, 8):
        await alice.call("publish", {"channel": "room:h", "data": n})
    first = await alice.call("history", {"channel": "room:h", "limit": 3})
    assert [p["data"] for p in first["publications"]] == [1, 2, 3]
    second = await alice.call("history", {"channel": "room:h", "limit": 3, "since": 3})
    assert [p["data"] for p in second["publications"]] == [4, 5, 6]
    newest = await alice.call("history", {"channel": "room:h", "limit": 3, "reverse": True})
    assert [p["data"] for p in newest["publications"]] == [7, 6, 5]
    older = await alice.call("history", {"channel": "room:h", "limit": 3, "reverse": True,
                                         "since": 5})
    assert [p["data"] for p in older["publications"]] == [4, 3, 2]
    assert newest["offset"] == 7
    with pytest.raises(CommandError) as err:
        await alice.call("history", {"channel": "room:h", "limit": 5000})
    assert err.value.code == ErrorCode.BAD_REQUEST


async def test_recovery_refused_after_history_trimmed(make_server):
    async with make_server(namespaces={"room": {"history_size": 3}}) as server:
        alice = await server.client("alice")
        sub = await alice.call("subscribe", {"channel": "room:t"})
        for n in range(6):
            await alice.call("publish", {"channel": "room:t", "data": n})
        bob = await server.client("bob")
        with pytest.raises(CommandError) as err:
            await bob.call("subscribe", {"channel": "room:t", "offset": 1, "epoch": sub["epoch"]})
        assert err.value.code == ErrorCode.CANNOT_RECOVER
        assert "no longer reaches" in err.value.message
        # still recoverable from within what is kept
        ok = await bob.call("subscribe", {"channel": "room:t", "offset": 4, "epoch": sub["epoch"]})
        assert [p["data"] for p in ok["publications"]] == [4, 5]


async def test_recovery_refused_when_epoch_changed(server):
    alice = await server.client("alice")
    with pytest.raises(CommandError) as err:
        await alice.call("subscribe", {"channel": "room:e", "offset": 0, "epoch": "stale"})
    assert err.value.code == ErrorCode.CANNOT_RECOVER
    assert "epoch" in err.value.message
    # an automatic channel stays subscribed and says it could not recover
    bob = await server.client("bob", recover={"user:bob": {"offset": 3, "epoch": "stale"}})
    sub = bob.connect_result["subs"]["user:bob"]
    assert sub["recovered"] is False and sub["error"]["code"] == ErrorCode.CANNOT_RECOVER


async def test_subscribing_to_another_users_channel_is_denied(server):
    alice = await server.client("alice")
    for method, params in (("subscribe", {"channel": "user:bob"}),
                           ("history", {"channel": "user:bob"})):
        with pytest.raises(CommandError) as err:
            await alice.call(method, params)
        assert err.value.code == ErrorCode.PERMISSION_DENIED


async def test_commands_before_connect_are_refused(server):
    client = await server.client(connect=False)
    with pytest.raises(CommandError) as err:
        await client.call("subscribe", {"channel": "room:a"})
    assert err.value.code == ErrorCode.NOT_CONNECTED
    await client.call("connect", {"user": "late"})  # and connect still works after


@pytest.mark.parametrize("frame, code", [
    ("{not json", ErrorCode.BAD_REQUEST),
    ("[1, 2]", ErrorCode.BAD_REQUEST),
    ('{"id": 1, "explode": {}}', ErrorCode.UNKNOWN_METHOD),
    ('{"id": 1, "publish": {"channel": 5, "data": 1}}', ErrorCode.BAD_REQUEST),
    ('{"id": 1, "publish": {"channel": "room:a"}}', ErrorCode.BAD_REQUEST),
    ('{"id": "x", "publish": {}}', ErrorCode.BAD_REQUEST),
    ('{"id": 1, "subscribe": {"channel": "nonamespace"}}', ErrorCode.BAD_CHANNEL),
    ('{"id": 1, "subscribe": {"channel": "bogus:x"}}', ErrorCode.BAD_CHANNEL),
    ('{"id": 1, "subscribe": {"channel": "room:a b"}}', ErrorCode.BAD_CHANNEL),
    ('{"id": 1, "connect": {"user": "again"}}', ErrorCode.ALREADY_CONNECTED),
])
async def test_bad_input_gets_an_error_reply_and_the_connection_keeps_working(server, frame, code):
    alice = await server.client("alice")
    await alice.ws.send(frame)
    reply = await asyncio.wait_for(_next_error(alice), 5)
    assert reply["error"]["code"] == code
    await alice.call("subscribe", {"channel": "room:still-works"})


async def _next_error(client):
    if not client.errors.empty():
        return client.errors.get_nowait()
    waiter = asyncio.ensure_future(client.errors.get())
    # replies with an id nobody waits for land in pushes: look at both
    while True:
        if waiter.done():
            return waiter.result()
        try:
            message = await asyncio.wait_for(client.pushes.get(), 0.05)
        except asyncio.TimeoutError:
            continue
        if "error" in message:
            waiter.cancel()
            return message


async def test_binary_frame_that_is_no_voice_frame_closes_with_4510(server):
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.ws.send(b"\x00\x01binary")
    code, _ = await alice.closed()
    assert code == CloseCode.BAD_VOICE_FRAME
    await bob.call("subscribe", {"channel": "room:fine"})  # others are unaffected


async def test_oversized_frame_closes_with_message_too_big(make_server):
    async with make_server(max_frame_bytes=2048) as server:
        alice, bob = await server.client("alice"), await server.client("bob")
        await alice.ws.send('{"id":9,"publish":{"channel":"room:a","data":"' + "x" * 5000 + '"}}')
        code, _ = await alice.closed()
        assert code == CloseCode.MESSAGE_TOO_BIG
        await bob.call("subscribe", {"channel": "room:fine"})


async def test_bad_token_closes_with_unauthorized(make_server):
    async with make_server(jwt_secret="s3cret") as server:
        client = await server.client(connect=False)
        with pytest.raises(CommandError) as err:
            await client.call("connect", {"token": "not-a-jwt"})
        assert err.value.code == ErrorCode.UNAUTHORIZED
        code, _ = await client.closed()
        assert code == CloseCode.UNAUTHORIZED


async def test_valid_jwt_names_the_user(make_server):
    import time as _time

    import jwt

    async with make_server(jwt_secret="s3cret") as server:
        token = jwt.encode({"sub": "dora", "exp": int(_time.time()) + 60}, "s3cret", "HS256")
        client = await server.client(None, token=token)
        assert client.connect_result["user"] == "dora"
        client2 = await server.client(connect=False)
        with pytest.raises(CommandError) as err:  # a bare user id is not enough with auth on
            await client2.call("connect", {"user": "mallory"})
        assert err.value.code == ErrorCode.UNAUTHORIZED


async def test_text_ping_gets_pong(server):
    alice = await server.client("alice")
    await alice.ws.send("ping")
    assert (await alice.push("pong")) == "text"


async def test_server_pings_and_a_silent_client_is_closed(make_server):
    async with make_server(ping_interval=0.4, pong_timeout=0.4) as server:
        polite = await server.client("polite")
        silent = await server.client("silent")
        for _ in range(3):  # the polite client answers every ping and stays
            await polite.push("ping")
            await polite.ws.send('{"pong":{}}')
        code, _ = await silent.closed()
        assert code == CloseCode.NO_PONG
        await polite.call("subscribe", {"channel": "room:alive"})


async def test_connection_without_connect_is_closed(make_server):
    async with make_server(connect_timeout=0.3) as server:
        idle = await server.client(connect=False)
        code, _ = await idle.closed()
        assert code == CloseCode.CONNECT_TIMEOUT


async def test_slow_consumer_is_cut_off_and_recovers(make_server):
    unlimited = {"command_rate": 1e9, "command_burst": 10**9}  # the publisher floods on purpose
    async with make_server(max_outgoing_bytes=65536, security=unlimited) as server:
        alice = await server.client("alice")
        await alice.call("subscribe", {"channel": "room:flood"})
        reader = await server.client("reader")
        sub = await reader.call("subscribe", {"channel": "room:flood"})
        reader.reader.cancel()  # stop reading: the socket's buffers fill up
        session = next(s for s in server.node.sessions.values() if s.user == "reader")
        payload = "x" * 16000
        sent = 0
        while not session.closed and sent < 3000:
            await alice.call("publish", {"channel": "room:flood", "data": {"n": sent, "p": payload}})
            sent += 1
        assert session.closed, "the reader was never cut off"
        # alice, who reads, still gets everything
        assert [p["data"]["n"] for p in await alice.pubs(sent, timeout=10)] == list(range(sent))
        # the slow reader reconnects and recovers every publication it missed
        recovered = await server.client("reader")
        result = await recovered.call("subscribe", {"channel": "room:flood",
                                                    "offset": sub["offset"], "epoch": sub["epoch"]})
        assert [p["data"]["n"] for p in result["publications"]] == list(range(sent))
        assert server.node.metrics.disconnects.labels(str(CloseCode.SLOW_CONSUMER))._value.get() == 1


async def test_api_disconnect_closes_a_users_sessions(server):
    import aiohttp

    bob1, bob2, alice = [await server.client(u) for u in ("bob", "bob", "alice")]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/disconnect",
                             json={"user": "bob", "reconnect": False}) as resp:
            assert (await resp.json())["closed_here"] == 2
    for bob in (bob1, bob2):
        notice = await bob.push("disconnect")
        assert notice["reconnect"] is False
        code, _ = await bob.closed()
        assert code == CloseCode.FORCE_DISCONNECTED
    await alice.call("subscribe", {"channel": "room:x"})


async def test_websocket_level_pings_keep_a_silent_client_alive(make_server):
    import websockets

    async with make_server(ping_interval=0.3, pong_timeout=0.3) as server:
        ws = await websockets.connect(server.ws_url, ping_interval=0.1, ping_timeout=5)
        from tests.conftest import Client

        client = Client(ws)
        await client.call("connect", {"user": "pinger"})
        await asyncio.sleep(1.5)  # several ping intervals without a text frame
        await client.call("subscribe", {"channel": "room:still-here"})


async def test_bad_binary_frame_disconnect_push_says_do_not_reconnect(server):
    alice = await server.client("alice")
    await alice.ws.send(b"\x00binary")
    notice = await alice.push("disconnect")
    assert notice["code"] == CloseCode.BAD_VOICE_FRAME and notice["reconnect"] is False


async def test_ephemeral_subscribe_with_a_position_claims_no_recovery(server):
    alice = await server.client("alice")
    sub = await alice.call("subscribe", {"channel": "voice:v", "offset": 3, "epoch": "x"})
    assert "recovered" not in sub and "publications" not in sub


async def test_a_session_ends_when_its_token_expires(make_server):
    import time as _time

    import jwt

    secret = "a-test-secret-that-is-long-enough-for-hs256"
    async with make_server(jwt_secret=secret) as server:
        token = jwt.encode({"sub": "brief", "exp": int(_time.time()) + 2}, secret, "HS256")
        client = await server.client(None, token=token)
        notice = await client.push("disconnect", timeout=5)
        assert notice["code"] == CloseCode.TOKEN_EXPIRED and notice["reconnect"] is True
        code, _ = await client.closed()
        assert code == CloseCode.TOKEN_EXPIRED


# ---- the command rate limit ---------------------------------------------------------------


async def _pipeline(client, frames: list[dict]) -> list[dict]:
    """Send every frame without waiting, then read replies until all came or the socket closed."""
    for frame in frames:
        await client.ws.send(orjson.dumps(frame).decode())
    client.reader.cancel()
    replies: list[dict] = []
    with contextlib.suppress(websockets.ConnectionClosed, asyncio.TimeoutError):
        while len(replies) < len(frames):
            message = orjson.loads(await asyncio.wait_for(client.ws.recv(), 10))
            if "id" in message:
                replies.append(message)
    return replies


async def test_commands_past_the_burst_get_115_and_are_not_run(make_server):
    async with make_server(security={"command_rate": 1, "command_burst": 5}) as server:
        alice = await server.client("alice")  # connect took one token
        await alice.call("subscribe", {"channel": "room:r"})  # and this one
        frames = [{"id": 10 + n, "publish": {"channel": "room:r", "data": n}} for n in range(6)]
        replies = await _pipeline(alice, frames)
        assert [("error" in r) for r in replies] == [False, False, False, True, True, True]
        error = replies[-1]["error"]
        assert error["code"] == ErrorCode.RATE_LIMITED and "retry in" in error["message"]
        page = await server.node.store.history("room:r", limit=100, since=None, reverse=False)
        assert [orjson.loads(p.data) for p in page.publications] == [0, 1, 2]


async def test_five_thousand_commands_at_once_are_cut_off_with_4506(server):
    """The reported flood: 5,000 commands on one connection were all executed."""
    alice = await server.client("alice")
    await alice.call("subscribe", {"channel": "room:flood"})
    security = server.node.settings.security
    frames = [{"id": 10 + n, "publish": {"channel": "room:flood", "data": n}}
              for n in range(5000)]
    started = time.monotonic()
    replies = await _pipeline(alice, frames)
    elapsed = time.monotonic() - started
    ran = sum("error" not in r for r in replies)
    # the burst (less connect and subscribe), plus what refilled while they were sent
    assert security.command_burst - 2 <= ran <= security.command_burst + security.command_rate * elapsed
    assert len(replies) < len(frames)
    assert {r["error"]["code"] for r in replies if "error" in r} == {ErrorCode.RATE_LIMITED}
    assert alice.ws.close_code == CloseCode.COMMAND_FLOOD
    page = await server.node.store.history("room:flood", limit=1000, since=None, reverse=False)
    assert len(page.publications) == ran
    await server.client("bob")  # nobody else is affected


async def test_a_client_that_waits_as_told_is_served_and_stays(make_server):
    async with make_server(security={"command_rate": 50, "command_burst": 2}) as server:
        alice = await server.client("alice")
        done = 0
        while done < 10:
            reply = await alice.request("history", {"channel": "room:r"})
            if "error" in reply:
                assert reply["error"]["code"] == ErrorCode.RATE_LIMITED
                await asyncio.sleep(0.03)
            else:
                done += 1
        assert alice.ws.close_code is None
