"""A session's deadlines: what its tick does, when it says to look again, what re-files it.

The sessions here sit on a real node (SQLite store, in-process broker) over a socket that
keeps what it is sent; the times are the node's own (monotonic) clock.
"""

from __future__ import annotations

import time

import jwt
import pytest

from tidings.auth import Grant
from tidings.errors import CloseCode
from tidings.server.native import CODEC, PING_FRAME
from tidings.session import Session

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def node_with(make_server):
    """A node whose stop does not wait for these sessions: no read loop ever ends them."""
    return lambda **settings: make_server(shutdown_grace=0.05, **settings)


class Socket:
    """A connection that keeps every frame written to it and how it was closed."""

    def __init__(self):
        self.frames: list[bytes] = []
        self.closed_with: int | None = None

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)

    def writelines(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        self.closed_with = code


async def connected(node, user: str = "idle", **credentials) -> Session:
    session = Session(node, Socket(), CODEC)
    await session.connect({"user": user, **credentials}, {})
    session.release()
    return session


async def test_a_session_waiting_for_connect_is_due_at_its_connect_timeout(node_with):
    async with node_with(connect_timeout=3) as server:
        session = Session(server.node, Socket(), CODEC)
        now = session.opened_at + 1
        assert session.tick(now) == session.opened_at + 3
        assert session.tick(session.opened_at + 3) == session.opened_at + 3  # strictly after
        assert session.tick(session.opened_at + 3.01) is None
        assert session.conn.closed_with == CloseCode.CONNECT_TIMEOUT


async def test_a_connected_session_is_due_a_ping_interval_after_it_was_heard_from(node_with):
    async with node_with(ping_interval=20, pong_timeout=5) as server:
        session = await connected(server.node)
        heard = session.last_seen
        assert session.tick(heard + 1) == heard + 20
        assert session.tick(heard + 20.5) == heard + 25.5  # pinged: the pong is due in 5 s
        session.flush()
        assert session.conn.frames[-1] == PING_FRAME
        assert session.tick(heard + 26) is None
        assert session.conn.closed_with == CloseCode.NO_PONG


async def test_no_session_is_due_later_than_a_ping_interval_from_now(node_with):
    """A pong may come any time after a ping: the next ping is then a ping interval after it,
    which with pong_timeout > ping_interval is before the pong's deadline."""
    async with node_with(ping_interval=2, pong_timeout=30) as server:
        session = await connected(server.node)
        pinged_at = session.last_seen + 2.5
        assert session.tick(pinged_at) == pinged_at + 2


async def test_a_token_that_expires_before_the_next_ping_brings_the_look_forward(node_with):
    async with node_with(jwt_secret=SECRET) as server:
        token = jwt.encode({"sub": "brief", "exp": int(time.time()) + 5}, SECRET, "HS256")
        session = await connected(server.node, None, token=token)
        now = time.monotonic()
        left = session.expires - time.time()
        assert abs(session.tick(now) - (now + left)) < 0.1


async def test_seen_files_nothing(node_with, monkeypatch):
    """`seen()` runs for every client frame: it only moves deadlines later, and the tick
    finds that out when the session comes round."""
    async with node_with() as server:
        session = await connected(server.node)
        filed = []
        monkeypatch.setattr(server.node.wheel, "file", lambda *args: filed.append(args))
        for _ in range(100):
            session.seen()
        assert filed == []


async def test_connecting_and_a_sooner_token_expiry_re_file_the_session(node_with):
    async with node_with(jwt_secret=SECRET) as server:
        node = server.node
        session = Session(node, Socket(), CODEC)
        node.wheel.pop_due(time.monotonic())  # its first look: taken off the wheel
        await session.connect({"token": jwt.encode({"sub": "kim", "exp": int(time.time()) + 600},
                                                       SECRET, "HS256")}, {})
        assert session in node.wheel.pop_due(time.monotonic())  # a look at the next tick
        session.grants["vip:lounge"] = Grant(int(time.time()) + 9)
        session._update_expiry()
        assert session in node.wheel.pop_due(time.monotonic())


async def test_a_token_expiring_later_files_nothing(node_with, monkeypatch):
    async with node_with() as server:
        session = await connected(server.node)
        session.grants["vip:lounge"] = Grant(int(time.time()) + 9)
        session._update_expiry()
        filed = []
        monkeypatch.setattr(server.node.wheel, "file", lambda *args: filed.append(args))
        del session.grants["vip:lounge"]
        session._update_expiry()
        assert filed == [] and session.expires is None
