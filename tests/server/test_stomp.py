"""STOMP at /stomp end to end: a real node, frames written by hand over a real WebSocket."""

from __future__ import annotations

import asyncio
import time

import jwt
import orjson
import pytest
import websockets

from tests.server.conftest import RawStomp, stomp_client
from tests.test_session import Socket
from tidings.errors import CloseCode
from tidings.server.native import CODEC
from tidings.server import stomp_frames
from tidings.server.stomp import GATEWAY
from tidings.server.stomp_connection import StompSession


async def _publish(server, channel: str, data) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/publish",
                             json={"channel": channel, "data": data}) as resp:
            return await resp.json()


# ---- CONNECT ---------------------------------------------------------------------------


async def test_connected_names_version_heartbeat_session_and_user(server):
    client = await RawStomp.open(server.port, subprotocols=["v12.stomp"])
    assert client.ws.subprotocol == "v12.stomp"
    connected = await client.connect("alice", **{"heart-beat": "0,5000"})
    assert connected.header("version") == "1.2"
    assert connected.header("heart-beat") == "10000,10000"
    assert connected.header("user-name") == "alice"
    assert connected.header("session") in server.node.sessions


@pytest.mark.parametrize("accept, version", [(None, "1.0"), ("1.0,1.1", "1.1"),
                                             ("1.1,1.2", "1.2")])
async def test_version_is_the_highest_both_speak(server, accept, version):
    client = await RawStomp.open(server.port)
    headers = {"login": "alice"} if accept is None else {"login": "alice", "accept-version": accept}
    await client.send("CONNECT", headers)
    connected = await client.frame("CONNECTED")
    assert connected.header("version", "1.0") == version


async def test_stomp_frame_connects_too(server):
    client = await RawStomp.open(server.port)
    await client.send("STOMP", {"accept-version": "1.2", "login": "alice", "host": "x"})
    await client.frame("CONNECTED")


async def test_no_common_version_is_an_error(server):
    client = await RawStomp.open(server.port)
    await client.send("CONNECT", {"accept-version": "2.0", "login": "alice"})
    error = await client.frame("ERROR")
    assert "supported versions" in error.header("message")
    assert await client.closed() == CloseCode.TOO_MANY_ERRORS


async def test_nothing_before_connect_is_accepted(server):
    client = await RawStomp.open(server.port)
    await client.send("SUBSCRIBE", {"id": "1", "destination": "/topic/a", "receipt": "9"})
    error = await client.frame("ERROR")
    assert error.header("message") == "send CONNECT first"
    assert error.header("receipt-id") == "9"
    await client.closed()
    assert "room:a" not in server.node.hub.channels


async def test_second_connect_is_an_error(server):
    client = await stomp_client(server.port)
    await client.send("CONNECT", {"accept-version": "1.2", "login": "alice"})
    assert (await client.frame("ERROR")).header("message") == "already connected"


async def test_jwt_in_passcode_in_bearer_header_and_in_the_url(make_server):
    secret = "s3cret"
    async with make_server(jwt_secret=secret) as server:
        def token(user):
            return jwt.encode({"sub": user, "exp": int(time.time()) + 60}, secret, "HS256")

        by_passcode = await RawStomp.open(server.port)
        connected = await by_passcode.connect("ignored", passcode=token("pat"))
        assert connected.header("user-name") == "pat"
        by_header = await RawStomp.open(server.port)
        connected = await by_header.connect("ignored", Authorization=f"Bearer {token('bea')}")
        assert connected.header("user-name") == "bea"
        by_url = await RawStomp.open(server.port, f"/stomp?token={token('uri')}")
        await by_url.send("CONNECT", {"accept-version": "1.2"})
        assert (await by_url.frame("CONNECTED")).header("user-name") == "uri"
        refused = await RawStomp.open(server.port)
        await refused.send("CONNECT", {"accept-version": "1.2", "passcode": "not-a-jwt"})
        assert "invalid token" in (await refused.frame("ERROR")).header("message")
        assert await refused.closed() == CloseCode.UNAUTHORIZED
        bare = await RawStomp.open(server.port)
        await bare.send("CONNECT", {"accept-version": "1.2", "login": "mallory"})
        assert "token" in (await bare.frame("ERROR")).header("message")


