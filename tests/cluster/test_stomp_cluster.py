"""STOMP in a cluster: two `tidings serve` processes on Redis and one PostgreSQL store."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from tests.cluster.conftest import Cluster, broker_url, clean_broker, drop_schema
from tests.server.conftest import RawStomp

pytestmark = pytest.mark.services


@pytest.fixture
async def pair():
    tag = f"t{uuid.uuid4().hex[:10]}"
    running = Cluster("redis", broker_url("redis", tag), tag, size=2)
    await asyncio.get_running_loop().run_in_executor(None, running.start)
    try:
        yield running
    finally:
        running.stop()
        await drop_schema(tag)
        await clean_broker("redis", tag)


async def _stomp(cluster: Cluster, node: int, user: str) -> RawStomp:
    client = await RawStomp.open(cluster.nodes[node].port)
    await client.connect(user)
    return client


async def test_stomp_and_native_clients_share_a_room_and_direct_messages_across_nodes(pair):
    stomp = await _stomp(pair, 0, "sam")
    await stomp.subscribe("/topic/mixed", id="room")
    await stomp.subscribe("/user/queue/chat", id="dm")
    native = await pair.client(1, "nat")
    await native.join("room:mixed")
    await stomp.send("SEND", {"destination": "/topic/mixed"}, '{"from": "stomp"}')
    [pub] = await native.drain("room:mixed", 1)
    assert pub["data"] == {"from": "stomp"} and pub["sender"] == "sam"
    await native.client.call("publish", {"channel": "room:mixed", "data": {"from": "native"}})
    await native.client.call("send", {"user": "sam", "data": {"psst": 1}})
    messages = await stomp.messages(3, timeout=10)
    by_sub = {m.header("subscription"): orjson.loads(m.body) for m in messages[1:]}
    assert orjson.loads(messages[0].body) == {"from": "stomp"}
    assert by_sub == {"room": {"from": "native"}, "dm": {"psst": 1}}
    await stomp.no_frame()


async def test_acknowledged_position_follows_the_client_to_another_node(pair):
    first = await _stomp(pair, 0, "ack-user")
    await first.subscribe("/topic/durable", id="d", ack="client-individual")
    publisher = await pair.client(1, "pub")
    await publisher.join("room:durable")
    for n in range(1, 4):
        await publisher.client.call("publish", {"channel": "room:durable", "data": n})
    messages = await first.messages(3, timeout=10)
    await first.send("ACK", {"id": messages[0].header("ack"), "receipt": "a"})
    await first.frame("RECEIPT")
    await first.send("DISCONNECT", {"receipt": "bye"})
    await first.frame("RECEIPT")
    second = await _stomp(pair, 1, "ack-user")
    await second.subscribe("/topic/durable", id="d", ack="client-individual", wait=False)
    assert [orjson.loads(m.body) for m in await second.messages(2, timeout=10)] == [2, 3]
