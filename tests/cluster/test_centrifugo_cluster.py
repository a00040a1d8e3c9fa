"""centrifuge-js in a two-node cluster (Redis broker, PostgreSQL store): a node restart and a
node SIGKILL, after which every positioned subscription recovers exactly what it missed."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from tests.cluster.conftest import running_cluster
from tests.server.centrifugo_clients import centrifuge_js, token, ws_url  # noqa: F401
from tests.server.conftest import RawStomp

pytestmark = pytest.mark.services


@pytest.fixture
async def pair():
    async with running_cluster("redis", size=2) as running:
        yield running


@pytest.mark.parametrize("stop", ["sigkill", "restart"])
@pytest.mark.parametrize("format", ["json", "protobuf"])
async def test_after_its_node_dies_the_sdk_recovers_what_the_other_node_published(
        pair, centrifuge_js, stop, format):
    room = f"room:cf-{uuid.uuid4().hex[:8]}"
    first, other = pair.nodes
    alice = await centrifuge_js(ws_url(first.port), token=token("alice"),
                                protobuf=format == "protobuf")
    assert (await alice.event("subscribed", channel="user:alice"))["wasRecovering"] is False
    await alice.subscribe(room)
    await other.post("/api/publish", {"channel": room, "data": 1})
    assert (await alice.event("publication", channel=room))["data"] == 1
    if stop == "sigkill":
        first.kill()
    else:
        await asyncio.get_running_loop().run_in_executor(None, first.terminate)
    await alice.event("connecting")
    for n in (2, 3):
        await other.post("/api/publish", {"channel": room, "data": n})
    await other.post("/api/send", {"user": "alice", "data": "while you were away"})
    await asyncio.get_running_loop().run_in_executor(None, first.start)
    again = await alice.event("subscribed", channel=room, timeout=30)
    assert (again["wasRecovering"], again["recovered"]) == (True, True)
    personal = await alice.event("subscribed", channel="user:alice")
    assert (personal["wasRecovering"], personal["recovered"]) == (True, True)
    assert [p["data"] for p in await alice.publications(2, channel=room)] == [2, 3]
    dm = await alice.event("publication", channel="user:alice")
    assert (dm["data"], dm["offset"]) == ("while you were away", 1)
    await other.post("/api/publish", {"channel": room, "data": 4})
    assert [p["data"] for p in await alice.publications(1, channel=room)] == [4]
    await alice.no_publication()


async def test_native_stomp_and_centrifugo_clients_share_a_room_and_users(pair, centrifuge_js):
    name = f"mix-{uuid.uuid4().hex[:8]}"
    room = f"room:{name}"
    cent = await centrifuge_js(ws_url(pair.nodes[0].port), token=token("cara"))
    await cent.subscribe(room)
    stomp = await RawStomp.open(pair.nodes[1].port)
    await stomp.connect("sam")
    await stomp.subscribe(f"/topic/{name}", id="room")
    await stomp.subscribe("/user/queue/chat", id="dm")
    native = await pair.client(1, "nat")
    await native.join(room)
    await cent.call("publish", channel=room, data={"from": "centrifugo"})
    [pub] = await native.drain(room, 1)
    assert (pub["data"], pub["sender"]) == ({"from": "centrifugo"}, "cara")
    [message] = await stomp.messages(1, timeout=10)
    assert orjson.loads(message.body) == {"from": "centrifugo"}
    await stomp.send("SEND", {"destination": f"/topic/{name}"}, '{"from": "stomp"}')
    await native.client.call("publish", {"channel": room, "data": {"from": "native"}})
    got = await cent.publications(3, channel=room)
    assert [(p["data"], p["user"]) for p in got] == [
        ({"from": "centrifugo"}, "cara"), ({"from": "stomp"}, "sam"),
        ({"from": "native"}, "nat")]
    await cent.call("rpc", method="send", data={"user": "sam", "data": {"to": "sam"}})
    await native.client.call("send", {"user": "cara", "data": {"to": "cara"}})
    later = await stomp.messages(3, timeout=10)  # its own, native's, and the direct message
    by_sub = [(m.header("subscription"), orjson.loads(m.body)) for m in later]
    assert by_sub == [("room", {"from": "stomp"}), ("room", {"from": "native"}),
                      ("dm", {"to": "sam"})]
    dm = await cent.event("publication", channel="user:cara")
    assert (dm["data"], dm["user"]) == ({"to": "cara"}, "nat")
    await stomp.close()
    await native.close()