async def test_bare_user_mode_takes_the_user_from_the_url(server):
    client = await RawStomp.open(server.port, "/stomp?user=urluser")
    await client.send("CONNECT", {"accept-version": "1.2"})
    assert (await client.frame("CONNECTED")).header("user-name") == "urluser"


# ---- rooms, messages, receipts --------------------------------------------------------


async def test_message_headers_carry_offset_epoch_and_sender(server):
    alice = await stomp_client(server.port, "alice")
    await alice.subscribe("/topic/lobby")
    await alice.send("SEND", {"destination": "/topic/lobby", "content-type": "application/json",
                              "receipt": "p1"}, '{"text": "hi"}')
    message = await alice.frame("MESSAGE")
    assert (await alice.frame("RECEIPT")).header("receipt-id") == "p1"
    assert message.header("destination") == "/topic/lobby"
    assert message.header("subscription") == "sub-0"
    assert message.header("message-id") == "1.sub-0"
    assert message.header("content-type") == "application/json"
    assert message.header("offset") == "1"
    assert message.header("epoch") == server.node.store._epoch
    assert message.header("sender") == "alice"
    assert orjson.loads(message.body) == {"text": "hi"}
    assert message.header("ack") is None  # ack: auto


async def test_text_bodies_travel_as_text_and_json_strings(server):
    alice = await stomp_client(server.port)
    await alice.subscribe("/topic/lobby")
    await alice.send("SEND", {"destination": "/topic/lobby"}, "plain words")
    message = await alice.frame("MESSAGE")
    assert message.body == b"plain words"
    assert message.header("content-type").startswith("text/plain")
    history = await server.node.store.history("room:lobby", limit=1)
    assert orjson.loads(history.publications[0].data) == "plain words"


async def test_a_room_is_shared_with_a_native_client(server):
    stomp = await stomp_client(server.port, "alice")
    await stomp.subscribe("/topic/mixed")
    native = await server.client("bob")
    await native.call("subscribe", {"channel": "room:mixed"})
    await stomp.send("SEND", {"destination": "/topic/mixed"}, '{"from": "stomp"}')
    assert (await native.push("pub"))["data"] == {"from": "stomp"}
    await native.call("publish", {"channel": "room:mixed", "data": {"from": "native"}})
    bodies = [orjson.loads(m.body) for m in await stomp.messages(2)]
    assert bodies == [{"from": "stomp"}, {"from": "native"}]


async def test_other_namespaces_are_reachable_by_full_channel_name(server):
    alice = await stomp_client(server.port)
    await alice.subscribe("/topic/voice:hall")
    await alice.send("SEND", {"destination": "/topic/voice:hall"}, "[1,2]")
    message = await alice.frame("MESSAGE")
    assert message.header("destination") == "/topic/voice:hall"
    assert message.header("offset") is None  # ephemeral: nothing kept


async def test_send_to_a_room_without_subscribing_is_refused(server):
    alice = await stomp_client(server.port)
    await alice.send("SEND", {"destination": "/topic/closed", "receipt": "x"}, "{}")
    error = await alice.frame("ERROR")
    assert error.header("receipt-id") == "x"
    assert "subscribe to room:closed" in error.header("message")


async def test_broadcast_reaches_topic_broadcast_subscribers_only(server):
    listening, deaf = await stomp_client(server.port, "a"), await stomp_client(server.port, "b")
    await listening.subscribe("/topic/broadcast")
    import aiohttp

    async with aiohttp.ClientSession() as http:
        await http.post(f"{server.url}/api/broadcast", json={"data": {"all": True}})
    message = await listening.frame("MESSAGE")
    assert message.header("destination") == "/topic/broadcast"
    assert orjson.loads(message.body) == {"all": True}
    await deaf.no_frame()


# ---- direct messages and /app -----------------------------------------------------------


