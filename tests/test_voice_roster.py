"""A voice room's members across the cluster, read from a real Redis broker's presence."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.broker.conftest import (  # noqa: F401  (relay_for is a fixture)
    broker_url, cut_off_broker, relay_for, remove_namespace)
from tidings.broker import open_broker
from tidings.model import ClientInfo
from tidings.voice_roster import VoiceRoster

ROOM = "voice:roster"


@pytest.fixture
async def broker():
    tag = f"t{uuid.uuid4().hex[:10]}"
    running = open_broker(broker_url("redis", tag), "n1")
    await running.start(lambda channel, payload: None)
    yield running
    await running.close()
    await remove_namespace("redis", tag)


async def test_members_come_from_presence_with_their_nodes(broker):
    await broker.presence_add(ROOM, ClientInfo("c1", "alice", "n1"))
    await broker.presence_add(ROOM, ClientInfo("c2", "bob", "n2"))
    roster = VoiceRoster(broker, refresh=10)
    assert roster.known(ROOM) is None  # not read yet: the read starts in the background
    members = await roster.members(ROOM)
    assert members.users == {"alice", "bob"} and members.nodes == {"n1", "n2"}
    assert roster.known(ROOM) == members
    assert roster.reads == 1
    await roster.close()


async def test_lookups_of_one_room_share_one_read_and_fresh_answers_are_reused(broker):
    roster = VoiceRoster(broker, refresh=10)
    answers = await asyncio.gather(*(roster.members(ROOM) for _ in range(20)))
    assert len(set(answers)) == 1 and roster.reads == 1
    await roster.members(ROOM)
    assert roster.reads == 1
    await roster.close()


async def test_a_stale_answer_still_answers_while_it_is_read_again(broker):
    await broker.presence_add(ROOM, ClientInfo("c1", "alice", "n1"))
    roster = VoiceRoster(broker, refresh=0.05)
    first = await roster.members(ROOM)
    await broker.presence_add(ROOM, ClientInfo("c2", "bob", "n2"))
    await asyncio.sleep(0.1)
    assert roster.known(ROOM) == first  # stale, returned at once; a refresh starts
    await asyncio.sleep(0.1)
    assert roster.known(ROOM).users == {"alice", "bob"}
    await roster.close()


async def test_a_join_forgets_the_room_and_an_older_read_is_not_kept(broker):
    roster = VoiceRoster(broker, refresh=10)
    assert (await roster.members(ROOM)).users == set()
    reading = roster.known(ROOM)  # fresh: no read
    assert reading is not None
    await broker.presence_add(ROOM, ClientInfo("c2", "bob", "n2"))
    roster.forget(ROOM)
    assert roster.known(ROOM) is None
    assert (await roster.members(ROOM)).users == {"bob"}
    await roster.close()


async def test_a_failed_read_answers_none_and_keeps_nothing(relay_for):
    async with cut_off_broker(relay_for) as cut_off:
        roster = VoiceRoster(cut_off, refresh=10)
        assert await roster.members(ROOM) is None
        assert roster.known(ROOM) is None
        await roster.close()
