"""ApiClient against a real node: every method's typed result, errors by status and code."""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tidings.client import ApiClient, ApiError, Unreachable


async def test_publish_send_broadcast_return_positions(server):
    async with ApiClient(server.url) as api:
        first = await api.publish("room:lobby", {"text": "hi"}, source="ops")
        second = await api.publish("room:lobby", [1, 2])
        sent = await api.send("bob", "psst")
        everyone = await api.broadcast({"text": "release"})
        ephemeral = await api.publish("voice:r1", {"mute": "bob"})
    assert (first.channel, first.offset, second.offset) == ("room:lobby", 1, 2)
    assert first.epoch == second.epoch and first.epoch
    assert (sent.channel, sent.offset) == ("user:bob", 1)
    assert (everyone.channel, everyone.offset) == ("broadcast", 1)
    assert (ephemeral.channel, ephemeral.offset, ephemeral.epoch) == ("voice:r1", None, None)


async def test_history_pages_with_decoded_data(server):
    async with ApiClient(server.url) as api:
        for n in range(1, 6):
            await api.publish("room:h", {"n": n}, source="billing")
        newest = await api.history("room:h", limit=2, reverse=True)
        older = await api.history("room:h", limit=2, reverse=True, since=newest.publications[-1].offset)
        forward = await api.history("room:h", since=3)
    assert newest.offset == 5
    assert [p.data["n"] for p in newest.publications] == [5, 4]
    assert [p.offset for p in older.publications] == [3, 2]
    assert [p.offset for p in forward.publications] == [4, 5]
    assert newest.publications[0].source == "billing" and newest.publications[0].sender is None


async def test_presence_lists_connections_by_client_id(server):
    alice = await server.client("alice")
    await alice.call("subscribe", {"channel": "room:p"})
    async with ApiClient(server.url) as api:
        presence = await api.presence("room:p")
    member = presence.clients[alice.connect_result["client"]]
    assert (member.user, member.node) == ("alice", server.node.name)
    await alice.close()


async def test_disconnect_closes_the_users_connection(server):
    bob = await server.client("bob")
    async with ApiClient(server.url) as api:
        result = await api.disconnect("bob", reconnect=False)
    assert (result.user, result.closed_here) == ("bob", 1)
    assert (await bob.closed())[0] == 4502


async def test_info_and_health_describe_the_node(server):
    async with ApiClient(server.url) as api:
        info = await api.info()
        health = await api.health()
    assert info.node == server.node.name and [n.name for n in info.nodes] == [server.node.name]
    assert health.ok and health.status == "ok" and health.node == server.node.name


async def test_errors_carry_status_code_and_message(server):
    async with ApiClient(server.url) as api:
        with pytest.raises(ApiError) as bad_channel:
            await api.publish("nowhere:x", 1)
        with pytest.raises(ApiError) as no_history:
            await api.history("voice:r1")
    assert (bad_channel.value.status, bad_channel.value.code) == (400, 107)
    assert (no_history.value.status, no_history.value.code) == (400, 107)
    assert "history" in no_history.value.message


async def test_api_key_is_sent_and_a_wrong_one_refused(make_server):
    async with make_server(api_key="k3y-for-test") as node:
        async with ApiClient(node.url, api_key="k3y-for-test") as good:
            assert (await good.publish("room:k", 1)).offset == 1
        async with ApiClient(node.url, api_key="wrong") as bad:
            with pytest.raises(ApiError) as refused:
                await bad.publish("room:k", 1)
        async with ApiClient(node.url) as none:
            with pytest.raises(ApiError):
                await none.info()
    assert (refused.value.status, refused.value.code) == (401, 105)


async def test_a_port_nobody_listens_on_is_unreachable():
    async with ApiClient(f"http://127.0.0.1:{free_port()}", timeout=2) as api:
        with pytest.raises(Unreachable):
            await api.info()


async def test_inbox_returns_the_users_message_center(server):
    async with ApiClient(server.url) as api:
        await api.send("bob", {"text": "invoice ready"}, source="billing")
        inbox = await api.inbox("bob")
    assert isinstance(inbox, dict) and "billing" in str(inbox)