async def test_direct_message_reaches_every_connection_of_the_user(server):
    bob_stomp = await stomp_client(server.port, "bob")
    await bob_stomp.subscribe("/user/queue/chat")
    bob_native = await server.client("bob")
    alice = await stomp_client(server.port, "alice")
    await alice.send("SEND", {"destination": "/user/bob/queue/chat", "receipt": "d"}, '{"m": 1}')
    await alice.frame("RECEIPT")
    message = await bob_stomp.frame("MESSAGE")
    assert message.header("destination") == "/user/queue/chat"
    assert message.header("sender") == "alice"
    pub = await bob_native.push("pub")
    assert pub["channel"] == "user:bob" and pub["data"] == {"m": 1}
    await alice.no_frame()


async def test_app_method_answers_on_the_user_queue_of_the_same_name(server):
    await _publish(server, "room:hist", {"n": 1})
    alice = await stomp_client(server.port, "alice")
    other_tab = await stomp_client(server.port, "alice")
    for client in (alice, other_tab):
        await client.subscribe("/user/queue/history", id="h")
    await alice.send("SEND", {"destination": "/app/history", "correlation-id": "q1"},
                     '{"channel": "room:hist", "limit": 5}')
    answer = await alice.frame("MESSAGE")
    assert answer.header("destination") == "/user/queue/history"
    assert answer.header("correlation-id") == "q1"
    body = orjson.loads(answer.body)
    assert [p["data"] for p in body["publications"]] == [{"n": 1}]
    await other_tab.no_frame()  # the answer goes to the connection that asked


async def test_app_presence_and_app_errors_are_answers_not_closes(server):
    alice = await stomp_client(server.port, "alice")
    await alice.subscribe("/topic/seen", id="r")
    await alice.subscribe("/user/queue/presence", id="p")
    await alice.subscribe("/user/queue/frobnicate", id="f")
    await alice.send("SEND", {"destination": "/app/presence"}, '{"channel": "room:seen"}')
    clients = orjson.loads((await alice.frame("MESSAGE")).body)["clients"]
    assert [c["user"] for c in clients.values()] == ["alice"]
    await alice.send("SEND", {"destination": "/app/presence"}, '{"channel": "user:bob"}')
    error = orjson.loads((await alice.frame("MESSAGE")).body)["error"]
    assert error["code"] == 106
    await alice.send("SEND", {"destination": "/app/frobnicate"}, "{}")
    assert orjson.loads((await alice.frame("MESSAGE")).body)["error"]["code"] == 102
    await alice.send("SEND", {"destination": "/app/presence", "receipt": "ok"}, '{"channel": 5}')
    assert orjson.loads((await alice.frame("MESSAGE")).body)["error"]["code"] == 101
    assert (await alice.frame("RECEIPT")).header("receipt-id") == "ok"


async def test_a_reply_queue_gets_no_direct_messages(server):
    alice = await stomp_client(server.port, "alice")
    await alice.subscribe("/user/queue/history", id="h")
    bob = await server.client("bob")
    await bob.call("send", {"user": "alice", "data": 1})
    await alice.no_frame()


# ---- encode once ----------------------------------------------------------------------


async def test_one_encoding_per_publication_per_distinct_subscription_id(server, monkeypatch):
    encoded = []
    original = stomp_frames.MessageFrames.encode

    def counting(self, pub, destination):
        encoded.append(self.key.subscription)
        return original(self, pub, destination)

    monkeypatch.setattr(stomp_frames.MessageFrames, "encode", counting)
    clients = [await stomp_client(server.port, f"u{n}") for n in range(6)]
    for n, client in enumerate(clients):
        await client.subscribe("/topic/fan", id="sub-0" if n < 4 else "sub-1")
    assert len(server.runner.app[GATEWAY].frames) == 2
    await _publish(server, "room:fan", {"x": 1})
    for client in clients:
        await client.frame("MESSAGE")
    assert sorted(encoded) == ["sub-0", "sub-1"]


# ---- resume -----------------------------------------------------------------------------


