"""Voice rooms across nodes: three nodes on one real broker, real WebSocket clients.

Each test runs once per broker (Redis, Redis Cluster, NATS, RabbitMQ; Kafka carries no
voice). The nodes run in the test's event loop, each with its own broker connection and
port, so the frames between them really cross the broker; a fourth connection to the
broker (the spy) sees the bytes on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.cluster.conftest import broker_url, clean_broker
from tests.conftest import Server, running_node, settings_for
from tests.test_voice import error, frame, heard, nothing_heard, speaking
from tidings.broker import open_broker
from tidings.errors import ErrorCode
from tidings.protocol import voice, voicelink
from tidings.protocol.voice import Kind
from tidings.protocol.voicelink import LinkKind

KINDS = ["redis", "redis-cluster", "nats", "amqp"]


class Voice:
    """Three nodes n1-n3 on one broker, and a fresh voice room name."""

    def __init__(self, kind: str, url: str, nodes: list[Server]):
        self.kind = kind
        self.url = url
        self.nodes = nodes
        self.room = f"voice:{uuid.uuid4().hex[:8]}"

    async def member(self, node: int, user: str):
        client = await self.nodes[node].client(user)
        await client.call("subscribe", {"channel": self.room})
        return client

    async def settled(self) -> None:
        """Every node has heard every join (the roster is read afresh after each one)."""
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def voice_cluster(kind: str, tmp_path, **overrides) -> AsyncIterator[Voice]:
    tag = f"t{uuid.uuid4().hex[:10]}"
    url = broker_url(kind, tag)
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for index in range(3):
            folder = tmp_path / f"n{index + 1}"
            folder.mkdir()
            settings = settings_for(folder, broker=url, node_name=f"n{index + 1}",
                                    cluster_ttl=2, **overrides)
            nodes.append(await stack.enter_async_context(running_node(settings)))
        try:
            yield Voice(kind, url, nodes)
        finally:
            await stack.aclose()
            await clean_broker(kind, tag)


@pytest.fixture(params=KINDS)
async def cluster(request, tmp_path) -> AsyncIterator[Voice]:
    async with voice_cluster(request.param, tmp_path) as running:
        yield running


@pytest.fixture
def make_cluster(request, tmp_path):
    return lambda kind, **overrides: voice_cluster(kind, tmp_path, **overrides)


async def test_members_on_two_nodes_hear_each_other(cluster: Voice):
    alice, carol = await cluster.member(0, "alice"), await cluster.member(0, "carol")
    bob = await cluster.member(1, "bob")
    await cluster.settled()
    await alice.ws.send(frame(7, b"\xfc\xff\xfe", channel=cluster.room))
    near, far = await carol.binary.get(), await bob.binary.get()
    assert far == near  # across the broker, the very bytes a listener on n1 got
    got = voice.parse(far)
    assert (got.sender, got.seq, got.timestamp, got.payload) == ("alice", 7, 140, b"\xfc\xff\xfe")
    await bob.ws.send(frame(1, b"from-bob", channel=cluster.room))
    for listener in (alice, carol):
        got = await heard(listener)
        assert (got.sender, got.payload) == ("bob", b"from-bob")
    assert cluster.nodes[1].node.voice.from_nodes == 1
    assert cluster.nodes[0].node.voice.from_nodes == 1
    for client in (alice, bob, carol):
        await nothing_heard(client, 0.1)


async def test_frames_cross_the_broker_as_bytes_only_to_nodes_with_members(cluster: Voice):
    alice = await cluster.member(0, "alice")
    bob = await cluster.member(1, "bob")
    await cluster.settled()
    spy_got: list[bytes] = []
    spy = open_broker(cluster.url, "spy")
    await spy.start(lambda channel, payload: spy_got.append(payload))
    await spy.subscribe(cluster.room)
    n3_before = cluster.nodes[2].node.broker.received
    try:
        for seq in range(20):
            await alice.ws.send(frame(seq, bytes(100), channel=cluster.room))
        heard_by_bob = [await bob.binary.get() for _ in range(20)]
        for _ in range(100):
            if len(spy_got) >= 20:
                break
            await asyncio.sleep(0.02)
    finally:
        await spy.close()
    on_wire = [p for p in spy_got if voicelink.unpack(p).kind == LinkKind.FRAME]
    assert len(on_wire) == 20
    for payload, got in zip(on_wire, heard_by_bob):
        envelope = voicelink.unpack(payload)
        assert envelope.origin == "n1" and envelope.body == got
        assert len(payload) == len(got) + 4 + len("n1")  # binary: no base64, no JSON
    assert cluster.nodes[2].node.broker.received == n3_before  # n3 has no member


async def test_a_room_on_one_node_sends_nothing_to_the_broker(cluster: Voice):
    alice, bob = await cluster.member(2, "alice"), await cluster.member(2, "bob")
    await cluster.settled()
    relay = cluster.nodes[2].node.voice
    relay.roster.known(cluster.room)  # read once, as the first frame would
    await asyncio.sleep(0.2)
    for seq in range(10):
        await alice.ws.send(frame(seq, channel=cluster.room))
    assert [(await heard(bob)).seq for _ in range(10)] == list(range(10))
    assert relay.uplink.sent == 0 and relay.uplink.waiting == 0


async def test_a_whisper_reaches_its_target_on_another_node_and_no_one_else(cluster: Voice):
    alice, dave = await cluster.member(0, "alice"), await cluster.member(0, "dave")
    bob, carol = await cluster.member(1, "bob"), await cluster.member(1, "carol")
    await cluster.settled()
    await alice.ws.send(frame(1, b"psst", channel=cluster.room, to="bob"))
    await alice.ws.send(frame(2, "只给你".encode(), channel=cluster.room, to="bob",
                              kind=Kind.TEXT))
    first, second = await heard(bob), await heard(bob)
    assert (first.target, first.sender, first.payload) == ("bob", "alice", b"psst")
    assert second.kind == Kind.TEXT and second.payload.decode() == "只给你"
    for other in (carol, dave, alice):
        await nothing_heard(other, 0.2)


async def test_a_whisper_reaches_every_tab_of_its_target_whichever_node(cluster: Voice):
    alice = await cluster.member(0, "alice")
    bob_here, bob_there = await cluster.member(0, "bob"), await cluster.member(1, "bob")
    carol = await cluster.member(1, "carol")
    await cluster.settled()
    await alice.ws.send(frame(3, b"both tabs", channel=cluster.room, to="bob"))
    for tab in (bob_here, bob_there):
        assert (await heard(tab)).payload == b"both tabs"
    await nothing_heard(carol)


async def test_a_whisper_to_someone_on_no_node_of_the_room_gets_129(cluster: Voice):
    alice = await cluster.member(0, "alice")
    await cluster.member(1, "bob")
    await cluster.nodes[2].client("mallory")  # connected, but not in the room
    await cluster.settled()
    await alice.ws.send(frame(1, channel=cluster.room, to="mallory"))
    err = await error(alice)
    assert err["code"] == ErrorCode.NOT_A_MEMBER and "mallory" in err["message"]


async def test_join_leave_and_members_agree_on_every_node(cluster: Voice):
    alice = await cluster.member(0, "alice")
    bob = await cluster.member(1, "bob")
    joined = await alice.push("join")
    if joined["info"]["user"] == "alice":  # her own join comes first
        joined = await alice.push("join")
    assert (joined["channel"], joined["info"]["user"], joined["info"]["node"]) == (
        cluster.room, "bob", "n2")
    for client in (alice, bob):
        members = (await client.call("presence", {"channel": cluster.room}))["clients"]
        assert sorted((m["user"], m["node"]) for m in members.values()) == [
            ("alice", "n1"), ("bob", "n2")]
    await bob.call("unsubscribe", {"channel": cluster.room})
    left = await alice.push("leave")
    assert left["info"]["user"] == "bob"
    # bob has left: his node gets no more voice, and a whisper to him is refused
    await alice.ws.send(frame(1, channel=cluster.room, to="bob"))
    assert (await error(alice))["code"] == ErrorCode.NOT_A_MEMBER
    await nothing_heard(bob, 0.2)


async def test_the_speaker_node_decides_speaking_for_listeners_everywhere(cluster: Voice):
    alice = await cluster.member(0, "alice")
    bob = await cluster.member(1, "bob")
    await cluster.settled()
    await alice.ws.send(frame(1, channel=cluster.room))
    speaking = await bob.push("speaking")
    assert (speaking["info"]["user"], speaking["info"]["node"]) == ("alice", "n1")
    silent = await bob.push("silent", timeout=3)
    assert silent["info"]["user"] == "alice"


async def test_rate_and_size_limits_hold_for_listeners_on_other_nodes(make_cluster):
    async with make_cluster("redis", voice={"frames_per_second": 10,
                                            "max_frame_bytes": 200}) as cluster:
        alice = await cluster.member(0, "alice")
        bob = await cluster.member(1, "bob")
        await cluster.settled()
        await alice.ws.send(frame(0, b"x" * 300, channel=cluster.room))
        assert (await error(alice))["code"] == ErrorCode.VOICE_FRAME_TOO_LARGE
        for seq in range(1, 31):  # a burst far over 10 per second
            await alice.ws.send(frame(seq, channel=cluster.room))
        assert (await error(alice))["code"] == ErrorCode.VOICE_RATE_LIMITED
        await asyncio.sleep(0.5)
        got = [voice.parse(bob.binary.get_nowait()).seq for _ in range(bob.binary.qsize())]
        assert 10 <= len(got) <= 14 and 0 not in got
        assert got == sorted(got)


async def test_voice_leaves_nothing_in_the_store(cluster: Voice):
    alice = await cluster.member(0, "alice")
    bob = await cluster.member(1, "bob")
    await cluster.settled()
    await alice.ws.send(frame(1, channel=cluster.room))
    await heard(bob)
    for node in cluster.nodes:
        positions = await node.node.store.positions([cluster.room])
        assert positions[cluster.room].offset == 0


async def test_metrics_count_frames_to_and_from_other_nodes(cluster: Voice):
    alice = await cluster.member(0, "alice")
    bob = await cluster.member(1, "bob")
    await cluster.settled()
    for seq in range(5):
        await alice.ws.send(frame(seq, channel=cluster.room))
    for _ in range(5):
        await heard(bob)
    await asyncio.sleep(0.1)
    sent = await metrics(cluster.nodes[0])
    got = await metrics(cluster.nodes[1])
    assert sent["tidings_voice_frames_to_nodes_total"] >= 5  # frames and a speaking event
    assert sent["tidings_voice_frames_to_nodes_dropped_total"] == 0
    assert sent["tidings_voice_frames_to_nodes_failed_total"] == 0
    assert got["tidings_voice_frames_from_nodes_total"] == 5
    assert got["tidings_voice_frames_relayed_total"] == 5


async def metrics(server: Server) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as resp:
            text = await resp.text()
    found = {}
    for line in text.splitlines():
        match = re.match(r"^(tidings_voice_\w+)\{[^}]*\} ([0-9.e+]+)$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


async def test_a_member_joining_on_another_node_learns_who_is_speaking(cluster: Voice):
    alice = await cluster.member(0, "alice")
    async with speaking(alice, cluster.room):
        await alice.push("speaking")
        bob = await cluster.member(1, "bob")  # joins while alice speaks
        told = await bob.push("speaking")
    assert (told["info"]["user"], told["info"]["node"]) == ("alice", "n1")


async def test_kafka_carries_no_voice_because_its_log_would_keep_it(make_cluster):
    async with make_cluster("kafka") as cluster:
        alice = await cluster.member(0, "alice")
        bob, carol = await cluster.member(1, "bob"), await cluster.member(0, "carol")
        await cluster.settled()
        published = cluster.nodes[0].node.broker.published
        await alice.ws.send(frame(1, channel=cluster.room))
        assert (await heard(carol)).sender == "alice"  # the speaker's node relays as ever
        await nothing_heard(bob)
        assert cluster.nodes[0].node.voice.uplink is None
        assert cluster.nodes[0].node.broker.published == published
