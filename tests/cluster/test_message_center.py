"""The message center across real `tidings serve` processes: two nodes consume one queue of
each real system as competing consumers over one PostgreSQL store and a Redis broker.

- A stream of notifications to 100 users: every one stored exactly once, every unread count
  exact, every online recipient (on either node) got each of theirs once. CI sends
  `INGEST_COUNT` (2,000) per system; the benchmark (`python -m bench --only ingest`) sends
  10,000 per system through the same path.
- A node SIGKILLed while consuming: after the other node (and the restarted one) take over,
  nothing is lost and nothing is stored twice.
- A Kafka consumer group rebalances when a node joins and when it leaves.
- `read` on one tab updates the counts on the user's other tab, on the other node.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import asyncpg

from tests.cluster.conftest import PG, Cluster, Member, broker_url, clean_broker, drop_schema
from tests.ingest.conftest import System, notification, system  # noqa: F401

INGEST_COUNT = int(os.environ.get("TIDINGS_TEST_INGEST_COUNT", "2000"))
USERS = 100


def _cluster(system: System, tag: str, size: int = 2) -> Cluster:
    source = {**system.source(), "redeliver_after": 2.0, "max_in_flight": 200}
    return Cluster("redis", broker_url("redis", tag), tag, size=size,
                   TIDINGS_MESSAGE_CENTER__INGEST=json.dumps({"notifications": source}))


async def _start(cluster: Cluster) -> None:
    await asyncio.get_running_loop().run_in_executor(None, cluster.start)


async def _stored(schema: str) -> dict[str, tuple[int, int, int]]:
    """Per user: inbox messages, distinct notifications among them, and unread ones."""
    conn = await asyncpg.connect(PG)
    try:
        rows = await conn.fetch(
            f"SELECT recipient, count(*) AS n, count(DISTINCT data) AS d, "
            f"count(*) FILTER (WHERE is_read = 0) AS u FROM {schema}.tidings_inbox "
            "GROUP BY recipient")
        return {r["recipient"]: (r["n"], r["d"], r["u"]) for r in rows}
    finally:
        await conn.close()


async def _wait_stored(schema: str, total: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stored = await _stored(schema)
        if sum(n for n, _, _ in stored.values()) >= total or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(0.5)


def _bodies(count: int, prefix: str = "n") -> list[bytes]:
    return [notification(f"{prefix}{n}", {"user": f"u{n % USERS}"}, {"n": n, "id": f"{prefix}{n}"})
            for n in range(count)]


async def _teardown(cluster: Cluster, tag: str, members: list[Member]) -> None:
    for member in members:
        await member.close()
    cluster.stop()
    await drop_schema(tag)
    await clean_broker("redis", tag)


async def test_a_stream_of_notifications_is_stored_once_counted_exactly_delivered_once(system):
    tag = f"t{uuid.uuid4().hex[:10]}"
    cluster = _cluster(system, tag)
    await _start(cluster)
    members: list[Member] = []
    try:
        online = [f"u{n}" for n in range(0, USERS, 2)]  # half the users, on both nodes
        members = [await cluster.client(i % 2, user) for i, user in enumerate(online)]
        await system.put_many(_bodies(INGEST_COUNT))
        stored = await _wait_stored(tag, INGEST_COUNT)
        per_user = INGEST_COUNT // USERS
        assert stored == {f"u{n}": (per_user, per_user, per_user) for n in range(USERS)}
        for member in members:
            pubs = await member.drain(f"user:{member.user}", per_user, timeout=30)
            numbers = [p["data"]["n"] for p in pubs]
            assert sorted(numbers) == list(range(int(member.user[1:]), INGEST_COUNT, USERS))
            counts = await member.client.call("inbox", {"limit": 1})
            assert (counts["unread"], counts["sources"]["billing"]["total"]) == (per_user,) * 2
        # both nodes did their share of the work
        shares = [await node.metric("tidings_store_publications_total")
                  for node in cluster.nodes]
        assert sum(shares) >= INGEST_COUNT
    finally:
        await _teardown(cluster, tag, members)


async def test_a_node_killed_while_consuming_loses_nothing_and_stores_nothing_twice(system):
    tag = f"t{uuid.uuid4().hex[:10]}"
    cluster = _cluster(system, tag)
    await _start(cluster)
    try:
        count = INGEST_COUNT // 2
        await system.put_many(_bodies(count))
        deadline = time.monotonic() + 60
        while sum(n for n, _, _ in (await _stored(tag)).values()) < count // 10:
            assert time.monotonic() < deadline, "nothing was stored"
            await asyncio.sleep(0.05)
        cluster.nodes[0].kill()  # mid-stream, with messages taken and not yet acknowledged
        await system.put_many(_bodies(count, prefix="after"))
        await asyncio.get_running_loop().run_in_executor(None, cluster.nodes[0].start)
        stored = await _wait_stored(tag, 2 * count, timeout=150)
        per_user = 2 * count // USERS
        assert stored == {f"u{n}": (per_user, per_user, per_user) for n in range(USERS)}
        await asyncio.sleep(3)  # nothing more arrives late: each notification once
        assert await _stored(tag) == stored
    finally:
        await _teardown(cluster, tag, [])


async def test_kafka_consumer_group_rebalances_when_a_node_joins_and_leaves():
    system = System("kafka")
    await system.open()
    tag = f"t{uuid.uuid4().hex[:10]}"
    cluster = _cluster(system, tag)
    try:
        await asyncio.get_running_loop().run_in_executor(None, cluster.nodes[0].start)
        await system.put_many(_bodies(400, prefix="alone"))
        await _wait_stored(tag, 400)
        await asyncio.get_running_loop().run_in_executor(None, cluster.nodes[1].start)
        joined = cluster.nodes[1]
        deadline = time.monotonic() + 60
        sent = 400
        while await joined.metric("tidings_store_publications_total") == 0:  # it got partitions
            assert time.monotonic() < deadline, "the joining node never got a partition"
            await system.put_many(_bodies(40, prefix=f"join{sent}-"))
            sent += 40
            await asyncio.sleep(0.5)
        assert joined.terminate() == 0  # leaves the group: node 1 takes every partition back
        await system.put_many(_bodies(400, prefix="left"))
        sent += 400
        stored = await _wait_stored(tag, sent)
        assert sum(n for n, _, _ in stored.values()) == sent
        assert all(n == d for n, d, _ in stored.values())
    finally:
        await _teardown(cluster, tag, [])
        await system.close()


async def test_read_on_one_tab_updates_the_other_tab_on_the_other_node():
    tag = f"t{uuid.uuid4().hex[:10]}"
    cluster = Cluster("redis", broker_url("redis", tag), tag, size=2)
    await _start(cluster)
    tabs: list[Member] = []
    try:
        for n in range(3):
            await cluster.nodes[0].post("/api/send", {"user": "ivy", "source": "crm",
                                                      "data": {"n": n}})
        tabs = [await cluster.client(0, "ivy"), await cluster.client(1, "ivy")]
        reply = await tabs[0].client.call("read", {"offset": 2})
        pushed = await tabs[1].client.push("inbox", timeout=10)
        assert pushed["unread"] == 2 == reply["unread"]
        assert pushed["version"] == reply["version"] == 1
        await tabs[1].client.call("seen", {"source": "crm"})
        assert (await tabs[0].client.push("inbox", timeout=10))["unseen"] == 0
    finally:
        await _teardown(cluster, tag, tabs)
