"""The ingest contract, against real RabbitMQ, Kafka (tansu), Redis and NATS JetStream.

A node consumes a real queue; a backend puts notifications on it. What every system must
do alike: store and deliver a notification, acknowledge it only once stored, dead-letter
poison with its reason without blocking the queue, store a repeated id once, hand a
message back when the store fails, and get its connection back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import orjson
import pytest

from tests.ingest.conftest import System, notification, restore
from tests.store.test_store import mysql_execute, throwaway_database, throwaway_schema
from tidings.ingest.notification import REASONS
from tidings.store.mysql import split_url as mysql_split_url
from tidings.store.postgres import split_url as pg_split_url

PG = "postgresql://postgres@127.0.0.1:5432/test"


def center(system: System, **source) -> dict:
    return {"ingest": {"billing-queue": system.source(**source)}}


async def until(predicate, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def metric(server, name: str, **labels) -> float:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as resp:
            text = await resp.text()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def inbox(server, user: str, limit: int = 10) -> dict:
    """The user's inbox as a client would read it (JSON, not the node's values)."""
    return orjson.loads(orjson.dumps(await server.node.inbox.view(user, limit=limit)))


async def settled(server, count: int) -> None:
    """Wait until `count` queue messages were stored or dead-lettered."""
    async def done() -> bool:
        stored = await metric(server, "tidings_ingested_total", source="billing-queue")
        dead = sum([await metric(server, "tidings_dead_letters_total", source="billing-queue",
                                 reason=reason) for reason in REASONS])
        return stored + dead >= count
    await until(done, what=f"{count} messages settled")


async def test_a_notification_is_stored_delivered_live_and_acknowledged(system, make_server):
    async with make_server(message_center=center(system)) as server:
        alice = await server.client("alice")
        await system.put(notification("inv-1", {"user": "alice"}, {"title": "Invoice 1"}))
        pub = await alice.push("pub", timeout=30)
        assert pub["channel"] == "user:alice" and pub["source"] == "billing"
        assert pub["data"] == {"title": "Invoice 1"}
        view = await alice.call("inbox", {})
        assert view["unread"] == 1
        assert view["sources"]["billing"]["messages"][0]["offset"] == pub["offset"]
        await settled(server, 1)
        await until(lambda: _none_pending(system), what="the acknowledgement")
        assert await metric(server, "tidings_ingested_total", source="billing-queue") == 1


async def _none_pending(system: System) -> bool:
    return await system.pending() == 0


POISON = [
    (b"{not json", "not_json"),
    (notification("big", {"user": "bob"}, "x" * 3000), "too_large"),
    (b'{"source":"billing","to":{"user":"bob"},"data":1}', "bad_notification"),  # no id
    (notification("who", {"group": "admins"}), "unknown_recipient"),
    (notification("voice", {"channel": "voice:r1"}), "unroutable_channel"),
    (notification("nope", {"channel": "nowhere:x"}), "unroutable_channel"),
    (notification("many", {"users": [f"u{n}" for n in range(6)]}), "bad_notification"),
]


async def test_poison_of_every_kind_lands_in_the_dead_letter_with_its_reason(system,
                                                                             make_server):
    settings = {**center(system), "max_notification_bytes": 2048, "max_recipients": 5}
    async with make_server(message_center=settings) as server:
        bob = await server.client("bob")
        for body, _ in POISON:
            await system.put(body)
        await system.put(notification("fine", {"user": "bob"}))
        pub = await bob.push("pub", timeout=30)  # poison before it did not block the queue
        assert pub["data"] == {"title": "fine"}
        dead = await system.dead(len(POISON))
        assert sorted(dead) == sorted(POISON)
        assert await metric(server, "tidings_dead_letters_total", source="billing-queue",
                            reason="unroutable_channel") == 2
        await settled(server, len(POISON) + 1)
        assert await system.pending() == 0
        assert (await inbox(server, "bob"))["unread"] == 1


async def test_a_repeated_id_is_stored_once_for_every_recipient(system, make_server):
    async with make_server(message_center=center(system)) as server:
        team = {"users": ["ann", "ben", "cat"]}
        for _ in range(3):
            await system.put(notification("release-7", team))
        await system.put(notification("release-8", team))
        await settled(server, 4)
        assert await system.pending() == 0
        for user in team["users"]:
            view = await inbox(server, user)
            assert view["sources"]["billing"]["total"] == 2, user
            # Kafka keeps order per partition only, and these four are unkeyed
            titles = sorted(m["data"]["title"] for m in view["sources"]["billing"]["messages"])
            assert titles == ["release-7", "release-8"], user


@contextlib.asynccontextmanager
async def _shared_store(kind: str) -> AsyncIterator[tuple[str, Callable[[str], Awaitable]]]:
    """A throwaway PostgreSQL schema or MariaDB database: its store URL, and a way to run
    SQL on its tables (to break and mend them under a running node)."""
    if kind == "mysql":
        async with throwaway_database() as url:
            database = mysql_split_url(url)[1]
            yield url, lambda sql: mysql_execute(sql, database=database)
        return
    async with throwaway_schema() as url:
        dsn, schema = pg_split_url(url)
        db = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            yield url, db.execute
        finally:
            await db.close()


@pytest.mark.parametrize("store_kind", ["postgresql", "mysql"])
async def test_a_store_failure_hands_the_message_back_and_it_is_stored_once(system,
                                                                            make_server,
                                                                            store_kind):
    async with _shared_store(store_kind) as (url, execute), make_server(
            store=url, message_center=center(system)) as server:
        await server.node.inbox.view("dan", limit=1)  # the tables exist now
        await execute("ALTER TABLE tidings_inbox RENAME TO broken")
        await system.put(notification("while-down", {"user": "dan"}))
        await until(lambda: metric(server, "tidings_ingest_retries_total",
                                   source="billing-queue"), what="a retry")
        assert await system.pending() >= 1  # not acknowledged: nothing was stored
        await execute("ALTER TABLE broken RENAME TO tidings_inbox")
        await settled(server, 1)
        await until(lambda: _none_pending(system), what="the acknowledgement")
        assert (await inbox(server, "dan"))["sources"]["billing"]["total"] == 1
        history = await server.node.store.history("user:dan", limit=10)
        assert len(history.publications) == 1


@pytest.mark.parametrize("system", ["amqp", "redis", "nats"], indirect=True)
async def test_a_consumer_whose_connection_drops_reconnects_and_resumes(system, make_server,
                                                                        relay_for):
    relay = await relay_for(system.kind)
    async with make_server(message_center=center(
            system, url=system.url.replace(str(system.port), str(relay.port)))) as server:
        eve = await server.client("eve")
        await system.put(notification("before", {"user": "eve"}))
        assert (await eve.push("pub", timeout=30))["data"] == {"title": "before"}
        await relay.cut()
        await system.put(notification("during", {"user": "eve"}))
        await asyncio.sleep(1.0)
        await restore(relay)
        assert (await eve.push("pub", timeout=30))["data"] == {"title": "during"}
        (source,) = server.node.intake.sources
        assert source.reconnects >= 1 and source.connected


async def test_a_kafka_consumer_resumes_after_its_broker_restarts(private_tansu, make_server):
    await asyncio.to_thread(private_tansu.start)
    system = System("kafka", port=private_tansu.port)
    await system.open()
    try:
        async with make_server(message_center=center(system)) as server:
            eve = await server.client("eve")
            await system.put(notification("before", {"user": "eve"}))
            assert (await eve.push("pub", timeout=30))["data"] == {"title": "before"}
            await asyncio.to_thread(private_tansu.kill)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(private_tansu.start)  # empty again: memory storage
            await system.close()
            system = System("kafka", port=private_tansu.port, tag=system.tag)
            await system.open()  # the topics again
            await system.put(notification("after", {"user": "eve"}))
            assert (await eve.push("pub", timeout=60))["data"] == {"title": "after"}
    finally:
        await system.close()


@pytest.mark.parametrize("system", ["amqp", "redis", "nats"], indirect=True)
async def test_a_stalled_store_holds_at_most_max_in_flight_messages_unacknowledged(
        system, make_server):
    """Backpressure: with the store stalled, the consumer takes no more than its window."""
    schema = f"t{uuid.uuid4().hex[:10]}"
    db = await asyncpg.connect(PG)
    try:
        async with make_server(store=f"{PG}?schema={schema}",
                               message_center=center(system, max_in_flight=5)) as server:
            await server.node.inbox.view("fox", limit=1)  # the schema exists now
            async with db.transaction():
                await db.execute(f"LOCK TABLE {schema}.tidings_inbox IN ACCESS EXCLUSIVE MODE")
                await system.put_many([notification(f"s{n}", {"user": "fox"}) for n in range(40)])
                await asyncio.sleep(2.0)
                assert await _taken(system) <= 5
            await settled(server, 40)
            assert (await inbox(server, "fox"))["sources"]["billing"]["total"] == 40
    finally:
        await db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await db.close()


async def _taken(system: System) -> int:
    """Messages handed to a consumer and not acknowledged yet."""
    if system.kind == "redis":
        return (await system._redis.xpending(system.queue, f"{system.tag}-group"))["pending"]
    if system.kind == "nats":
        info = await system._js.consumer_info(system.tag, f"{system.tag}-group")
        return info.num_ack_pending
    listing = await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages_unacknowledged"],
        capture_output=True, text=True, timeout=60, check=True).stdout)
    return next(int(line.split("\t")[1]) for line in listing.splitlines()
                if line.split("\t")[0] == system.queue)
