"""Interop with real STOMP clients: @stomp/stompjs on Node over a WebSocket and through
sockjs-client (websocket, xhr-streaming, xhr-polling), and stomp-py over a WebSocket."""

from __future__ import annotations

import asyncio
import queue
import time

import aiohttp
import orjson
import pytest
import stomp as stomppy

from tests.server.conftest import stomp_client

async def _publish(server, channel: str, data) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/publish",
                             json={"channel": channel, "data": data}) as resp:
            assert resp.status == 200


TRANSPORTS = ["websocket", "sockjs-websocket", "xhr-streaming", "xhr-polling"]


def _config(server, transport: str, user: str) -> dict:
    if transport == "websocket":
        return {"url": f"ws://127.0.0.1:{server.port}/stomp", "connectHeaders": {"login": user}}
    sockjs = transport.removeprefix("sockjs-")
    return {"url": f"{server.url}/sockjs?user={user}", "sockjs": [sockjs]}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stompjs_subscribe_send_receipt_direct_message_and_app(server, stompjs, transport):
    client = await stompjs(**_config(server, transport, "alice"))
    await client.subscribe("/topic/lobby", headers={"id": "room"})
    await client.subscribe("/user/queue/chat", headers={"id": "dm"})
    await client.subscribe("/user/queue/history", headers={"id": "h"})
    await client.do("receipt", id="r1")
    await client.do("publish", destination="/topic/lobby", body='{"text":"hi"}',
                    headers={"content-type": "application/json", "receipt": "r1"})
    message = await client.event("message")
    assert (message["subscription"], orjson.loads(message["body"])) == ("room", {"text": "hi"})
    assert message["headers"]["offset"] == "1"
    await client.event("receipt")
    bob = await stomp_client(server.port, "bob")
    await bob.send("SEND", {"destination": "/user/alice/queue/chat"}, "psst")
    message = await client.event("message")
    assert (message["subscription"], message["body"]) == ("dm", "psst")
    await client.do("publish", destination="/app/history", body='{"channel":"room:lobby"}')
    message = await client.event("message")
    assert message["subscription"] == "h"
    assert orjson.loads(message["body"])["publications"][0]["data"] == {"text": "hi"}


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming"])
@pytest.mark.parametrize("ack", ["client", "client-individual"])
async def test_stompjs_reconnects_and_gets_what_it_did_not_acknowledge(server, stompjs,
                                                                       transport, ack):
    config = _config(server, transport, "carol")
    client = await stompjs(**config)
    await client.subscribe("/topic/work", ack=ack, headers={"id": "jobs"})
    for n in range(1, 5):
        await _publish(server, "room:work", n)
    messages = await client.messages(4)
    await client.do("ack", messageId=messages[1]["headers"]["message-id"],
                    headers={"receipt": "acked"})
    await client.do("receipt", id="acked")
    await client.event("receipt")
    await client.do("deactivate")
    await client.event("deactivated")
    await _publish(server, "room:work", 5)
    again = await stompjs(**config)
    await again.subscribe("/topic/work", wait=False, ack=ack, headers={"id": "jobs"})
    expected = [3, 4, 5] if ack == "client" else [1, 3, 4, 5]
    got = [int(m["body"]) for m in await again.messages(len(expected))]
    assert got == expected
    await again.no_message()


async def test_stompjs_nack_redelivers_on_resubscribe(server, stompjs):
    config = _config(server, "websocket", "erin")
    client = await stompjs(**config)
    await client.subscribe("/user/queue/tasks", ack="client-individual",
                    headers={"id": "t"})
    sender = await stomp_client(server.port, "frank")
    for n in (1, 2):
        await sender.send("SEND", {"destination": "/user/erin/queue/tasks"}, str(n))
    first, second = await client.messages(2)
    await client.do("ack", messageId=first["headers"]["message-id"])
    await client.do("nack", messageId=second["headers"]["message-id"], headers={"receipt": "n"})
    await client.do("receipt", id="n")
    await client.event("receipt")
    await client.do("deactivate")
    again = await stompjs(**config)
    await again.subscribe("/user/queue/tasks", wait=False, ack="client-individual",
                          headers={"id": "t"})
    assert [m["body"] for m in await again.messages(1)] == ["2"]


