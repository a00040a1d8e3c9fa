"""The broker contract, run against the in-process broker and real Redis, RabbitMQ, NATS
and Kafka (tansu).

Each broker instance stands for one node. The in-process broker reaches no other node by
design: tests that need a second node skip it, and the others let its one node play every
part.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest

from tests.broker.conftest import (
    REDIS_CLUSTER_PORTS,
    TTL,
    Namespace,
    close_rabbitmq_connection,
    kill_redis_subscriber,
)
from tidings.broker import open_broker, reconnect
from tidings.broker.sharded import shard_of
from tidings.broker.base import Broker, BrokerError
from tidings.broker.reconnect import Reconnector
from tidings.model import ClientInfo, NodeInfo

QUIET = 0.3  # how long "nothing else arrives" is watched for

SUBSCRIBED = [
    "user:alice@example.com",
    "room:a.b",
    "room:%",
    "room:50%25",
    "voice:x",
    "broadcast",
    "room:a\\b",
    "room:!$&'()+,;=?[]^_`{|}~\"<",
    "room:" + "a." * 120 + "z",  # too long for an AMQP routing key once dots are encoded
]
LOOKALIKES = [
    "user:alice@example%2Ecom",
    "user:alice@example%252Ecom",
    "user:alice@example",
    "room:a%2Eb",
    "room:a",
    "room:a.",
    "room:%25",
    "room:50%",
    "room:a/b",
    "room:" + "a." * 120 + "y",
]


def needs_cluster(space: Namespace) -> None:
    if not space.shared:
        pytest.skip("the in-process broker reaches no other node")


async def three(space: Namespace):
    """Nodes a, b and c; for the in-process broker its one node stands in for all three."""
    if not space.shared:
        node = await space.node("a")
        return [node, node, node]
    return [await space.node(name) for name in "abc"]


def info(broker: Broker, connections: int = 0) -> NodeInfo:
    return NodeInfo(broker.node, connections, connections, 1_700_000_000_000, "test",
                    "127.0.0.1:8000")


def users(clients: list[ClientInfo]) -> list[str]:
    return sorted(client.user for client in clients)


async def names(broker: Broker) -> set[str]:
    return {node.name for node in await broker.nodes()}


async def eventually(check, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ---- live delivery -------------------------------------------------------------------


async def test_a_node_gets_a_channel_only_while_subscribed(space):
    a, inbox = await space.node("a")
    payload = bytes(range(256))  # opaque bytes, delivered unchanged
    await a.publish("room:x", b"before")
    await a.subscribe("room:x")
    await a.publish("room:x", payload)  # a node hears its own publications
    await a.publish("room:y", b"elsewhere")
    await inbox.count("room:x", 1)
    await asyncio.sleep(QUIET)
    assert inbox.messages == [("room:x", payload)]
    assert a.subscriptions == {"room:x"}


async def test_a_channel_reaches_only_the_nodes_subscribed_to_it(space):
    needs_cluster(space)
    (a, a_in), (b, b_in), (c, c_in) = await three(space)
    await a.subscribe("room:x")
    await b.subscribe("user:bob")
    await c.publish("room:x", b"to-room")
    await c.publish("user:bob", b"to-bob")
    await c.publish("room:nobody", b"lost")
    await a_in.count("room:x", 1)
    await b_in.count("user:bob", 1)
    await asyncio.sleep(QUIET)
    assert a_in.messages == [("room:x", b"to-room")]
    assert b_in.messages == [("user:bob", b"to-bob")]
    assert c_in.messages == []
    assert (a.received, b.received, c.received) == (1, 1, 0)


async def test_one_publishers_order_is_kept(space):
    (a, a_in), (b, _), _ = await three(space)
    await a.subscribe("room:order")
    for n in range(1000):
        await b.publish("room:order", b"%d" % n)
    received = await a_in.count("room:order", 1000)
    assert [int(payload) for payload in received] == list(range(1000))


async def test_unsubscribe_stops_delivery(space):
    (a, a_in), (b, _), _ = await three(space)
    await a.subscribe("room:u")
    await b.publish("room:u", b"1")
    await a_in.count("room:u", 1)
    await a.unsubscribe("room:u")
    await b.publish("room:u", b"2")
    await asyncio.sleep(QUIET)
    assert a_in.of("room:u") == [b"1"]
    assert "room:u" not in a.subscriptions
    await a.subscribe("room:u")
    await b.publish("room:u", b"3")
    assert await a_in.count("room:u", 2) == [b"1", b"3"]


async def test_a_thousand_concurrent_subscribes_cost_a_few_round_trips(space):
    (a, a_in), (b, _), _ = await three(space)
    calls: dict[str, list[int]] = {"_subscribe_many": [], "_unsubscribe_many": []}
    for method, sizes in calls.items():
        original = getattr(a, method)

        async def counting(channels, original=original, sizes=sizes):
            sizes.append(len(channels))
            await asyncio.sleep(0)  # the in-process broker gets a round trip too
            await original(channels)

        setattr(a, method, counting)
    channels = [f"user:u{n}" for n in range(1000)]

    await asyncio.gather(*(a.subscribe(channel) for channel in channels))
    assert sum(calls["_subscribe_many"]) == 1000
    assert len(calls["_subscribe_many"]) <= 3
    assert a.subscriptions == set(channels)
    for channel in channels[::250]:
        await b.publish(channel, channel.encode())
    await a_in.wait(lambda: len(a_in.messages) == 4)

    await asyncio.gather(*(a.unsubscribe(channel) for channel in channels))
    assert sum(calls["_unsubscribe_many"]) == 1000
    assert len(calls["_unsubscribe_many"]) <= 3
    assert a.subscriptions == set()


async def test_channel_names_route_exactly_and_never_collide(space):
    (a, a_in), (b, _), _ = await three(space)
    for channel in SUBSCRIBED:
        await a.subscribe(channel)
    for channel in SUBSCRIBED + LOOKALIKES:
        await b.publish(channel, channel.encode())
    await a_in.wait(lambda: len(a_in.messages) >= len(SUBSCRIBED))
    await asyncio.sleep(QUIET)
    assert sorted(a_in.messages) == sorted((c, c.encode()) for c in SUBSCRIBED)


async def test_kafka_reads_only_the_partitions_holding_its_channels():
    """A node reads every record of the partitions it consumes and keeps its channels'."""
    space = Namespace("kafka")
    try:
        (a, a_in), (b, b_in), (c, _) = [await space.node(name) for name in "abc"]
        partitions = a.partition
        mine = "room:x"
        neighbour = next(f"room:n{n}" for n in range(10_000)
                         if partitions(f"room:n{n}") == partitions(mine))
        elsewhere = next(f"room:e{n}" for n in range(10_000)
                         if partitions(f"room:e{n}") != partitions(mine))
        await a.subscribe(mine)
        await b.subscribe(neighbour)
        for n in range(10):
            await c.publish(mine, b"%d" % n)
        await a_in.count(mine, 10)
        await b.subscribe(elsewhere)  # b now holds both partitions; nothing else arrives

        async def b_read_them() -> bool:
            return b.read == 10

        await eventually(b_read_them)
        await asyncio.sleep(QUIET)
        assert (a.read, a.received) == (10, 10)
        assert (b.read, b.received, b_in.messages) == (10, 0, [])
        assert (c.read, c.received) == (0, 0)
    finally:
        await space.close()


