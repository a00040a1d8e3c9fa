"""The subscription bookkeeping every broker shares: a round trip carries only what changed."""

from __future__ import annotations

import asyncio

from tidings.broker.memory import MemoryBroker


class SlowBroker(MemoryBroker):
    """Records each round trip and holds it until released."""

    def __init__(self):
        super().__init__("n1")
        self.rounds: list[tuple[str, list[str]]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def _subscribe_many(self, channels):
        self.rounds.append(("subscribe", channels))
        await self.gate.wait()

    async def _unsubscribe_many(self, channels):
        self.rounds.append(("unsubscribe", channels))
        await self.gate.wait()


async def test_a_subscribe_next_to_thousands_of_channels_asks_for_that_channel_only():
    broker = SlowBroker()
    await asyncio.gather(*(broker.subscribe(f"user:u{n}") for n in range(5000)))
    broker.rounds.clear()
    await broker.subscribe("user:new")
    await broker.unsubscribe("user:u7")
    assert broker.rounds == [("subscribe", ["user:new"]), ("unsubscribe", ["user:u7"])]
    assert len(broker.subscriptions) == 5000


async def test_changes_during_a_round_trip_are_settled_by_the_next_one():
    broker = SlowBroker()
    await broker.subscribe("room:kept")
    broker.gate.clear()
    first = asyncio.create_task(broker.subscribe("room:a"))
    await asyncio.sleep(0)  # room:a's round trip is under way
    later = [asyncio.create_task(broker.unsubscribe("room:a")),  # dropped before confirmed
             asyncio.create_task(broker.subscribe("room:b")),
             asyncio.create_task(broker.unsubscribe("room:kept"))]
    await asyncio.sleep(0)
    broker.gate.set()
    await asyncio.gather(first, *later)
    assert broker.subscriptions == {"room:b"}
    assert broker.rounds[-2:] == [("subscribe", ["room:b"]),
                                  ("unsubscribe", ["room:a", "room:kept"])]


async def test_after_a_reconnect_every_wanted_channel_is_asked_for_again():
    broker = SlowBroker()
    for channel in ("room:a", "room:b"):
        await broker.subscribe(channel)
    broker.rounds.clear()
    await broker._reconnected()
    assert broker.rounds == [("subscribe", ["room:a", "room:b"])]
    assert broker.subscriptions == {"room:a", "room:b"}