async def test_resume_header_recovers_exactly_what_was_missed_in_order(server):
    first = await _publish(server, "room:log", 1)
    for n in (2, 3):
        await _publish(server, "room:log", n)
    alice = await stomp_client(server.port)
    await alice.subscribe("/topic/log", wait=False, offset=str(first["offset"]),
                          epoch=first["epoch"])
    recovered = await alice.messages(2)
    assert (await alice.frame("RECEIPT")).header("receipt-id") == "s-sub-0"
    await _publish(server, "room:log", 4)
    live = await alice.messages(1)
    assert [orjson.loads(m.body) for m in recovered + live] == [2, 3, 4]
    await alice.no_frame()


async def test_resume_from_a_lost_history_is_an_error_that_says_what_to_do(server):
    alice = await stomp_client(server.port)
    await alice.subscribe("/topic/log", wait=False, offset="3", epoch="deadbeef")
    error = await alice.frame("ERROR")
    assert "epoch changed" in error.header("message")
    assert "subscribe without offset" in error.header("message")


async def test_resume_on_the_users_own_queue(server):
    bob = await stomp_client(server.port, "bob")
    alice = await server.client("alice")
    sent = await alice.call("send", {"user": "bob", "data": "one"})
    await alice.call("send", {"user": "bob", "data": "two"})
    await bob.subscribe("/user/queue/updates", wait=False, offset=str(sent["offset"] - 1),
                        epoch=sent["epoch"])
    assert [m.body for m in await bob.messages(2)] == [b"one", b"two"]
    await alice.call("send", {"user": "bob", "data": "three"})
    assert [m.body for m in await bob.messages(1)] == [b"three"]
    await bob.no_frame()


# ---- server-side acknowledgement --------------------------------------------------------


async def _ack_session(server, destination: str, ack: str, user: str = "carol",
                       wait: bool = True):
    client = await stomp_client(server.port, user)
    await client.subscribe(destination, id="durable", ack=ack, wait=wait)
    return client


async def _leave(client: RawStomp) -> None:
    await client.send("DISCONNECT", {"receipt": "bye"})
    assert (await client.frame("RECEIPT")).header("receipt-id") == "bye"
    assert await client.closed() == 1000


async def test_client_ack_resumes_after_the_last_cumulative_ack(server):
    carol = await _ack_session(server, "/topic/work", "client")
    native = await server.client("pub")
    await native.call("subscribe", {"channel": "room:work"})
    for n in range(1, 6):
        await native.call("publish", {"channel": "room:work", "data": n})
    messages = await carol.messages(5)
    assert messages[2].header("ack") == messages[2].header("message-id")
    await carol.send("ACK", {"id": messages[2].header("ack"), "receipt": "a"})
    await carol.frame("RECEIPT")
    await _leave(carol)
    await native.call("publish", {"channel": "room:work", "data": 6})
    again = await _ack_session(server, "/topic/work", "client", wait=False)
    assert [orjson.loads(m.body) for m in await again.messages(3)] == [4, 5, 6]
    assert (await again.frame("RECEIPT")).header("receipt-id") == "s-durable"
    await again.no_frame()


async def test_client_individual_acks_redeliver_only_the_unacknowledged(server):
    carol = await _ack_session(server, "/topic/jobs", "client-individual")
    for n in range(1, 6):
        await _publish(server, "room:jobs", n)
    messages = await carol.messages(5)
    for index in (1, 3):  # 2 and 4
        await carol.send("ACK", {"id": messages[index].header("ack")})
    await carol.send("NACK", {"id": messages[4].header("ack")})
    await _leave(carol)
    again = await _ack_session(server, "/topic/jobs", "client-individual", wait=False)
    assert [orjson.loads(m.body) for m in await again.messages(3)] == [1, 3, 5]
    assert (await again.frame("RECEIPT")).header("receipt-id") == "s-durable"
    await again.no_frame()
    stored = await server.node.store.load_ack_position("carol", "durable")
    assert (stored.offset, stored.acked) == (0, (2, 4))


