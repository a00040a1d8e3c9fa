"""A token revoked on one node is refused, and its sessions closed, on every other node:
two node processes per broker (Redis, RabbitMQ, NATS) on one PostgreSQL store."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
import websockets

from tests.cluster.conftest import BROKERS, Cluster, running_cluster
from tests.conftest import Client
from tidings.errors import CloseCode, ErrorCode

SECRET = "a-secret-long-enough-for-hs256-signing"


def _token(jti: str) -> str:
    return jwt.encode({"sub": "alice", "exp": int(time.time()) + 600, "jti": jti}, SECRET,
                      "HS256")


@pytest.fixture(params=BROKERS)
async def pair(request):
    async with running_cluster(request.param, 2, TIDINGS_JWT_SECRET=SECRET) as running:
        yield running


async def _connect(node, token: str) -> tuple[Client, dict]:
    client = Client(await websockets.connect(node.ws_url, ping_interval=None))
    return client, await client.request("connect", {"token": token})


async def test_a_revocation_on_one_node_closes_sessions_on_the_other(pair: Cluster):
    first, second = pair.nodes
    held, reply = await _connect(second, _token("t-1"))
    assert "error" not in reply
    started = time.monotonic()
    await first.post("/api/revoke", {"jti": "t-1"})
    code, _ = await held.closed(timeout=15)
    assert code == CloseCode.TOKEN_REVOKED
    assert time.monotonic() - started < 2  # over the broker, not the 10 s resync
    _, reply = await _connect(second, _token("t-1"))
    assert reply["error"]["code"] == ErrorCode.UNAUTHORIZED


async def test_a_node_started_later_knows_earlier_revocations(pair: Cluster):
    first, second = pair.nodes
    await first.post("/api/revoke", {"jti": "t-early"})
    second.kill()
    await asyncio.get_running_loop().run_in_executor(None, second.start)
    _, reply = await _connect(second, _token("t-early"))
    assert reply["error"]["message"] == "token revoked"