async def test_stompjs_resumes_from_the_offset_header(server, stompjs):
    sender = await stomp_client(server.port, "gus")
    await sender.subscribe("/topic/feed", id="s")
    for n in range(1, 4):
        await sender.send("SEND", {"destination": "/topic/feed"}, str(n))
    first = (await sender.messages(3))[0]
    client = await stompjs(**_config(server, "xhr-polling", "hal"))
    await client.subscribe("/topic/feed", wait=False,
                           headers={"offset": first.header("offset"),
                                    "epoch": first.header("epoch")})
    assert [m["body"] for m in await client.messages(2)] == ["2", "3"]


async def test_stompjs_transaction_and_heartbeats_both_ways(make_server, stompjs):
    async with make_server(pong_timeout=0.4,
                           stomp={"heartbeat_send": 0.5, "heartbeat_receive": 0.5}) as server:
        config = {**_config(server, "websocket", "ida"),
                  "heartbeatIncoming": 500, "heartbeatOutgoing": 500}
        client = await stompjs(**config)
        await client.subscribe("/topic/tx")
        await client.do("begin", tx="t1")
        await client.do("publish", destination="/topic/tx", body="1",
                        headers={"transaction": "t1"})
        await client.no_message(0.5)
        await client.do("commit", tx="t1")
        assert [m["body"] for m in await client.messages(1)] == ["1"]
        # both sides beat every 0.5 s: silent for 2.5 s, still connected (stompjs would
        # close after two missed server beats, the server after two missed client beats)
        with pytest.raises(asyncio.TimeoutError):
            await client.event("closed", timeout=2.5)
        session = next(iter(server.node.sessions.values()))
        assert time.monotonic() - session.last_seen < 1.5


async def test_stompjs_sees_the_error_frame_and_the_close(server, stompjs):
    client = await stompjs(**_config(server, "xhr-streaming", "jo"))
    await client.do("publish", destination="/nowhere", body="x")
    error = await client.event("error")
    assert "unknown destination" in error["headers"]["message"]
    await client.event("closed")


class _Listener(stomppy.ConnectionListener):
    def __init__(self):
        self.frames: queue.Queue = queue.Queue()

    def on_message(self, frame):
        self.frames.put(("MESSAGE", frame.headers, frame.body))

    def on_receipt(self, frame):
        self.frames.put(("RECEIPT", frame.headers, frame.body))

    def on_error(self, frame):
        self.frames.put(("ERROR", frame.headers, frame.body))

    def take(self, command: str) -> tuple:
        while True:
            kind, headers, body = self.frames.get(timeout=10)
            if kind == command:
                return headers, body


def _stomppy(port: int, user: str, heartbeats=(0, 0)):
    conn = stomppy.WSStompConnection([("127.0.0.1", port)], ws_path="/stomp",
                                     heartbeats=heartbeats)
    listener = _Listener()
    conn.set_listener("test", listener)
    conn.connect(login=user, passcode="", wait=True)
    return conn, listener


def _stomppy_session(port: int) -> list:
    conn, listener = _stomppy(port, "kim", heartbeats=(500, 500))
    conn.subscribe("/topic/py", id="py", ack="client-individual")
    for n in range(1, 4):
        conn.send("/topic/py", str(n), content_type="text/plain", receipt=f"s{n}")
    got = []
    for _ in range(3):
        headers, body = listener.take("MESSAGE")
        got.append(body)
        if body != "2":
            conn.ack(headers["ack"])
    time.sleep(1.5)  # heart-beats flow both ways; the server keeps the connection
    assert conn.is_connected()
    conn.disconnect(receipt="bye")
    conn, listener = _stomppy(port, "kim")
    conn.subscribe("/topic/py", id="py", ack="client-individual")
    headers, body = listener.take("MESSAGE")
    got.append(body)
    conn.send("/app/history", '{"channel": "room:py"}', content_type="application/json")
    conn.disconnect()
    return got


async def test_stomppy_over_websocket_acks_heartbeats_and_redelivery(make_server):
    async with make_server(pong_timeout=0.4,
                           stomp={"heartbeat_send": 0.5, "heartbeat_receive": 0.5}) as server:
        got = await asyncio.to_thread(_stomppy_session, server.port)
    assert got == ["1", "2", "3", "2"]