async def test_server_side_position_on_the_users_own_queue(server):
    carol = await _ack_session(server, "/user/queue/tasks", "client")
    sender = await server.client("dave")
    for n in range(1, 4):
        await sender.call("send", {"user": "carol", "data": n})
    messages = await carol.messages(3)
    await carol.send("ACK", {"id": messages[0].header("ack")})
    await _leave(carol)
    await sender.call("send", {"user": "carol", "data": 4})
    again = await _ack_session(server, "/user/queue/tasks", "client", wait=False)
    assert [orjson.loads(m.body) for m in await again.messages(3)] == [2, 3, 4]


async def test_unsubscribe_forgets_the_acknowledged_position(server):
    carol = await _ack_session(server, "/topic/gone", "client")
    await _publish(server, "room:gone", 1)
    await carol.messages(1)
    await carol.send("UNSUBSCRIBE", {"id": "durable", "receipt": "u"})
    await carol.frame("RECEIPT")
    assert await server.node.store.load_ack_position("carol", "durable") is None
    await carol.subscribe("/topic/gone", id="durable", ack="client")
    await carol.no_frame()


async def test_too_many_unacknowledged_messages_is_an_error(make_server):
    async with make_server(stomp={"max_unacked": 3}) as server:
        carol = await _ack_session(server, "/topic/pile", "client")
        for n in range(4):
            await _publish(server, "room:pile", n)
        await carol.messages(3)
        error = await carol.frame("ERROR")
        assert "more than 3 unacknowledged" in error.header("message")


# ---- transactions -------------------------------------------------------------------------


async def test_transaction_sends_nothing_until_commit_and_abort_drops_it(server):
    alice = await stomp_client(server.port)
    await alice.subscribe("/topic/tx")
    await alice.send("BEGIN", {"transaction": "t1"})
    for n in (1, 2):
        await alice.send("SEND", {"destination": "/topic/tx", "transaction": "t1"}, str(n))
    await alice.no_frame()
    await alice.send("COMMIT", {"transaction": "t1", "receipt": "c"})
    bodies = [orjson.loads(m.body) for m in await alice.messages(2)]
    assert bodies == [1, 2]
    assert (await alice.frame("RECEIPT")).header("receipt-id") == "c"
    await alice.send("BEGIN", {"transaction": "t2"})
    await alice.send("SEND", {"destination": "/topic/tx", "transaction": "t2"}, "3")
    await alice.send("ABORT", {"transaction": "t2", "receipt": "a"})
    assert (await alice.frame("RECEIPT")).header("receipt-id") == "a"
    await alice.no_frame()


async def test_acks_inside_a_transaction_count_at_commit(server):
    carol = await _ack_session(server, "/topic/txack", "client-individual")
    await _publish(server, "room:txack", 1)
    [message] = await carol.messages(1)
    await carol.send("BEGIN", {"transaction": "t"})
    await carol.send("ACK", {"id": message.header("ack"), "transaction": "t"})
    await carol.send("ABORT", {"transaction": "t", "receipt": "r"})
    await carol.frame("RECEIPT")
    stored = await server.node.store.load_ack_position("carol", "durable")
    assert stored.offset == 0


@pytest.mark.parametrize("frames, message", [
    ([("COMMIT", {"transaction": "nope"})], "no transaction 'nope'"),
    ([("BEGIN", {"transaction": "a"}), ("BEGIN", {"transaction": "a"})], "already open"),
    ([("SEND", {"destination": "/topic/x", "transaction": "ghost"})], "no transaction"),
    ([("BEGIN", {"transaction": str(n)}) for n in range(3)], "more than 2 open transactions"),
    ([("BEGIN", {"transaction": "t"})] + [("SEND", {"destination": "/topic/x",
                                                     "transaction": "t"})] * 3,
     "more than 2 frames in transaction"),
])
async def test_transaction_errors(make_server, frames, message):
    async with make_server(stomp={"max_transactions": 2, "max_transaction_frames": 2}) as server:
        alice = await stomp_client(server.port)
        for command, headers in frames:
            await alice.send(command, headers)
        assert message in (await alice.frame("ERROR")).header("message")


# ---- heart-beats ----------------------------------------------------------------------------


