"""centrifuge-python (the PyPI SDK) against the Centrifugo endpoint, JSON and Protobuf."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    PublicationContext,
    ServerPublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from tests.conftest import running_node, settings_for
from tests.server.centrifugo_clients import SECRET, api, publish_offline, token, ws_url

FORMATS = ["json", "protobuf"]


class Recorder(ClientEventHandler, SubscriptionEventHandler):
    """Every event the SDK hands the application, in a queue per kind."""

    def __init__(self, protobuf: bool):
        self.protobuf = protobuf
        self.queues: dict[str, asyncio.Queue] = {}

    def queue(self, kind: str) -> asyncio.Queue:
        return self.queues.setdefault(kind, asyncio.Queue())

    def data(self, raw):
        return orjson.loads(raw) if self.protobuf else raw

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.queue("subscribed").put_nowait(ctx)

    async def on_publication(self, ctx: PublicationContext | ServerPublicationContext) -> None:
        channel = getattr(ctx, "channel", "room")
        self.queue(f"pub {channel}").put_nowait((ctx.pub.offset, self.data(ctx.pub.data)))

    async def next(self, kind: str, timeout: float = 10):
        return await asyncio.wait_for(self.queue(kind).get(), timeout)


def _encode(value, protobuf: bool):
    return orjson.dumps(value) if protobuf else value


@pytest.fixture
async def secured(tmp_path):
    async with running_node(settings_for(tmp_path, jwt_secret=SECRET, api_key="k")) as running:
        yield running


@pytest.mark.parametrize("format", FORMATS)
async def test_centrifuge_python_publishes_reads_history_presence_and_server_pushes(secured,
                                                                                    format):
    protobuf = format == "protobuf"
    room = f"room:py-{uuid.uuid4().hex[:8]}"
    events = Recorder(protobuf)
    client = Client(ws_url(secured.port), events=events, token=token("alice"),
                    use_protobuf=protobuf)
    await client.connect()
    try:
        sub = client.new_subscription(room, events=events)
        await sub.subscribe()
        subscribed = await events.next("subscribed")
        assert subscribed.recoverable and subscribed.positioned
        await sub.publish(_encode({"n": 1}, protobuf))
        assert await events.next("pub room") == (1, {"n": 1})
        history = await sub.history(limit=10)
        assert [events.data(p.data) for p in history.publications] == [{"n": 1}]
        assert history.offset == 1
        presence = await sub.presence()
        assert [info.user for info in presence.clients.values()] == ["alice"]
        stats = await sub.presence_stats()
        assert (stats.num_clients, stats.num_users) == (1, 1)
        await api(secured, "send", {"user": "alice", "data": {"dm": True}})
        assert await events.next("pub user:alice") == (1, {"dm": True})
    finally:
        await client.disconnect()


async def test_centrifuge_python_recovers_after_a_node_restart(tmp_path):
    settings = settings_for(tmp_path, jwt_secret=SECRET, api_key="k")
    room = f"room:py-{uuid.uuid4().hex[:8]}"
    events = Recorder(protobuf=False)
    async with running_node(settings) as server:
        client = Client(ws_url(server.port), events=events, token=token("alice"),
                        min_reconnect_delay=0.05, max_reconnect_delay=0.3)
        await client.connect()
        sub = client.new_subscription(room, events=events)
        await sub.subscribe()
        await sub.publish({"n": 1})
        assert await events.next("pub room") == (1, {"n": 1})
    try:
        await publish_offline(settings, room, [{"n": 2}, {"n": 3}])
        async with running_node(settings):
            while True:  # past the first subscribe's event and the server-side channels'
                subscribed = await events.next("subscribed")
                if subscribed.channel == room and subscribed.was_recovering:
                    break
            assert subscribed.recovered
            assert [await events.next("pub room") for _ in range(2)] == [(2, {"n": 2}),
                                                                         (3, {"n": 3})]
    finally:
        await client.disconnect()
