"""The queue in front of the broker for voice to other nodes, on a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.broker.conftest import (  # noqa: F401  (relay_for is a fixture)
    Inbox, broker_url, cut_off_broker, relay_for, remove_namespace)
from tidings.broker import open_broker
from tidings.voice_uplink import VoiceUplink

CHANNEL = "voice:uplink"


@pytest.fixture
async def pair():
    """A sending and a receiving broker connection on one Redis namespace."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    sender, receiver = (open_broker(broker_url("redis", tag), name) for name in ("a", "b"))
    inbox = Inbox()
    await sender.start(lambda channel, payload: None)
    await receiver.start(inbox)
    await receiver.subscribe(CHANNEL)
    yield sender, inbox
    await sender.close()
    await receiver.close()
    await remove_namespace("redis", tag)


async def test_everything_queued_reaches_the_broker_in_order(pair):
    sender, inbox = pair
    uplink = VoiceUplink(sender, capacity=100)
    for n in range(50):
        uplink.put(CHANNEL, b"\x00frame-%d" % n)
        if n % 10 == 0:
            await asyncio.sleep(0)  # some bursts while one is in flight
    await inbox.wait(lambda: len(inbox.of(CHANNEL)) == 50 and uplink.waiting == 0)
    assert inbox.of(CHANNEL) == [b"\x00frame-%d" % n for n in range(50)]
    await inbox.wait(lambda: uplink.sent == 50)  # the broker's answer may come after delivery
    assert (uplink.dropped, uplink.failed) == (0, 0)
    await uplink.close()


async def test_a_full_queue_drops_its_oldest_frames_and_counts_them(pair):
    sender, inbox = pair
    uplink = VoiceUplink(sender, capacity=8)
    for n in range(20):  # all before the sender runs: the broker is "behind" by 20 frames
        uplink.put(CHANNEL, b"%d" % n)
    assert uplink.waiting == 8 and uplink.dropped == 12
    await inbox.wait(lambda: len(inbox.of(CHANNEL)) == 8)
    assert inbox.of(CHANNEL) == [b"%d" % n for n in range(12, 20)]  # the freshest ones
    await inbox.wait(lambda: uplink.sent == 8)
    await uplink.close()


async def test_frames_the_broker_refuses_are_counted_and_the_queue_goes_on(relay_for):
    async with cut_off_broker(relay_for) as cut_off:
        uplink = VoiceUplink(cut_off, capacity=8)
        for _ in range(200):  # the first may still be written into the dying socket
            uplink.put(CHANNEL, b"lost")
            await asyncio.sleep(0.01)
            if uplink.failed:
                break
        assert uplink.failed >= 1 and uplink.waiting == 0
        await uplink.close()