async def test_server_heartbeats_at_the_negotiated_interval(make_server):
    async with make_server(pong_timeout=0.4, stomp={"heartbeat_send": 0.5}) as server:
        client = await RawStomp.open(server.port)
        connected = await client.connect(**{"heart-beat": "0,500"})
        assert connected.header("heart-beat").startswith("500,")
        await asyncio.sleep(1.6)
        assert client.heartbeats >= 2


async def test_a_client_that_stops_its_heartbeats_is_closed(make_server):
    async with make_server(pong_timeout=0.4, stomp={"heartbeat_receive": 0.5}) as server:
        client = await RawStomp.open(server.port)
        await client.connect(**{"heart-beat": "500,0"})
        for _ in range(4):  # alive while it beats
            await asyncio.sleep(0.3)
            await client.ws.send("\n")
        assert client.ws.close_code is None
        error = await client.frame("ERROR", timeout=5)
        assert "heart-beat" in error.header("message")
        assert await client.closed() == CloseCode.NO_PONG


async def test_negotiated_heart_beats_re_file_the_session_and_set_when_it_is_due(make_server):
    """CONNECT's heart-beats may fall due long before the look the session was filed for
    (a tick while CONNECT was being answered filed it a ping interval ahead)."""
    async with make_server(shutdown_grace=0.05) as server:
        node = server.node
        session = StompSession(node, Socket(), CODEC)  # the codec only makes the beat
        node.wheel.pop_due(time.monotonic())
        session.heart_beats(0.5, 1.0)
        assert session in node.wheel.pop_due(time.monotonic())
        session.seen()
        now = time.monotonic()
        assert session.keepalive(now) == min(session.last_seen + 1.0, session.last_beat + 0.4)
        beat = session.last_beat + 0.45
        assert session.keepalive(beat) == beat + 0.4 and session.last_beat == beat


async def test_no_heartbeats_when_the_client_asks_for_none(make_server):
    async with make_server(pong_timeout=0.4, ping_interval=0.4,
                           stomp={"heartbeat_send": 0.5}) as server:
        client = await stomp_client(server.port)  # heart-beat: 0,0
        await asyncio.sleep(1.5)
        assert client.heartbeats == 0
        assert client.ws.close_code is None


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, message", [
    (b"FROB\n\n\0", "unknown command"),
    (b"SEND\nbroken\n\n\0", "without ':'"),
    (b"SEND\ndestination:/topic/a\\x\n\n\0", "undefined escape"),
    (b"SEND\n" + b"".join(b"h%d:v\n" % n for n in range(70)) + b"\n\0", "more than 64 headers"),
    (b"SEND\ndestination:/topic/" + b"a" * 9000 + b"\n\n\0", "longer than 8192"),
    (b"SEND\n\nbody\0", "needs a 'destination'"),
    (b"SEND\ndestination:/nowhere\n\n\0", "unknown destination"),
    (b"SEND\ndestination:/user/queue/x\n\n\0", "/user/<id>/queue/<name>"),
    (b"SEND\ndestination:/topic/a\ncontent-type:application/json\n\nnot json\0", "not valid JSON"),
    (b"SEND\ndestination:/topic/a\ncontent-type:image/png\n\n\x89PNG\0", "cannot be published"),
    (b"SEND\ndestination:/topic/a\ncontent-type:text/plain\n\n\xff\xfe\0", "UTF-8"),
    (b"SUBSCRIBE\ndestination:/topic/a\n\n\0", "needs an 'id'"),
    (b"SUBSCRIBE\nid:1\ndestination:/app/x\n\n\0", "SUBSCRIBE to"),
    (b"SUBSCRIBE\nid:1\ndestination:/topic/user:bob\n\n\0", "a user channel"),
    (b"SUBSCRIBE\nid:1\ndestination:/topic/a\nack:sometimes\n\n\0", "ack must be"),
    (b"SUBSCRIBE\nid:1\ndestination:/topic/a\noffset:x\nepoch:e\n\n\0", "resume with both"),
    (b"UNSUBSCRIBE\nid:never\n\n\0", "no subscription"),
    (b"ACK\n\n\0", "needs a 'id'"),
    (b"BEGIN\n\n\0", "needs a 'transaction'"),
])
async def test_bad_frames_get_an_error_then_a_close_and_cost_others_nothing(server, raw, message):
    bystander = await stomp_client(server.port, "bystander")
    await bystander.subscribe("/topic/calm")
    client = await stomp_client(server.port, "clumsy")
    await client.send("", raw=raw)
    error = await client.frame("ERROR")
    assert message in error.header("message"), error
    assert error.body == error.header("message").encode()
    assert await client.closed() == CloseCode.TOO_MANY_ERRORS
    await bystander.send("SEND", {"destination": "/topic/calm"}, "still here")
    assert (await bystander.frame("MESSAGE")).body == b"still here"


