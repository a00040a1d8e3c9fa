"""The /connection/websocket endpoint frame by frame: encodings, batches, pings, bad input."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets

from tests.conftest import running_node, settings_for
from tests.server.centrifugo_clients import SECRET, token
from tests.test_session import Socket
from tidings.protocol import centrifugo as cf
from tidings.protocol import centrifugo_pb2 as pb
from tidings.server.centrifugo_connection import CODECS, CentrifugoSession


@pytest.fixture
async def node(tmp_path):
    async with running_node(settings_for(tmp_path, ping_interval=0.5, pong_timeout=0.5)) as s:
        yield s


async def _json_socket(node, user: str = "alice"):
    return await websockets.connect(
        f"ws://127.0.0.1:{node.port}/connection/websocket?user={user}", ping_interval=None)


async def _replies(ws, count: int) -> list[dict]:
    out: list[dict] = []
    while len(out) < count:
        frame = await asyncio.wait_for(ws.recv(), 5)
        out += [orjson.loads(line) for line in frame.split("\n") if line]
    return out


async def _until(ws, last_id: int) -> dict[int, dict]:
    """Replies by id, up to the one with `last_id` (pushes and pings skipped)."""
    by_id: dict[int, dict] = {}
    while last_id not in by_id:
        for reply in await _replies(ws, 1):
            if reply.get("id"):
                by_id[reply["id"]] = reply
    return by_id


async def test_several_commands_in_one_frame_are_answered_in_order(node):
    ws = await _json_socket(node)
    await ws.send('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"room:batch"}}\n'
                  '{"id":3,"publish":{"channel":"room:batch","data":{"x":1}}}\n'
                  '{"id":4,"history":{"channel":"room:batch","limit":5}}')
    replies = await _replies(ws, 6)
    by_id = {r["id"]: r for r in replies if r.get("id")}
    assert by_id[1]["connect"]["subs"]["user:alice"]["recoverable"] is True
    assert by_id[2]["subscribe"]["offset"] == 0
    assert by_id[3] == {"id": 3, "publish": {}}
    assert [p["data"] for p in by_id[4]["history"]["publications"]] == [{"x": 1}]
    pushes = [r["push"] for r in replies if "push" in r]
    assert {"join", "pub"} <= {k for p in pushes for k in p if k != "channel"}
    await ws.close()


async def test_protobuf_is_chosen_by_subprotocol_and_batches_commands(node):
    ws = await websockets.connect(f"ws://127.0.0.1:{node.port}/connection/websocket?user=bo",
                                  subprotocols=["centrifuge-protobuf"], ping_interval=None)
    assert ws.subprotocol == "centrifuge-protobuf"
    frame = b""
    for command in (pb.Command(id=1, connect={}), pb.Command(id=2, ping={})):
        raw = command.SerializeToString()
        frame += cf.encode_varint(len(raw)) + raw
    await ws.send(frame)
    replies = []
    while len(replies) < 2:
        data = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(data, bytes)
        pos = 0
        while pos < len(data):
            size, pos = cf.read_varint(data, pos)
            replies.append(pb.Reply.FromString(data[pos:pos + size]))
            pos += size
    assert replies[0].connect.client and replies[0].connect.pong
    assert replies[1].id == 2 and replies[1].HasField("ping")
    await ws.close()


async def test_the_server_pings_and_closes_a_client_that_never_answers(node):
    ws = await _json_socket(node)
    await ws.send('{"id":1,"connect":{}}')
    [connected] = await _replies(ws, 1)
    assert connected["connect"]["ping"] == 1 and connected["connect"]["pong"] is True
    assert await _replies(ws, 1) == [{}]  # a ping
    await ws.send("{}")  # the pong
    assert await _replies(ws, 1) == [{}]
    await asyncio.wait_for(ws.wait_closed(), 5)  # this one is not answered
    assert (ws.close_code, ws.close_reason) == (3012, "no pong in time")


async def test_pings_on_the_servers_schedule_are_due_a_ping_interval_apart(tmp_path):
    """What a Centrifugo session tells the node's tick: the next ping a ping interval after
    the last one, whatever the client sent; after a ping, the pong's deadline."""
    settings = settings_for(tmp_path, ping_interval=20, pong_timeout=5, shutdown_grace=0.05)
    async with running_node(settings) as running:
        session = CentrifugoSession(running.node, Socket(), CODECS["json"])
        start = session.opened_at
        session.last_seen = start + 0.5  # a frame (what seen() notes) does not put it off
        assert session.keepalive(start + 1) == start + 20
        assert session.keepalive(start + 20.5) == start + 25.5  # pinged
        session.last_seen = start + 20.8  # the pong
        assert session.keepalive(start + 21) == start + 40.5