@pytest.fixture(params=["redis-shards", "redis-cluster"])
async def sharded_space(request) -> Namespace:
    if request.param == "redis-shards":
        request.getfixturevalue("redis_shards")
    namespace = Namespace(request.param)
    yield namespace
    await namespace.close()


async def _shard_channels(shard) -> set[bytes]:
    """The pub/sub channels a shard's server holds subscriptions for."""
    import redis.asyncio as redis

    client = redis.Redis(port=urlsplit(shard.url).port)
    try:
        kind = "SHARDCHANNELS" if shard.shard else "CHANNELS"
        return set(await client.execute_command("PUBSUB", kind, f"{shard.prefix}:*"))
    finally:
        await client.aclose()


async def test_each_channel_lives_on_exactly_one_shard(sharded_space):
    (a, a_in), (b, _), _ = await three(sharded_space)
    assert len(a.shards) == 3
    channels = [f"room:s{n}" for n in range(30)]
    for channel in channels:
        await a.subscribe(channel)
    held = [await _shard_channels(shard) for shard in a.shards]
    for channel in channels:
        owners = [i for i, names in enumerate(held) if a.shard_for(channel)._name(channel) in names]
        assert owners == [a.shards.index(a.shard_for(channel))]
    assert all(held), "30 channels should spread over all three shards"
    for channel in channels:
        await b.publish(channel, channel.encode())
    await a_in.wait(lambda: len(a_in.messages) == 30)
    assert sum(shard.received for shard in a.shards) == 30
    assert [shard.published for shard in b.shards] == [len(names) for names in held]


