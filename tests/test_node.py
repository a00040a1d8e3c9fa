"""The node's periodic work: the resync (what it compares with the store, by broker) and
the tick over its sessions (which ones it looks at)."""

from __future__ import annotations

import pytest

from tests.test_hub import Recorder
from tests.test_session import connected
from tidings.session import Session
from tidings.errors import TidingsError
from tidings.store.base import CommitUnknown

IDLE = 1000  # sessions on a node that has nothing to do


def stored_then_in_doubt(store):
    """Make the store commit each batch, then say the commit ended in doubt, as when the
    database connection dies just after COMMIT went through (so no one is told of it)."""
    commit = store._commit

    async def doubtful(batch):
        await commit(batch)
        raise CommitUnknown("connection lost while committing")

    store._commit = doubtful
    return commit


def positions_asked(store) -> list[list[str]]:
    asked: list[list[str]] = []
    positions = store.positions

    async def spy(channels):
        asked.append(list(channels))
        return await positions(channels)

    store.positions = spy
    return asked


async def test_a_publication_stored_in_doubt_reaches_subscribers_at_the_next_resync(
        make_server):
    """The in-process broker loses nothing, so the periodic resync compares only the
    channels with a publish that ended in doubt, not every connection's `user:` channel."""
    async with make_server() as server:
        node = server.node
        room, idle = node.channel("room:doubt"), node.channel("room:idle")
        sub = Recorder()
        await node.hub.subscribe(sub, room)
        await node.hub.subscribe(Recorder(), idle)
        stored_then_in_doubt(node.store)
        with pytest.raises(TidingsError):
            await node.publish(room, b'"maybe"')
        assert sub.offsets == []  # nothing delivered: the publisher was told "unknown"
        asked = positions_asked(node.store)
        await node._resync()
        assert sub.offsets == [1]
        assert asked == [["room:doubt"]]
        await node._resync()  # nothing in doubt any more: nothing read
        assert asked == [["room:doubt"]]


@pytest.mark.services
async def test_a_node_on_a_shared_broker_compares_every_stored_channel(make_server, tmp_path):
    """A broker between nodes may drop messages silently: every stored channel is read."""
    broker = f"redis://127.0.0.1:6379/0?prefix=resync{tmp_path.name[-8:]}"
    async with make_server(broker=broker) as server:
        node = server.node
        for name in ("room:a", "room:b"):
            await node.hub.subscribe(Recorder(), node.channel(name))
        asked = positions_asked(node.store)
        await node._resync()
        assert len(asked) == 1 and {"room:a", "room:b"} <= set(asked[0])


async def test_a_tick_touches_none_of_the_idle_sessions_not_due(make_server, monkeypatch):
    """Every session sits on the node's timing wheel at its next ping; a tick before then
    looks at none of them, however many there are."""
    async with make_server(shutdown_grace=0.05) as server:  # pings every 25 s
        node = server.node
        sessions = [await connected(node, f"idle{n}") for n in range(IDLE)]
        await node._tick()  # the look each is given after connecting files it for its ping
        assert len(node.wheel) == IDLE
        looked: list[Session] = []
        monkeypatch.setattr(Session, "tick", lambda session, now: looked.append(session))
        await node._tick()
        assert looked == []
        pings_due = max(session.last_seen for session in sessions) + 25.0
        assert set(node.wheel.pop_due(pings_due)) == set(sessions)  # all of them, then


async def test_the_wheel_lets_go_of_a_session_that_ends(make_server):
    async with make_server(shutdown_grace=0.05) as server:
        session = await connected(server.node, "leaving")
        session.close(1000, "bye")
        await session.cleanup()
        assert len(server.node.wheel) == 0
