"""Any client on any node: three node processes per broker, one PostgreSQL store.

Each test runs once per broker (Redis, RabbitMQ, NATS).
"""

from __future__ import annotations

import asyncio
import time

from tests.cluster.conftest import Cluster


def _offsets(pubs: list[dict]) -> list[int]:
    return [pub["offset"] for pub in pubs]


async def test_direct_message_reaches_both_tabs_on_other_nodes_once(cluster: Cluster):
    alice = await cluster.client(0, "alice")
    bob_tab1, bob_tab2 = await cluster.client(1, "bob"), await cluster.client(2, "bob")
    sent = await alice.client.call("send", {"user": "bob", "data": {"text": "hi"}})
    for tab in (bob_tab1, bob_tab2):
        pubs = await tab.drain("user:bob", 1)
        assert _offsets(pubs) == [sent["offset"]]
        await tab.client.no_push()


async def test_direct_message_goes_only_to_the_node_holding_the_user(cluster: Cluster):
    await cluster.client(0, "alice")
    carol = await cluster.client(1, "carol")
    n1, n3 = cluster.nodes[0], cluster.nodes[2]
    await asyncio.sleep(0.5)  # let connect-time traffic settle
    before_n1 = await n1.metric("tidings_broker_received_total")
    before_n3 = await n3.metric("tidings_broker_received_total")
    for n in range(20):
        await cluster.nodes[0].post("/api/send", {"user": "carol", "data": n})
    assert len(await carol.drain("user:carol", 20)) == 20
    await asyncio.sleep(0.3)
    # node 3 holds nobody involved: not one of the 20 messages reached it
    assert await n3.metric("tidings_broker_received_total") - before_n3 < 20
    assert await n1.metric("tidings_broker_received_total") - before_n1 < 20
    received_here = await cluster.nodes[1].metric("tidings_broker_received_total")
    assert received_here >= 20


async def test_room_across_nodes_exactly_once_in_offset_order(cluster: Cluster):
    members = [await cluster.client(i % 3, f"m{i}") for i in range(6)]
    for member in members:
        await member.join("room:spread")
    per_publisher = 350
    publishers = members[:3]  # one on each node

    async def publish(member, tag):
        for n in range(per_publisher):
            await member.client.call("publish", {"channel": "room:spread",
                                                 "data": {"from": tag, "n": n}})

    await asyncio.gather(*(publish(m, i) for i, m in enumerate(publishers)))
    total = per_publisher * len(publishers)
    for member in members:
        pubs = await member.drain("room:spread", total, timeout=30)
        assert _offsets(pubs) == list(range(1, total + 1)), member.user
        for tag in range(3):  # each publisher's messages keep their order
            mine = [p["data"]["n"] for p in pubs if p["data"]["from"] == tag]
            assert mine == list(range(per_publisher))


async def test_broadcast_reaches_every_client_on_every_node(cluster: Cluster):
    clients = [await cluster.client(i % 3, f"b{i}") for i in range(6)]
    await cluster.nodes[2].post("/api/broadcast", {"data": "everyone"})
    for client in clients:
        pubs = await client.drain("broadcast", 1)
        assert [p["data"] for p in pubs] == ["everyone"]


async def test_presence_join_leave_and_info_are_cluster_wide(cluster: Cluster):
    alice, bob, carol = [await cluster.client(i, u) for i, u in enumerate(("alice", "bob", "carol"))]
    for member in (alice, bob, carol):
        await member.join("room:p")
    joined = set()
    while joined != {"bob", "carol"}:
        join = await alice.client.push("join")
        if join["info"]["user"] != "alice":
            joined.add(join["info"]["user"])
    presence = await cluster.nodes[1].get("/api/presence", channel="room:p")
    assert sorted(c["user"] for c in presence["clients"].values()) == ["alice", "bob", "carol"]
    await carol.client.call("unsubscribe", {"channel": "room:p"})
    leave = await alice.client.push("leave")
    assert leave["info"]["user"] == "carol"
    presence = await alice.client.call("presence", {"channel": "room:p"})
    assert sorted(c["user"] for c in presence["clients"].values()) == ["alice", "bob"]
    expected = {"n1": 1, "n2": 1, "n3": 1}  # counts travel with heartbeats (every ttl/3)
    for _ in range(50):
        info = await cluster.nodes[0].get("/api/info")
        counts = {n["name"]: n["connections"] for n in info["nodes"]}
        if counts == expected:
            break
        await asyncio.sleep(0.1)
    assert counts == expected


async def test_sigkilled_node_clients_recover_everything_elsewhere(cluster: Cluster):
    members = [await cluster.client(i % 3, f"k{i}") for i in range(6)]
    for member in members:
        await member.join("room:crash")
    total = 300
    publisher = cluster.nodes[0]

    async def publish():
        for n in range(total):
            await publisher.post("/api/publish", {"channel": "room:crash", "data": n})

    task = asyncio.create_task(publish())
    await asyncio.sleep(0.4)
    cluster.nodes[1].kill()  # mid-stream
    victims = [m for i, m in enumerate(members) if i % 3 == 1]
    for member in victims:  # their library reconnects to another node and recovers
        await member.close()
        await member.connect(2)
    await task
    for member in members:
        pubs = await member.drain("room:crash", total, timeout=30)
        assert _offsets(pubs) == list(range(1, total + 1)), member.user
        assert [p["data"] for p in pubs] == list(range(total))


async def test_dead_node_presence_expires(cluster: Cluster):
    alice = await cluster.client(0, "alice")
    doomed = await cluster.client(2, "doomed")
    for member in (alice, doomed):
        await member.join("room:ttl")
    presence = await cluster.nodes[0].get("/api/presence", channel="room:ttl")
    assert len(presence["clients"]) == 2
    cluster.nodes[2].kill()
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < 10:  # the cluster ttl is 2 s in these tests
        presence = await cluster.nodes[0].get("/api/presence", channel="room:ttl")
        users = [c["user"] for c in presence["clients"].values()]
        info = await cluster.nodes[0].get("/api/info")
        names = sorted(n["name"] for n in info["nodes"])
        if users == ["alice"] and names == ["n1", "n2"]:
            break
        await asyncio.sleep(0.25)
    assert users == ["alice"]
    assert names == ["n1", "n2"]
    assert time.monotonic() - killed_at < 2 + 2  # within the ttl, plus a heartbeat's slack


async def test_sigterm_drains_clients_to_other_nodes(cluster: Cluster):
    leaving = await cluster.client(0, "leaving")
    code = await asyncio.get_running_loop().run_in_executor(None, cluster.nodes[0].terminate)
    notice = await leaving.client.push("disconnect")
    assert notice["code"] == 4006 and notice["reconnect"] is True
    close_code, _ = await leaving.client.closed()
    assert close_code == 4006
    assert code == 0
    await leaving.connect(1)  # and it is welcome on another node
