"""The hub's ordering rules, driven with publications arriving out of order, twice, or never.

The store is a real SQLite store: what the live path loses, the hub reads back from it.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tidings.broker.memory import MemoryBroker
from tidings.channels import parse_channel
from tidings.config import load_settings
from tidings.hub import Hub
from tidings.model import ClientInfo, Publication
from tidings.store import Retention
from tidings.store.sqlite import SQLiteStore

SETTINGS = load_settings()
ROOM = parse_channel("room:order", SETTINGS)
KEEP = Retention(1000)


class Codec:
    def pub_frame(self, pub: Publication) -> bytes:
        return orjson.dumps({"offset": pub.offset, "data": orjson.Fragment(pub.data)})

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes:
        return orjson.dumps({kind: client.user})


class Recorder:
    """A subscriber that keeps what it was sent."""

    def __init__(self):
        self.codec = CODEC
        self.frames: list[dict] = []
        self.lost: list[str] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))

    def lost_sync(self, channel: str) -> None:
        self.lost.append(channel)

    @property
    def offsets(self) -> list[int]:
        return [f["offset"] for f in self.frames]


CODEC = Codec()


@pytest.fixture
async def hub(tmp_path):
    store = SQLiteStore(str(tmp_path / "hub.db"))
    await store.start()
    broker = MemoryBroker("n1")
    await broker.start(lambda channel, payload: None)
    hub = Hub(store, broker, gap_wait=0.05)
    yield hub
    await hub.close()
    await store.close()


async def _append(hub: Hub, count: int) -> list[Publication]:
    return [await hub.store.append(ROOM.name, b'"x"', retention=KEEP) for _ in range(count)]


async def test_out_of_order_arrivals_are_delivered_in_order(hub):
    sub = Recorder()
    await hub.subscribe(sub, ROOM)
    pubs = await _append(hub, 5)
    for index in (1, 0, 3, 2, 4):
        hub.deliver(pubs[index])
    assert sub.offsets == [1, 2, 3, 4, 5]


async def test_duplicates_are_dropped(hub):
    sub = Recorder()
    await hub.subscribe(sub, ROOM)
    pubs = await _append(hub, 3)
    for pub in pubs + pubs:
        hub.deliver(pub)
    assert sub.offsets == [1, 2, 3]


async def test_a_lost_publication_is_read_back_from_the_store(hub):
    sub = Recorder()
    await hub.subscribe(sub, ROOM)
    pubs = await _append(hub, 4)
    for pub in (pubs[0], pubs[2], pubs[3]):  # offset 2 never arrives live
        hub.deliver(pub)
    assert sub.offsets == [1]
    await asyncio.sleep(0.3)
    assert sub.offsets == [1, 2, 3, 4]
    assert hub.gaps_filled == 1


async def test_resync_finds_a_lost_tail(hub):
    sub = Recorder()
    await hub.subscribe(sub, ROOM)
    pubs = await _append(hub, 3)
    hub.deliver(pubs[0])  # 2 and 3 lost, and nothing comes after them
    await hub.resync()
    assert sub.offsets == [1, 2, 3]


async def test_a_resync_of_named_channels_reads_only_those(hub):
    other = parse_channel("room:other", SETTINGS)
    subs = {ROOM.name: Recorder(), other.name: Recorder()}
    await hub.subscribe(subs[ROOM.name], ROOM)
    await hub.subscribe(subs[other.name], other)
    await _append(hub, 2)  # nothing delivered live, on either channel
    await hub.store.append(other.name, b'"x"', retention=KEEP)
    await hub.resync([ROOM.name])
    assert subs[ROOM.name].offsets == [1, 2]
    assert subs[other.name].offsets == []


async def test_recovery_merges_store_and_live_without_repeats(hub):
    early = Recorder()
    await hub.subscribe(early, ROOM)
    pubs = await _append(hub, 3)
    for pub in pubs:
        hub.deliver(pub)
    late = Recorder()
    recovered, position = await hub.subscribe(late, ROOM, since=(1, pubs[0].epoch),
                                              recovery_max=100)
    assert [p.offset for p in recovered] == [2, 3]
    assert position.offset == 3
    more = await _append(hub, 2)
    for pub in more:
        hub.deliver(pub)
    assert late.offsets == [4, 5]
    assert early.offsets == [1, 2, 3, 4, 5]


async def test_a_client_ahead_of_the_live_stream_gets_no_repeats(hub):
    watcher = Recorder()
    await hub.subscribe(watcher, ROOM)
    pubs = await _append(hub, 4)  # stored, but not yet delivered live on this node
    ahead = Recorder()
    recovered, position = await hub.subscribe(ahead, ROOM, since=(3, pubs[0].epoch),
                                              recovery_max=100)
    assert recovered == [] and position.offset == 3
    for pub in pubs:
        hub.deliver(pub)
    assert ahead.offsets == [4]
    assert watcher.offsets == [1, 2, 3, 4]


async def test_a_hole_the_store_cannot_fill_ends_the_sessions(hub):
    sub = Recorder()
    await hub.subscribe(sub, ROOM)
    small = Retention(2)
    pubs = [await hub.store.append(ROOM.name, b"1", retention=small) for _ in range(5)]
    hub.deliver(pubs[-1])  # 1..4 missing, and the store kept only 4 and 5
    await asyncio.sleep(0.3)
    assert sub.lost == [ROOM.name]


async def test_last_unsubscribe_releases_the_broker_subscription(hub):
    sub = Recorder()
    await hub.subscribe(sub, ROOM)
    assert ROOM.name in hub.broker.subscriptions
    hub.unsubscribe(sub, ROOM.name)
    await asyncio.sleep(0.05)
    assert ROOM.name not in hub.channels
    assert ROOM.name not in hub.broker.subscriptions


class CountingCodec(Codec):
    """A codec that tags its frames and counts how often it encoded a publication."""

    def __init__(self, tag: str):
        self.tag = tag
        self.encoded = 0

    def pub_frame(self, pub: Publication) -> bytes:
        self.encoded += 1
        return orjson.dumps({"offset": pub.offset, "tag": self.tag})


async def test_a_subscription_may_bring_its_own_codec_and_each_codec_encodes_once(hub):
    shared, own = CountingCodec("shared"), CountingCodec("own")
    first, second, third = Recorder(), Recorder(), Recorder()
    await hub.subscribe(first, ROOM, codec=shared)
    await hub.subscribe(second, ROOM, codec=shared)
    await hub.subscribe(third, ROOM, codec=own)
    for pub in await _append(hub, 2):
        hub.deliver(pub)
    assert [f["tag"] for f in first.frames + second.frames] == ["shared"] * 4
    assert [f["tag"] for f in third.frames] == ["own", "own"]
    assert (shared.encoded, own.encoded) == (2, 2)
    hub.unsubscribe(third, ROOM.name)
    hub.deliver((await _append(hub, 1))[0])
    assert len(third.frames) == 2 and own.encoded == 2
    assert len(first.frames) == 3


class Writes(Recorder):
    """Keeps each write as it came: how many calls a subscriber got, and their bytes."""

    def __init__(self, codec: Codec):
        super().__init__()
        self.codec = codec
        self.writes: list[bytes] = []

    def write(self, frame: bytes) -> None:
        self.writes.append(frame)
        self.frames += [orjson.loads(line) for line in frame.splitlines()]


class LineCodec(Codec):
    joinable = True  # frames are lines here: joined, they still split apart

    def pub_frame(self, pub: Publication) -> bytes:
        return super().pub_frame(pub) + b"\n"


async def test_a_committed_batch_reaches_a_joinable_subscriber_in_one_write(hub):
    joined, single = Writes(LineCodec()), Writes(CODEC)
    await hub.subscribe(joined, ROOM, codec=joined.codec)
    await hub.subscribe(single, ROOM)
    batch = await _burst(hub, 5)
    hub.deliver_batch(batch)
    assert len(joined.writes) == 1 and joined.offsets == [1, 2, 3, 4, 5]
    assert len(single.writes) == 5 and single.offsets == [1, 2, 3, 4, 5]
    for pub in batch:  # the publishers' own deliveries come after: already delivered
        hub.deliver(pub)
    assert joined.offsets == single.offsets == [1, 2, 3, 4, 5]
    assert hub.deliveries == 10


async def test_a_batch_behind_a_gap_waits_its_turn(hub):
    sub = Writes(LineCodec())
    await hub.subscribe(sub, ROOM, codec=sub.codec)
    first, *rest = await _burst(hub, 4)
    hub.deliver_batch(rest)  # offset 1 has not arrived: 2..4 must wait behind it
    assert sub.offsets == []
    hub.deliver(first)
    assert sub.offsets == [1, 2, 3, 4]


async def _burst(hub: Hub, count: int) -> list[Publication]:
    """`count` concurrent appends: one group-commit batch of consecutive offsets."""
    return list(await asyncio.gather(*(hub.store.append(ROOM.name, b'"x"', retention=KEEP)
                                       for _ in range(count))))