@pytest.mark.parametrize("frame, code", [
    ("not json", 3501),
    ('{"id":1,"subscribe":{"channel":"room:a"}}', 3501),  # before connect
])
async def test_unreadable_frames_close_with_bad_request(node, frame, code):
    ws = await _json_socket(node)
    await ws.send(frame)
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == code


async def test_an_asynchronous_send_is_not_available_and_said_so_by_the_close(node):
    ws = await _json_socket(node)
    await ws.send('{"id":1,"connect":{}}')
    await _replies(ws, 1)
    await ws.send('{"send":{"data":{"x":1}}}')
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 3508 and ws.close_reason.startswith("not available")


async def test_features_tidings_lacks_answer_not_available(node):
    ws = await _json_socket(node)
    await ws.send('{"id":1,"connect":{}}\n'
                  '{"id":2,"subscribe":{"channel":"room:d","delta":"fossil"}}\n'
                  '{"id":3,"unsubscribe":{"channel":"room:d"}}\n'
                  '{"id":4,"subscribe":{"channel":"room:d"}}\n'
                  '{"id":5,"subscribe":{"channel":"room:d"}}')
    replies = await _until(ws, 5)
    assert replies[2]["error"]["code"] == 108
    assert replies[3] == {"id": 3, "unsubscribe": {}}  # not subscribed: no error
    assert replies[5]["error"] == {"code": 105, "message": "already subscribed to room:d"}
    await ws.close()


async def test_a_malformed_request_gets_bad_request_and_the_connection_stays(node):
    ws = await _json_socket(node)
    await ws.send('{"id":1,"connect":{}}\n{"id":2,"history":{"channel":5}}\n'
                  '{"id":3,"ping":{}}')
    replies = await _until(ws, 3)
    assert replies[2]["error"]["code"] == 107
    assert replies[3] == {"id": 3, "ping": {}}
    await ws.close()


@pytest.fixture
async def tokens_node(tmp_path):
    settings = settings_for(tmp_path, jwt_secret=SECRET,
                            namespaces={"vip": {"subscribe": "token"}})
    async with running_node(settings) as s:
        yield s


async def test_subscription_and_connection_tokens_are_refreshed(tokens_node):
    ws = await websockets.connect(f"ws://127.0.0.1:{tokens_node.port}/connection/websocket",
                                  ping_interval=None)
    short = token("alice", ttl=60)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": short}}).decode())
    connected = (await _until(ws, 1))[1]["connect"]
    assert connected["expires"] is True and 0 < connected["ttl"] <= 60
    await ws.send(orjson.dumps({"id": 2, "subscribe": {"channel": "vip:lounge"}}).decode())
    await ws.send(orjson.dumps({"id": 3, "subscribe": {
        "channel": "vip:lounge", "token": token("alice", ttl=30, channel="vip:lounge")}}).decode())
    replies = await _until(ws, 3)
    assert replies[2]["error"]["code"] == 103  # no subscription token
    assert replies[3]["subscribe"]["expires"] is True and replies[3]["subscribe"]["ttl"] <= 30
    await ws.send(orjson.dumps({"id": 4, "sub_refresh": {
        "channel": "vip:lounge", "token": token("alice", ttl=900, channel="vip:lounge")}}).decode())
    await ws.send(orjson.dumps({"id": 5, "refresh": {"token": token("alice", ttl=3600)}}).decode())
    await ws.send(orjson.dumps({"id": 6, "refresh": {"token": token("alice", ttl=-5)}}).decode())
    replies = await _until(ws, 6)
    assert 30 < replies[4]["sub_refresh"]["ttl"] <= 900
    assert 900 < replies[5]["refresh"]["ttl"] <= 3600
    assert replies[6]["error"]["code"] == 109  # expired: the SDK asks for another token
    await ws.send(orjson.dumps({"id": 7, "refresh": {"token": token("mallory")}}).decode())
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 3500  # another user's token: invalid token, do not reconnect


async def test_a_second_connect_is_a_bad_request(node):
    ws = await _json_socket(node)
    await ws.send('{"id":1,"connect":{}}\n{"id":2,"connect":{}}')
    assert (await _until(ws, 2))[2]["error"]["code"] == 107
    await ws.close()
