"""The broker contract, run against the in-process broker and real Redis, RabbitMQ and NATS."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from tests.cluster.conftest import broker_url, clean_broker
from tidings.broker import open_broker
from tidings.broker.base import Broker
from tidings.model import ClientInfo, NodeInfo

KINDS = ["redis", "amqp", "nats"]
TTL = 1.5


class Inbox:
    def __init__(self):
        self.messages: list[tuple[str, bytes]] = []
        self.reconnects = 0

    def __call__(self, channel: str, payload: bytes) -> None:
        self.messages.append((channel, payload))

    async def reconnected(self) -> None:
        self.reconnects += 1


@pytest.fixture(params=KINDS)
async def nodes(request):
    """Three brokers, as three nodes would hold them, on one broker namespace."""
    kind, tag = request.param, f"t{uuid.uuid4().hex[:10]}"
    brokers: list[tuple[Broker, Inbox]] = []
    for name in ("a", "b", "c"):
        broker, inbox = open_broker(broker_url(kind, tag), name, ttl=TTL), Inbox()
        await broker.start(inbox, inbox.reconnected)
        brokers.append((broker, inbox))
    yield brokers
    for broker, _ in brokers:
        with contextlib.suppress(Exception):
            await broker.close()
    await clean_broker(kind, tag)


async def _settle(inbox: Inbox, count: int, timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.02)):
        if len(inbox.messages) >= count:
            return
        await asyncio.sleep(0.02)


async def test_only_subscribed_nodes_receive_a_channel(nodes):
    (a, a_in), (b, b_in), (c, c_in) = nodes
    await a.subscribe("room:x")
    await b.subscribe("user:bob")
    await c.publish("room:x", b"to-room")
    await c.publish("user:bob", b"to-bob")
    await c.publish("room:nobody", b"lost")
    await _settle(a_in, 1)
    await _settle(b_in, 1)
    await asyncio.sleep(0.2)
    assert a_in.messages == [("room:x", b"to-room")]
    assert b_in.messages == [("user:bob", b"to-bob")]
    assert c_in.messages == []
    assert (a.received, b.received, c.received) == (1, 1, 0)


async def test_one_publishers_order_is_kept(nodes):
    (a, a_in), (b, _), _ = nodes
    await a.subscribe("room:order")
    for n in range(1000):
        await b.publish("room:order", str(n).encode())
    await _settle(a_in, 1000, timeout=10)
    assert [int(p) for _, p in a_in.messages] == list(range(1000))


async def test_unsubscribe_stops_delivery(nodes):
    (a, a_in), (b, _), _ = nodes
    await a.subscribe("room:u")
    await a.unsubscribe("room:u")
    await b.publish("room:u", b"late")
    await asyncio.sleep(0.3)
    assert a_in.messages == []
    assert "room:u" not in a.subscriptions


async def test_a_thousand_concurrent_subscribes_cost_few_round_trips(nodes):
    (a, _), _, _ = nodes
    calls = []
    original = a._subscribe_many

    async def counting(channels):
        calls.append(len(channels))
        await original(channels)

    a._subscribe_many = counting
    await asyncio.gather(*(a.subscribe(f"user:u{n}") for n in range(1000)))
    assert sum(calls) == 1000
    assert len(calls) <= 3


async def test_channel_names_with_special_characters_do_not_collide(nodes):
    (a, a_in), (b, b_in), (c, _) = nodes
    await a.subscribe("user:alice@example.com")
    await b.subscribe("user:alice@example%2Ecom")
    await c.publish("user:alice@example.com", b"dot")
    await c.publish("user:alice@example%2Ecom", b"percent")
    await _settle(a_in, 1)
    await _settle(b_in, 1)
    await asyncio.sleep(0.2)
    assert a_in.messages == [("user:alice@example.com", b"dot")]
    assert b_in.messages == [("user:alice@example%2Ecom", b"percent")]


async def test_presence_and_nodes_are_shared_and_expire(nodes):
    (a, _), (b, _), (c, _) = nodes
    alice, bob = ClientInfo("c1", "alice", "a"), ClientInfo("c2", "bob", "b")
    await a.heartbeat(NodeInfo("a", 1, 1, 0, "t"), {"room:p": [alice]})
    await b.heartbeat(NodeInfo("b", 1, 1, 0, "t"), {})
    await c.heartbeat(NodeInfo("c", 0, 0, 0, "t"), {})
    await b.presence_add("room:p", bob)
    await asyncio.sleep(0.2)
    assert sorted(x.user for x in await c.presence("room:p")) == ["alice", "bob"]
    assert sorted(n.name for n in await c.nodes()) == ["a", "b", "c"]
    await b.presence_remove("room:p", "c2")
    assert [x.user for x in await c.presence("room:p")] == ["alice"]
    await a.close()  # node a dies without cleaning up; b and c keep heartbeating
    for _ in range(3):
        await asyncio.sleep(TTL / 2)
        await b.heartbeat(NodeInfo("b", 1, 1, 0, "t"), {})
        await c.heartbeat(NodeInfo("c", 0, 0, 0, "t"), {})
    assert await c.presence("room:p") == []
    assert sorted(n.name for n in await c.nodes()) == ["b", "c"]


async def test_in_process_broker_delivers_to_itself_only_when_subscribed():
    broker, inbox = open_broker("memory://", "solo"), Inbox()
    await broker.start(inbox)
    await broker.publish("room:m", b"before")
    await broker.subscribe("room:m")
    await broker.publish("room:m", b"after")
    assert inbox.messages == [("room:m", b"after")]
    assert broker.shared is False


def test_unknown_broker_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown broker URL scheme"):
        open_broker("kafka://somewhere", "n")