async def test_a_duplicate_subscription_id_is_an_error(server):
    client = await stomp_client(server.port)
    await client.subscribe("/topic/a", id="same")
    await client.subscribe("/topic/b", id="same", wait=False)
    assert "already in use" in (await client.frame("ERROR")).header("message")


async def test_a_frame_over_the_size_limit_is_an_error(make_server):
    async with make_server(max_frame_bytes=2048) as server:
        client = await stomp_client(server.port)
        for piece in (b"SEND\ndestination:/topic/a\n\n" + b"x" * 1000, b"x" * 1100):
            await client.send("", raw=piece)
        assert "larger than 2048" in (await client.frame("ERROR")).header("message")


async def test_frames_split_across_websocket_messages_and_several_in_one(server):
    client = await stomp_client(server.port)
    await client.send("", raw=b"SUBSCRIBE\nid:1\ndestination:/top")
    await client.send("", raw=b"ic/split\nreceipt:r\n\n\0SEND\ndestination:/topic/split\n\nhi\0")
    await client.frame("RECEIPT")
    assert (await client.frame("MESSAGE")).body == b"hi"


async def test_shutdown_tells_stomp_clients_with_an_error_frame(make_server):
    async with make_server(shutdown_grace=1) as server:
        client = await stomp_client(server.port)
        await server.node.drain()
        assert "shutting down" in (await client.frame("ERROR")).header("message")
        assert await client.closed() == CloseCode.SHUTDOWN


async def test_disconnect_leaves_nothing_behind(server):
    client = await stomp_client(server.port)
    await client.subscribe("/topic/tidy")
    await _leave(client)
    for _ in range(50):
        if not server.node.sessions and "room:tidy" not in server.node.hub.channels:
            break
        await asyncio.sleep(0.05)
    assert server.node.sessions == {}
    assert "room:tidy" not in server.node.hub.channels
    assert len(server.runner.app[GATEWAY].frames) == 0


async def test_a_websocket_without_subprotocol_is_accepted(server):
    ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/stomp")
    assert ws.subprotocol is None
    await ws.close()


async def test_a_client_over_the_command_rate_is_paced_not_refused(make_server):
    """STOMP has no error a connection survives, so frames over the limit wait their turn."""
    async with make_server(security={"command_rate": 50, "command_burst": 5}) as server:
        client = await stomp_client(server.port)
        await client.subscribe("/topic/pace")
        for n in range(20):
            await client.send("SEND", {"destination": "/topic/pace", "receipt": f"r{n}"}, "x")
        frames = [await client.frame() for _ in range(40)]  # a MESSAGE and a RECEIPT each
        receipts = [f.header("receipt-id") for f in frames if f.command == "RECEIPT"]
        assert receipts == [f"r{n}" for n in range(20)]
        assert not client.ws.close_code
        refused = server.node.metrics.refused.labels("command_rate")._value.get()
        assert refused >= 10  # the frames past the burst were held back, then run
        await client.close()


async def test_a_subscription_id_longer_than_255_characters_is_an_error(server):
    client = await stomp_client(server.port)
    await client.send("SUBSCRIBE", {"id": "s" * 256, "destination": "/topic/a", "receipt": "1"})
    error = await client.frame("ERROR")
    assert error.header("message") == "a subscription id is at most 255 characters"
    assert await client.closed() == CloseCode.TOO_MANY_ERRORS