async def test_losing_one_shard_costs_only_its_channels(sharded_space):
    (a, a_in), (b, _), _ = await three(sharded_space)
    lost = a.shards[0]
    on_lost = next(f"room:l{n}" for n in range(1000) if a.shard_for(f"room:l{n}") is lost)
    elsewhere = next(f"room:l{n}" for n in range(1000) if a.shard_for(f"room:l{n}") is not lost)
    await a.subscribe(on_lost)
    await a.subscribe(elsewhere)
    await kill_redis_subscriber(a.node, urlsplit(lost.url).port)
    await b.publish(elsewhere, b"meanwhile")  # the other shards never noticed
    await a_in.count(elsewhere, 1)
    await a_in.wait(lambda: a_in.reconnects >= 1)
    assert [shard.subscriptions for shard in a.shards if shard is not lost] == \
        [frozenset({elsewhere}) if shard is a.shard_for(elsewhere) else frozenset()
         for shard in a.shards if shard is not lost]
    await b.publish(on_lost, b"after")
    assert await a_in.count(on_lost, 1) == [b"after"]


def test_shards_are_chosen_by_jump_hash_and_move_little_when_one_is_added():
    channels = [f"user:u{n}" for n in range(3000)]
    three_ = [shard_of(c, 3) for c in channels]
    four = [shard_of(c, 4) for c in channels]
    assert {three_.count(i) for i in range(3)} <= set(range(900, 1100))
    moved = sum(x != y for x, y in zip(three_, four))
    assert 600 < moved < 900  # about a quarter move, all of them to the new shard
    assert all(y == 3 for x, y in zip(three_, four) if x != y)


# ---- cluster state -------------------------------------------------------------------


async def test_presence_and_nodes_on_one_node(space):
    a, _ = await space.node("a")
    alice = ClientInfo("c1", "alice", a.node, {"role": "admin"})
    bob = ClientInfo("c2", "bob", a.node)
    await a.heartbeat(info(a, 2), {"room:p": [alice]})
    await a.presence_add("room:p", bob)
    assert sorted(await a.presence("room:p"), key=lambda c: c.user) == [alice, bob]
    assert await a.presence("room:other") == []
    await a.presence_remove("room:p", "c1")
    assert await a.presence("room:p") == [bob]
    assert await a.nodes() == [info(a, 2)]


async def test_a_heartbeat_carries_thousands_of_presence_entries(space):
    a, _ = await space.node("a")
    crowd = [ClientInfo(f"c{n}", f"u{n}", a.node) for n in range(2500)]
    await a.heartbeat(info(a, len(crowd)), {"room:crowd": crowd, "room:two": crowd[:2]})
    assert len(await a.presence("room:crowd")) == 2500
    assert users(await a.presence("room:two")) == ["u0", "u1"]


async def test_thousands_of_presence_adds_at_once_are_all_present(space):
    """A reconnect storm: every client joins at once (Redis writes them in a few pipelines)."""
    a, _ = await space.node("a")
    crowd = [ClientInfo(f"c{n}", f"u{n}", a.node) for n in range(1500)]
    await asyncio.gather(*(a.presence_add(f"room:storm{n % 3}", c) for n, c in enumerate(crowd)))
    assert [len(await a.presence(f"room:storm{k}")) for k in range(3)] == [500, 500, 500]
    await asyncio.gather(*(a.presence_remove(f"room:storm{n % 3}", c.client)
                           for n, c in enumerate(crowd) if n % 2))
    assert [len(await a.presence(f"room:storm{k}")) for k in range(3)] == [250, 250, 250]
    for batched in ("_presence_adds", "_presence_removes"):  # Redis: a few pipelines
        if hasattr(a, batched):
            assert getattr(a, batched).rounds <= 5


async def test_presence_and_nodes_are_shared_at_once(space):
    needs_cluster(space)
    (a, _), (b, _), (c, _) = await three(space)
    alice, bob = ClientInfo("c1", "alice", a.node), ClientInfo("c2", "bob", b.node)
    carol = ClientInfo("c3", "carol", b.node)
    await a.heartbeat(info(a, 1), {"room:p": [alice]})
    await b.heartbeat(info(b, 1), {"room:p": [bob]})
    await c.heartbeat(info(c), {})
    everyone = {a.node, b.node, c.node}

    async def all_known() -> bool:
        return all([await names(node) == everyone for node in (a, b, c)])

    await eventually(all_known)
    assert sorted(await c.nodes(), key=lambda n: n.name) == [info(a, 1), info(b, 1), info(c)]
    assert users(await c.presence("room:p")) == ["alice", "bob"]
    await b.presence_add("room:p", carol)  # seen everywhere at once, no waiting
    assert users(await a.presence("room:p")) == ["alice", "bob", "carol"]
    await b.presence_remove("room:p", "c2")
    assert users(await c.presence("room:p")) == ["alice", "carol"]
    assert await c.presence("room:empty") == []


