"""The Centrifugo endpoint with the real SDKs: centrifuge-js (JSON and Protobuf builds) on
Node, centrifuge-python; every feature a Centrifugo user relies on, against a real node."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import running_node, settings_for
from tests.server.centrifugo_clients import (  # noqa: F401  (fixture)
    SECRET,
    CentrifugoCallFailed,
    api,
    centrifuge_js,
    publish_offline,
    token,
    ws_url,
)

FORMATS = ["json", "protobuf"]


@pytest.fixture
async def secured(tmp_path):
    """A node with JWT auth (HS256) and an API key, as a Centrifugo deployment has."""
    settings = settings_for(tmp_path, jwt_secret=SECRET, api_key="k")
    async with running_node(settings) as running:
        yield running


def _room() -> str:
    return f"room:cf-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("format", FORMATS)
async def test_centrifuge_js_connects_subscribes_publishes_and_reads_history(secured,
                                                                             centrifuge_js,
                                                                             format):
    room = _room()
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"),
                                protobuf=format == "protobuf")
    subscribed = await alice.subscribe(room)
    assert (subscribed["recoverable"], subscribed["positioned"]) == (True, True)
    assert subscribed["offset"] == 0
    await alice.call("publish", channel=room, data={"text": "hello"})
    [pub] = await alice.publications(1, channel=room)
    assert (pub["data"], pub["offset"], pub["user"]) == ({"text": "hello"}, 1, "alice")
    history = await alice.call("history", channel=room, options={"limit": 10})
    assert [p["data"] for p in history["publications"]] == [{"text": "hello"}]
    assert history["offset"] == 1 and history["epoch"] == subscribed["epoch"]


@pytest.mark.parametrize("format", FORMATS)
async def test_presence_presence_stats_and_join_leave_between_two_sdk_clients(secured,
                                                                              centrifuge_js,
                                                                              format):
    room = _room()
    protobuf = format == "protobuf"
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"), protobuf=protobuf)
    bob = await centrifuge_js(ws_url(secured.port), token=token("bob"), protobuf=protobuf)
    await alice.subscribe(room)
    await alice.event("join", channel=room, user="alice")
    await bob.subscribe(room)
    joined = await alice.event("join", channel=room, user="bob")
    presence = await alice.call("presence", channel=room)
    assert sorted(info["user"] for info in presence.values()) == ["alice", "bob"]
    assert presence[joined["client"]] == {"user": "bob", "client": joined["client"]}
    stats = await bob.call("presenceStats", channel=room)
    assert stats == {"numClients": 2, "numUsers": 2}
    await bob.do("unsubscribe", channel=room)
    left = await alice.event("leave", channel=room)
    assert (left["user"], left["client"]) == ("bob", joined["client"])
    stats = await alice.call("presenceStats", channel=room)
    assert stats["numClients"] == 1


@pytest.mark.parametrize("format", FORMATS)
async def test_server_side_subscriptions_carry_direct_messages_and_broadcasts(secured,
                                                                              centrifuge_js,
                                                                              format):
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"),
                                protobuf=format == "protobuf")
    await api(secured, "send", {"user": "alice", "data": {"dm": 1}, "source": "billing"})
    dm = await alice.event("publication", channel="user:alice")
    assert (dm["server"], dm["data"], dm["tags"]) == (True, {"dm": 1}, {"source": "billing"})
    await api(secured, "broadcast", {"data": {"all": 1}})
    everyone = await alice.event("publication", channel="broadcast")
    assert (everyone["server"], everyone["data"]) == (True, {"all": 1})


async def test_a_connection_token_is_refreshed_before_it_expires(secured, centrifuge_js):
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice", ttl=3),
                                getToken=True)
    await alice.event("getToken", timeout=10)  # asked ahead of the expiry the reply gave
    await alice.do("token", token=token("alice", ttl=3600))
    await asyncio.sleep(3.5)  # past the first token's expiry
    await api(secured, "send", {"user": "alice", "data": {"still": "here"}})
    pub = await alice.event("publication", channel="user:alice")
    assert pub["data"] == {"still": "here"}
    assert not [e for e in alice.log if e["event"] in ("disconnected", "connecting")][1:]


async def test_an_expired_token_is_replaced_by_get_token_and_the_client_connects(secured,
                                                                                  centrifuge_js):
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice", ttl=-10),
                                getToken=True, wait=False)
    await alice.event("getToken")
    await alice.do("token", token=token("alice"))
    await alice.event("connected")


async def test_a_bad_token_stops_the_sdk_with_invalid_token(secured, centrifuge_js):
    forged = token("alice").rsplit(".", 1)[0] + ".forged"
    mallory = await centrifuge_js(ws_url(secured.port), token=forged, wait=False)
    disconnected = await mallory.event("disconnected")
    assert disconnected["code"] == 101  # the connect error (unauthorized); then closed with 3500
    await asyncio.sleep(0.5)  # a reconnect would come within 300 ms
    assert [e["event"] for e in mallory.log] == ["connecting", "disconnected"]


async def test_errors_carry_centrifugo_codes(secured, centrifuge_js):
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"))
    with pytest.raises(CentrifugoCallFailed) as denied:
        await alice.call("publish", channel="broadcast", data={"x": 1})
    assert denied.value.code == 103  # permission denied: only the server API broadcasts
    with pytest.raises(CentrifugoCallFailed) as unknown:
        await alice.call("history", channel="nowhere:x", options={"limit": 1})
    assert unknown.value.code == 102
    with pytest.raises(CentrifugoCallFailed) as presence:
        await alice.call("presence", channel="user:alice")
    assert presence.value.code == 108  # not available: the user namespace has no presence
    with pytest.raises(CentrifugoCallFailed) as rpc:
        await alice.call("rpc", method="nosuch", data={})
    assert rpc.value.code == 104


async def test_rpc_reaches_the_message_center_and_direct_messages(secured, centrifuge_js):
    alice = await centrifuge_js(ws_url(secured.port), token=token("alice"))
    bob = await centrifuge_js(ws_url(secured.port), token=token("bob"))
    sent = await alice.call("rpc", method="send", data={"user": "bob", "data": {"hi": 2}})
    assert sent["offset"] >= 1
    pub = await bob.event("publication", channel="user:bob")
    assert (pub["data"], pub["user"]) == ({"hi": 2}, "alice")
    inbox = await bob.call("rpc", method="inbox", data={})
    assert isinstance(inbox, dict)


@pytest.mark.parametrize("format", FORMATS)
async def test_after_a_node_restart_the_sdk_recovers_exactly_what_it_missed(tmp_path,
                                                                           centrifuge_js,
                                                                           format):
    settings = settings_for(tmp_path, jwt_secret=SECRET, api_key="k")
    room = _room()
    async with running_node(settings) as server:
        alice = await centrifuge_js(ws_url(server.port), token=token("alice"),
                                    protobuf=format == "protobuf")
        first = await alice.event("subscribed", channel="user:alice")
        assert (first["server"], first["wasRecovering"]) == (True, False)
        await alice.subscribe(room)
        await api(server, "publish", {"channel": room, "data": 1})
        await api(server, "send", {"user": "alice", "data": "dm-1"})
        assert (await alice.event("publication", channel=room))["data"] == 1
        assert (await alice.event("publication", channel="user:alice"))["data"] == "dm-1"
    await alice.event("connecting")
    await publish_offline(settings, room, [2, 3])
    await publish_offline(settings, "user:alice", ["dm-2"])
    async with running_node(settings):
        again = await alice.event("subscribed", channel=room, timeout=20)
        assert (again["wasRecovering"], again["recovered"]) == (True, True)
        personal = await alice.event("subscribed", channel="user:alice")
        assert (personal["server"], personal["wasRecovering"], personal["recovered"]) == (
            True, True, True)
        assert [p["data"] for p in await alice.publications(2, channel=room)] == [2, 3]
        assert (await alice.event("publication", channel="user:alice"))["data"] == "dm-2"
        await alice.no_publication()


async def test_a_position_that_is_gone_subscribes_with_recovered_false(tmp_path, centrifuge_js):
    settings = settings_for(tmp_path, jwt_secret=SECRET, api_key="k",
                            namespaces={"room": {"history_size": 2}})
    room = _room()
    async with running_node(settings) as server:
        alice = await centrifuge_js(ws_url(server.port), token=token("alice"))
        await alice.subscribe(room)
    await alice.event("connecting")
    await publish_offline(settings, room, [1, 2, 3, 4])  # 1 and 2 trimmed
    async with running_node(settings):
        again = await alice.event("subscribed", channel=room, timeout=20)
        assert (again["wasRecovering"], again["recovered"]) == (True, False)
        assert again["offset"] == 4


async def test_tidings_pushes_arrive_as_centrifugo_messages(secured, centrifuge_js):
    phone = await centrifuge_js(ws_url(secured.port), token=token("dana"))
    laptop = await centrifuge_js(ws_url(secured.port), token=token("dana"))
    await api(secured, "send", {"user": "dana", "data": {"title": "invoice"},
                                "source": "billing"})
    await phone.event("publication", channel="user:dana")
    counts = await laptop.call("rpc", method="read", data={"all": True})
    message = await phone.event("message")  # the other connection is told the new counts
    assert message["data"]["inbox"]["version"] == counts["version"]


async def test_json_and_protobuf_clients_of_one_room_get_the_same_publications(secured,
                                                                                centrifuge_js):
    room = _room()
    text = await centrifuge_js(ws_url(secured.port), token=token("jay"))
    binary = await centrifuge_js(ws_url(secured.port), token=token("pat"), protobuf=True)
    await text.subscribe(room)
    await binary.subscribe(room)
    await binary.call("publish", channel=room, data={"from": "protobuf", "n": [1, 2.5]})
    await text.call("publish", channel=room, data="from json")
    for client in (text, binary):
        got = await client.publications(2, channel=room)
        assert [(p["data"], p["offset"], p["user"]) for p in got] == [
            ({"from": "protobuf", "n": [1, 2.5]}, 1, "pat"), ("from json", 2, "jay")]
