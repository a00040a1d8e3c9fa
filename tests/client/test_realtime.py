"""RealtimeClient against real nodes: subscribing, reconnecting by close code, recovering
exactly (no gap, no duplicate) across a disconnect and a node restart, resets, token refresh."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import jwt
import pytest

from tests.client.streams import all_history, publications, publish_through_outages
from tests.conftest import free_port, start_process
from tidings.client import (
    ApiClient, Backoff, ClientClosed, CommandError, Join, RealtimeClient, Reset,
    State, Unreachable,
)

QUICK = Backoff(base=0.05, cap=0.2)


class Steady(Backoff):
    """Always the same delay: long enough to publish what the client must then recover."""

    def delay(self, attempt: int, rng=None) -> float:
        return 0.5


async def test_subscribes_and_gets_publications_in_order_with_its_own_join(server):
    async with RealtimeClient(server.ws_url, user="alice") as client, ApiClient(server.url) as api:
        room = await client.subscribe("room:lobby")
        joined = await room.get(5)
        for n in range(3):
            await api.publish("room:lobby", {"n": n})
        got = await publications(room, 3)
    assert isinstance(joined, Join) and joined.member.user == "alice"
    assert [(p.offset, p.data["n"]) for p in got] == [(1, 0), (2, 1), (3, 2)]
    assert client.user == "alice" and client.node == server.node.name


async def test_commands_return_typed_results_and_raise_command_errors(server):
    async with RealtimeClient(server.ws_url, user="alice") as client:
        with pytest.raises(CommandError) as refused:
            await client.publish("room:lobby", 1)  # not a member yet
        await client.subscribe("room:lobby")
        published = await client.publish("room:lobby", {"text": "hi"})
        sent = await client.send("bob", "psst")
        page = await client.history("room:lobby", reverse=True, limit=1)
        presence = await client.presence("room:lobby")
    assert refused.value.code == 106
    assert (published.offset, sent.channel, sent.offset) == (1, "user:bob", 1)
    assert page.publications[0].data == {"text": "hi"} and page.publications[0].sender == "alice"
    assert [m.user for m in presence.clients.values()] == ["alice"]


async def test_reconnects_after_4007_and_recovers_what_it_missed_once_each(server):
    async with RealtimeClient(server.ws_url, user="alice", backoff=Steady()) as client, \
            ApiClient(server.url) as api:
        room = await client.subscribe("room:lobby")
        await api.publish("room:lobby", {"n": 1})
        await api.send("alice", {"n": 1})
        assert [p.offset for p in await publications(room, 1)] == [1]
        await api.disconnect("alice")  # 4007: reconnect and recover
        await client.wait_for(State.DISCONNECTED, 5)
        for n in range(2, 6):  # while it waits out its backoff
            await api.publish("room:lobby", {"n": n})
            await api.send("alice", {"n": n})
        await client.wait_for(State.CONNECTED, 5)
        await api.publish("room:lobby", {"n": 6})
        got = await publications(room, 5)
        personal = await publications(client.subscription("user:alice"), 5)
        assert client.connects == 2 and client.last_close[0] == 4007
        with pytest.raises(asyncio.TimeoutError):
            await publications(room, 1, timeout=0.3)
    assert [p.data["n"] for p in got] == [2, 3, 4, 5, 6]
    assert [p.data["n"] for p in personal] == [1, 2, 3, 4, 5]  # user:alice through connect.recover


async def test_does_not_reconnect_after_4502_and_ends_every_stream(server):
    states: list[State] = []
    client = RealtimeClient(server.ws_url, user="bob", backoff=QUICK, on_state=states.append)
    await client.connect()
    room = await client.subscribe("room:lobby")
    async with ApiClient(server.url) as api:
        await api.disconnect("bob", reconnect=False)
    await asyncio.wait_for(_closed(client), 5)
    with pytest.raises(ClientClosed) as ended:
        while True:
            await room.get(5)
    with pytest.raises(ClientClosed):
        await client.publish("room:lobby", 1)
    await client.close()
    assert ended.value.code == 4502
    assert states[-1] == State.CLOSED and states.count(State.CONNECTED) == 1


async def _closed(client: RealtimeClient) -> None:
    while client.state != State.CLOSED:
        await asyncio.sleep(0.02)


async def test_an_unrecoverable_position_is_a_reset_then_the_stream_goes_on(server):
    async with RealtimeClient(server.ws_url, user="alice") as client, ApiClient(server.url) as api:
        await api.publish("room:r", 1)
        room = await client.subscribe("room:r", offset=1, epoch="not-the-epoch")
        reset = await room.get(5)
        await api.publish("room:r", 2)
        got = await publications(room, 1)
    assert isinstance(reset, Reset) and "epoch changed" in reset.reason and reset.offset == 1
    assert [p.offset for p in got] == [2]


async def test_more_missed_than_recovery_max_on_reconnect_is_a_reset_of_the_personal_channel(
        make_server):
    async with make_server(namespaces={"user": {"recovery_max": 2}}) as node, \
            RealtimeClient(node.ws_url, user="alice", backoff=Steady()) as client, \
            ApiClient(node.url) as api:
        personal = client.subscription("user:alice")
        await api.send("alice", 0)
        await publications(personal, 1)
        await api.disconnect("alice")
        await client.wait_for(State.DISCONNECTED, 5)
        for n in range(1, 6):
            await api.send("alice", n)
        await client.wait_for(State.CONNECTED, 5)
        reset = await personal.get(5)
        await api.send("alice", 6)
        after = await publications(personal, 1)
    assert isinstance(reset, Reset) and reset.offset == 6
    assert [p.data for p in after] == [6]


async def test_a_fresh_token_is_asked_for_after_the_session_expires(make_server):
    secret = "test-secret-for-the-realtime-client-0123456789"
    issued: list[str] = []

    async def get_token() -> str:
        token = jwt.encode({"sub": "carol", "exp": int(time.time()) + 2}, secret)
        issued.append(token)
        return token

    async with make_server(jwt_secret=secret) as node, \
            RealtimeClient(node.ws_url, get_token=get_token, backoff=QUICK) as client:
        await client.wait_for(State.DISCONNECTED, 8)  # 4009 once exp passes
        await client.wait_for(State.CONNECTED, 5)
        assert client.last_close[0] == 4009
    assert len(issued) >= 2 and client.user == "carol"


async def test_a_refused_token_closes_for_good(make_server):
    async with make_server(jwt_secret="test-secret-for-the-realtime-client-0123456789") as node:
        client = RealtimeClient(node.ws_url, token="not-a-jwt", backoff=QUICK)
        with pytest.raises(ClientClosed) as refused:
            await client.connect(timeout=5)
    assert refused.value.code == 4501


async def test_no_node_within_the_timeout_is_unreachable():
    client = RealtimeClient(f"ws://127.0.0.1:{free_port()}/ws", user="x", backoff=QUICK)
    with pytest.raises(Unreachable):
        await client.connect(timeout=0.5)
    assert client.state == State.CLOSED


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["drained", "killed"])
async def test_a_node_restarted_mid_stream_loses_and_repeats_nothing(tmp_path, stop):
    port = free_port()
    env = {"TIDINGS_PORT": str(port), "TIDINGS_NODE_NAME": "restarted",
           "TIDINGS_STORE": f"sqlite:///{tmp_path / 'restart.db'}", "TIDINGS_SHUTDOWN_GRACE": "1"}
    loop = asyncio.get_running_loop()
    proc = await loop.run_in_executor(None, start_process, env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with RealtimeClient(f"ws://127.0.0.1:{port}/ws", user="dave", backoff=QUICK) as client, \
                ApiClient(url, timeout=2) as api:
            room = await client.subscribe("room:stream")
            publisher = asyncio.create_task(publish_through_outages(api, "room:stream", 120))
            await publications(room, 30)
            proc.send_signal(stop)
            await loop.run_in_executor(None, proc.wait, 15)
            proc = await loop.run_in_executor(None, start_process, env)
            await asyncio.wait_for(publisher, 60)
            stored = await all_history(api, "room:stream")
            got = await publications(room, len(stored) - 30, timeout=20)
            assert client.connects >= 2
    finally:
        _stop(proc)
    received = [p.offset for p in got]
    assert received == list(range(31, len(stored) + 1))  # in order, none twice, none missing
    assert [p.data for p in got] == [p.data for p in stored[30:]]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_importing_the_clients_loads_nothing_of_the_server_side():
    probe = ("import sys, tidings.client; "
             "bad = [m for m in sys.modules if m.startswith(('aiohttp.web', 'tidings.server', "
             "'tidings.node', 'tidings.session', 'tidings.hub', 'tidings.store', 'tidings.broker', "
             "'tidings.config', 'asyncpg', 'redis', 'aio_pika', 'nats'))]; print(bad)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip() == "[]"


async def test_stays_connected_through_silence_by_answering_and_sending_pings(make_server):
    async with make_server(ping_interval=0.5, pong_timeout=0.5) as node, \
            RealtimeClient(node.ws_url, user="quiet", backoff=QUICK) as client:
        await asyncio.sleep(2.5)  # several ping rounds each way, no command sent
        assert client.state == State.CONNECTED and client.connects == 1
        assert (await client.send("quiet", 1)).offset == 1


async def test_a_node_that_stops_answering_is_left_and_found_again(tmp_path):
    port = free_port()
    env = {"TIDINGS_PORT": str(port), "TIDINGS_NODE_NAME": "frozen",
           "TIDINGS_STORE": f"sqlite:///{tmp_path / 'frozen.db'}",
           "TIDINGS_PING_INTERVAL": "1", "TIDINGS_PONG_TIMEOUT": "1"}
    loop = asyncio.get_running_loop()
    proc = await loop.run_in_executor(None, start_process, env)
    try:
        async with RealtimeClient(f"ws://127.0.0.1:{port}/ws", user="eve", backoff=QUICK,
                                  command_timeout=2) as client:
            proc.send_signal(signal.SIGSTOP)  # the socket stays open, nothing answers
            await client.wait_for(State.DISCONNECTED, 6)
            assert client.last_close[0] == 1006
            proc.send_signal(signal.SIGCONT)
            await client.wait_for(State.CONNECTED, 15)
            assert client.connects >= 2
    finally:
        proc.send_signal(signal.SIGCONT)
        _stop(proc)