async def test_a_node_that_stops_heartbeating_disappears_within_ttl(space):
    needs_cluster(space)
    (a, _), (b, _), (c, _) = await three(space)
    alice = ClientInfo("c1", "alice", a.node)

    async def others_beat() -> None:
        await b.heartbeat(info(b), {})
        await c.heartbeat(info(c), {})

    await a.heartbeat(info(a, 1), {"room:p": [alice]})
    last_beat = time.monotonic()
    await others_beat()

    async def all_known() -> bool:
        return await names(c) == {a.node, b.node, c.node}

    await eventually(all_known)
    assert users(await c.presence("room:p")) == ["alice"]
    await a.close()  # killed: no cleanup, no goodbye

    async def a_gone() -> bool:
        if time.monotonic() - others_beaten > TTL / 3:
            await others_beat()
        return a.node not in await names(c)

    others_beaten = time.monotonic()
    await asyncio.sleep(TTL / 2)
    assert not await a_gone(), "a node must stay listed for ttl after its last heartbeat"
    await eventually(a_gone, timeout=TTL + 3)
    gone_after = time.monotonic() - last_beat
    # The upper bound allows for a loaded machine's late polls, not for a missed expiry.
    assert TTL / 2 < gone_after < TTL + 3
    assert await names(c) == {b.node, c.node}
    assert await c.presence("room:p") == []


# ---- losing the broker ---------------------------------------------------------------


async def test_a_node_resubscribes_after_the_server_drops_its_connection(
    network_space, private_nats, private_tansu
):
    """Redis: CLIENT KILL; RabbitMQ: rabbitmqctl close_connection; NATS and Kafka: a private
    server killed and started again (restarting the shared one would disturb everyone
    else); the private tansu keeps nothing, so its topics are made again on reconnect."""
    space, port = network_space, None
    private = {"nats": private_nats, "kafka": private_tansu}.get(space.kind)
    if private is not None:
        await asyncio.to_thread(private.start)
        port = private.port
    (a, a_in), (b, b_in) = await space.node("a", port=port), await space.node("b", port=port)
    await a.subscribe("room:r")
    await a.subscribe("user:x")
    await b.publish("room:r", b"before")
    await a_in.count("room:r", 1)

    if space.kind.startswith("redis"):  # on a sharded Redis, the shard holding room:r
        shard = a.shard_for("room:r") if space.kind != "redis" else a
        await kill_redis_subscriber(a.node, urlsplit(shard.url).port)
    elif space.kind == "amqp":
        await asyncio.get_running_loop().run_in_executor(None, close_rabbitmq_connection,
                                                         a.node)
    else:
        await asyncio.to_thread(private.kill)
        await asyncio.to_thread(private.start)
        await b_in.wait(lambda: b_in.reconnects >= 1)
    await a_in.wait(lambda: a_in.reconnects >= 1)

    assert a.subscriptions == {"room:r", "user:x"}
    await b.publish("room:r", b"after")
    assert await a_in.count("room:r", 2) == [b"before", b"after"]
    await a.heartbeat(info(a), {})  # cluster state works on the new connection too

    async def a_known() -> bool:
        return a.node in await names(b)

    await eventually(a_known)


async def test_an_idle_redis_subscriber_connection_is_kept(monkeypatch):
    """redis-py 8 times reads out after 5 s by default; a subscriber waits for as long as
    it takes (the health ping, here out of the way, is what notices a dead connection)."""
    from tidings.broker import redis as redis_broker

    monkeypatch.setattr(redis_broker, "HEALTH_INTERVAL", 60.0)
    space = Namespace("redis")
    try:
        (a, a_in), (b, _) = await space.node("a"), await space.node("b")
        await a.subscribe("room:quiet")
        await asyncio.sleep(5.5)
        assert a_in.reconnects == 0
        await b.publish("room:quiet", b"still here")
        assert await a_in.count("room:quiet", 1) == [b"still here"]
    finally:
        await space.close()


async def test_a_node_cut_off_fails_fast_and_heals(network_space, relay_for):
    space = network_space
    if space.kind in ("redis-shards", "redis-cluster"):
        pytest.skip("one relay cannot stand for several shards; see the one-shard tests")
    relay = await relay_for(space.kind)
    # Kafka clients follow the address the broker advertises: both nodes are behind the relay
    both_cut = space.kind == "kafka"
    (a, a_in) = await space.node("a", port=relay.port)
    (b, b_in) = await space.node("b", port=relay.port if both_cut else None)
    await a.subscribe("room:o")
    await relay.cut()

    cut_at = time.monotonic()
    while True:  # the first publishes may still be written into the dying socket
        try:
            await a.publish("room:o", b"lost")
        except BrokerError:
            break
        assert time.monotonic() - cut_at < 2, "publishing did not fail while cut off"
        await asyncio.sleep(0.01)
    for attempt in (a.publish("room:o", b"lost"), a.subscribe("room:new"),
                    a.heartbeat(info(a), {})):
        started = time.monotonic()
        with pytest.raises(BrokerError):
            await attempt
        assert time.monotonic() - started < 2.5  # Redis: the 2 s connect timeout at most

    await asyncio.sleep(0.5)  # reconnect attempts fail meanwhile, backing off
    await relay.start()
    await a_in.wait(lambda: a_in.reconnects >= 1)
    if both_cut:  # b subscribes to nothing: aiokafka may have reconnected it unnoticed
        await b_in.wait(lambda: b.connected)
    assert a.subscriptions == {"room:o", "room:new"}  # wanted while cut off: taken too
    await b.publish("room:o", b"1")
    await b.publish("room:new", b"2")
    await a_in.count("room:o", 1)
    await a_in.count("room:new", 1)
    await a.publish("room:o", b"own")
    assert await a_in.count("room:o", 2) == [b"1", b"own"]


async def test_reconnect_attempts_back_off_exponentially_up_to_a_cap(monkeypatch):
    monkeypatch.setattr(reconnect, "MAX_DELAY", 0.4)
    attempts: list[float] = []
    restored = asyncio.Event()

    async def open() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 6:
            raise BrokerError("still down")

    async def on_restored() -> None:
        restored.set()

    reconnector = Reconnector("test", open, on_restored)
    reconnector.lost("test")
    await asyncio.wait_for(restored.wait(), 5)
    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:])]
    for gap, expected in zip(gaps, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
        assert expected <= gap < expected + 0.08


# ---- construction --------------------------------------------------------------------


def test_namespace_options_are_taken_out_of_the_url():
    redis = open_broker("redis://127.0.0.1:6379/0?prefix=blue", "n")
    amqp = open_broker("amqp://guest:guest@127.0.0.1:5672/?exchange=blue", "n")
    nats = open_broker("nats://127.0.0.1:4222?prefix=blue", "n")
    kafka = open_broker("kafka://h1:9092,h2:9092?prefix=blue&partitions=8", "n")
    shards = open_broker("redis://:pw@h1:6379,h2:6380/2?prefix=blue", "n")
    cluster = open_broker(f"redis+cluster://127.0.0.1:{REDIS_CLUSTER_PORTS[0]}?prefix=blue",
                          "n")
    assert (redis.url, redis.prefix) == ("redis://127.0.0.1:6379/0", "blue")
    assert (amqp.url, amqp.exchange) == ("amqp://guest:guest@127.0.0.1:5672/?heartbeat=5",
                                         "blue")
    assert (nats.url, nats.prefix, nats.bucket) == ("nats://127.0.0.1:4222", "blue",
                                                    "blue_cluster")
    assert (kafka.servers, kafka.live_topic, kafka.cluster_topic, kafka.partitions) == (
        ["h1:9092", "h2:9092"], "blue-live", "blue-cluster", 8)
    assert [(s.url, s.prefix) for s in shards._shards] == [
        ("redis://:pw@h1:6379/2", "blue"), ("redis://:pw@h2:6380/2", "blue")]
    assert cluster.prefix == "blue"
    with pytest.raises(ValueError, match="prefix"):
        open_broker("nats://127.0.0.1:4222?prefix=a.b", "n")
    for bad in ("prefix=a.b", "partitions=0", "partitions=many", "fetch_wait=1"):
        with pytest.raises(ValueError, match="kafka"):
            open_broker(f"kafka://127.0.0.1:9092?{bad}", "n")


def test_the_in_process_broker_is_not_shared_and_unknown_schemes_are_refused():
    assert open_broker("memory://", "solo").shared is False
    with pytest.raises(ValueError, match="unknown broker URL scheme"):
        open_broker("mqtt://somewhere", "n")
