"""The store's message-center half, against SQLite, a real PostgreSQL and a real MariaDB:
idempotency keys, inbox messages, exact counts, read state, retention per source,
concurrent nodes.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.store.test_store import (  # noqa: F401
    KEEP,
    running,
    shared_url,
    store,
    store_url,
)
from tidings.model import Publication
from tidings.readstate import InboxSpec, NoSuchMessage, ReadChange, SourceCounts
from tidings.store.base import Duplicate, Idempotency, Retention, Store
from tidings.store.mysql import MySQLStore
from tidings.store.sqlite import SQLiteStore

DAY = Idempotency("k", 86400)


async def _notify(store: Store, user: str, source: str, count: int, *, keep: int = 10_000,
                  age: float = 0.0) -> list[Publication]:
    spec = InboxSpec(user, keep, age)
    return await asyncio.gather(*(
        store.append(f"user:{user}", b'{"n":%d}' % n, retention=KEEP, source=source, inbox=spec)
        for n in range(count)))


# ---- idempotency -----------------------------------------------------------------------


async def test_a_repeated_key_stores_nothing_and_answers_the_first_place(store):
    first = await store.append("room:i", b"1", retention=KEEP, idempotency=DAY)
    again = await store.append("room:i", b"2", retention=KEEP, idempotency=DAY)
    assert isinstance(first, Publication) and isinstance(again, Duplicate)
    assert (again.channel, again.offset, again.epoch) == ("room:i", 1, first.epoch)
    other = await store.append("room:other", b"3", retention=KEEP, idempotency=DAY)
    assert isinstance(other, Publication)  # a key is per channel
    page = await store.history("room:i", limit=10)
    assert [p.data for p in page.publications] == [b"1"]


async def test_repeats_within_one_batch_are_stored_once(store):
    results = await asyncio.gather(*(
        store.append("room:b", b"x", retention=KEEP, idempotency=Idempotency("same", 60))
        for _ in range(20)))
    assert sum(isinstance(r, Publication) for r in results) == 1
    assert {r.offset for r in results} == {1}
    assert (await store.positions(["room:b"]))["room:b"].offset == 1


async def test_a_key_past_its_window_may_be_used_again(store):
    short = Idempotency("brief", 0.1)
    await store.append("room:w", b"1", retention=KEEP, idempotency=short)
    await asyncio.sleep(0.15)
    again = await store.append("room:w", b"2", retention=KEEP, idempotency=short)
    assert isinstance(again, Publication) and again.offset == 2
    await asyncio.sleep(0.15)
    await store.expire()  # drops the expired key rows too
    assert isinstance(await store.append("room:w", b"3", retention=KEEP, idempotency=short),
                      Publication)


async def test_a_key_of_any_length_works_like_a_short_one(store):
    long = Idempotency("ingest:" + "é" * 2000, 60)  # beyond any database's index key limit
    first = await store.append("room:long", b"1", retention=KEEP, idempotency=long)
    again = await store.append("room:long", b"2", retention=KEEP, idempotency=long)
    assert isinstance(again, Duplicate) and again.offset == first.offset
    near = Idempotency("ingest:" + "é" * 1999 + "e", 60)
    assert isinstance(await store.append("room:long", b"3", retention=KEEP, idempotency=near),
                      Publication)


async def test_nodes_racing_on_one_key_store_it_once(shared_url):  # noqa: F811
    async with running(shared_url, shared_url, shared_url) as nodes:
        results = await asyncio.gather(*(
            node.append("user:u", b"1", retention=KEEP, idempotency=Idempotency(f"k{n}", 60))
            for n in range(30) for node in nodes))
    stored = [r for r in results if isinstance(r, Publication)]
    assert len(stored) == 30
    assert sorted(r.offset for r in stored) == list(range(1, 31))
    by_key: dict[int, set] = {}
    for n in range(30):
        by_key[n] = {results[n * 3 + i].offset for i in range(3)}
    assert all(len(offsets) == 1 for offsets in by_key.values())


# ---- inbox messages and counts ---------------------------------------------------------


async def test_publications_with_a_source_become_inbox_messages_with_exact_counts(store):
    await _notify(store, "ann", "billing", 3)
    await _notify(store, "ann", "orders", 1200)  # beyond any "99+" badge
    await store.append("user:ann", b'"chat"', retention=KEEP, inbox=InboxSpec("ann", 10))
    view = await store.inbox_view("ann", limit=2)
    counts = view.counts
    assert counts.unread == counts.unseen == 1203
    assert counts.sources["billing"].to_dict() == {"total": 3, "unread": 3, "unseen": 3}
    assert counts.sources["orders"].total == 1200
    assert counts.offset == 1203 and counts.version == 0  # the chat message is no message
    assert [m.offset for m in view.messages["orders"]] == [1203, 1202]  # newest first
    assert {m.data for m in view.messages["billing"]} <= {b'{"n":0}', b'{"n":1}', b'{"n":2}'}
    assert not any(m.read or m.seen for m in view.messages["billing"])
    assert (await store.inbox_view("nobody", limit=5)).counts.sources == {}


async def test_paging_within_one_source(store):
    await _notify(store, "pat", "crm", 7)
    await _notify(store, "pat", "ops", 2)
    counts, first = await store.inbox_page("pat", "crm", before=None, limit=3)
    assert [m.offset for m in first] == [7, 6, 5] and all(m.source == "crm" for m in first)
    assert set(counts.sources) == {"crm"} and counts.sources["crm"].total == 7
    _, rest = await store.inbox_page("pat", "crm", before=5, limit=10)
    assert [m.offset for m in rest] == [4, 3, 2, 1]


async def test_read_unread_seen_archive_change_exactly_what_they_name(store):
    await _notify(store, "kim", "a", 5)  # offsets 1-5
    await _notify(store, "kim", "b", 3)  # offsets 6-8
    changed, counts = await store.inbox_change("kim", ReadChange("read", offset=2))
    assert changed == 1 and counts.sources["a"].unread == 4 and counts.version == 1
    changed, counts = await store.inbox_change("kim", ReadChange("read", offset=2))
    assert changed == 0 and counts.version == 2  # already read: nothing changed
    changed, counts = await store.inbox_change("kim", ReadChange("read", source="a", upto=4))
    assert changed == 3 and counts.sources["a"].unread == 1  # 1, 3, 4 read now; 5 left
    changed, counts = await store.inbox_change("kim", ReadChange("unread", offset=3))
    assert changed == 1 and counts.sources["a"].unread == 2
    changed, counts = await store.inbox_change("kim", ReadChange("seen", source="b"))
    assert changed == 3
    assert counts.sources["b"].to_dict() == {"total": 3, "unread": 3, "unseen": 0}
    changed, counts = await store.inbox_change("kim", ReadChange("archive", offset=8))
    assert counts.sources["b"].total == 2 and counts.unread == 4
    assert counts.offset == 8  # archived, but still the newest message the counts cover
    _, page = await store.inbox_page("kim", "b", before=None, limit=10)
    assert [m.offset for m in page] == [7, 6]
    changed, counts = await store.inbox_change("kim", ReadChange("read"))
    assert changed == 5 and counts.unread == 0 and counts.unseen == 0  # the archived one too
    with pytest.raises(NoSuchMessage):
        await store.inbox_change("kim", ReadChange("read", offset=99))


async def test_retention_per_source_keeps_the_newest_and_counts_follow(store):
    await _notify(store, "lee", "noisy", 30, keep=10)
    await _notify(store, "lee", "quiet", 2, keep=10)
    counts = (await store.inbox_view("lee", limit=1)).counts
    assert counts.sources["noisy"].total == 10 and counts.sources["quiet"].total == 2
    _, page = await store.inbox_page("lee", "noisy", before=None, limit=100)
    assert [m.offset for m in page] == list(range(30, 20, -1))


async def test_expired_messages_leave_the_counts_at_once(store):
    await _notify(store, "max", "short", 3, age=0.2)
    await _notify(store, "max", "long", 2)
    assert (await store.inbox_view("max", limit=1)).counts.unread == 5
    await asyncio.sleep(0.3)
    counts = (await store.inbox_view("max", limit=5)).counts
    assert set(counts.sources) == {"long"} and counts.unread == 2
    await store.expire()
    assert (await store.inbox_view("max", limit=5)).counts.unread == 2


async def test_concurrent_deliveries_and_reads_from_several_nodes_stay_exact(
        shared_url):  # noqa: F811
    async with running(shared_url, shared_url, shared_url) as nodes:
        spec = InboxSpec("zed", 100_000)

        async def deliver(node: Store, n: int):
            return await node.append("user:zed", b"1", retention=KEEP, source=f"s{n % 4}",
                                     inbox=spec)

        async def read(node: Store, n: int):
            await asyncio.sleep(0.001 * n)
            return await node.inbox_change("zed", ReadChange("read", source=f"s{n % 4}"))

        await asyncio.gather(*(deliver(nodes[n % 3], n) for n in range(300)),
                             *(read(nodes[n % 3], n) for n in range(12)))
        versions = set()
        for node in nodes:
            counts = (await node.inbox_view("zed", limit=1)).counts
            versions.add(counts.version)
            assert sum(c.total for c in counts.sources.values()) == 300
        assert versions == {12}
        # counting the rows one by one agrees with the counts
        unread = 0
        for n in range(4):
            _, page = await nodes[0].inbox_page("zed", f"s{n}", before=None, limit=1000)
            unread += sum(not m.read for m in page)
        assert unread == counts.unread


# ---- shared notifications (the broadcast channel): a cursor per user and source ---------


async def _broadcast(store: Store, source: str, count: int, size: int = 1000) -> list:
    return [await store.append("broadcast", b'{"n":%d}' % n, retention=Retention(size),
                               source=source) for n in range(count)]


async def _inbox_rows(store: Store) -> int:
    """Rows of the per-user inbox table, however many users there are."""
    sql = "SELECT COUNT(*) FROM tidings_inbox"
    if isinstance(store, SQLiteStore):
        return await store._on(store._read_thread,
                               lambda: store._reader_conn.execute(sql).fetchone()[0])
    if isinstance(store, MySQLStore):
        async with store._connection() as conn, conn.cursor() as cur:
            await cur.execute(sql)
            return (await cur.fetchone())[0]
    async with store._pool_or_fail().acquire() as conn:
        return await conn.fetchval(sql)


def _shared(store: Store) -> Store:
    store.shared_channel = "broadcast"  # as the node sets it
    return store


async def test_shared_notifications_count_for_every_user_without_a_row_per_user(store):
    store = _shared(store)
    await _broadcast(store, "ops", 3)
    await store.append("broadcast", b'{"plain":1}', retention=KEEP)  # no source: not one
    await _notify(store, "ann", "billing", 2)
    for user, own in (("ann", 2), ("bob", 0)):
        view = orjson.loads(orjson.dumps((await store.inbox_view(user, limit=2)).to_dict()))
        ops = view["shared"]["ops"]
        assert (ops["total"], ops["unread"], ops["unseen"]) == (3, 3, 3)
        assert [(m["offset"], m["data"], m["read"], m["seen"]) for m in ops["messages"]] == [
            (3, {"n": 2}, False, False), (2, {"n": 1}, False, False)]
        assert view["shared_offset"] == 4 and view["unread"] == 3 + own
    assert await _inbox_rows(store) == 2  # ann's own two; the broadcast added none


async def test_a_shared_source_is_read_up_to_an_offset_for_one_user_only(store):
    store = _shared(store)
    await _broadcast(store, "ops", 5)
    await _broadcast(store, "news", 2)
    changed, counts = await store.inbox_change("ann", ReadChange("read", source="ops",
                                                                 upto=3, shared=True))
    assert changed == 3
    assert counts.shared["ops"].unread == 2 and counts.shared["news"].unread == 2
    assert counts.unread == 4
    changed, counts = await store.inbox_change("ann", ReadChange("read", source="ops",
                                                                 upto=2, shared=True))
    assert changed == 0 and counts.shared["ops"].unread == 2  # a cursor never moves back
    view = await store.inbox_view("ann", limit=10)
    assert [(m.offset, m.read) for m in view.shared_messages["ops"]] == [
        (5, False), (4, False), (3, True), (2, True), (1, True)]
    assert (await store.inbox_view("bob", limit=1)).counts.shared["ops"].unread == 5
    await _broadcast(store, "ops", 1)  # newer than the cursor: unread
    assert (await store.inbox_view("ann", limit=1)).counts.shared["ops"].unread == 3


async def test_seen_and_read_of_everything_move_the_shared_cursors(store):
    store = _shared(store)
    await _broadcast(store, "ops", 2)
    await _notify(store, "ann", "billing", 1)
    changed, counts = await store.inbox_change("ann", ReadChange("seen"))
    assert changed == 3 and counts.unseen == 0 and counts.unread == 3
    changed, counts = await store.inbox_change("ann", ReadChange("read"))
    assert changed == 3 and counts.unread == 0
    view = await store.inbox_view("ann", limit=10)
    assert all(m.read and m.seen for m in view.shared_messages["ops"])


async def test_shared_notifications_the_channel_no_longer_keeps_leave_the_counts(store):
    store = _shared(store)
    await _broadcast(store, "ops", 4, size=3)  # the oldest is trimmed away
    await store.inbox_change("ann", ReadChange("read", source="ops", upto=2, shared=True))
    counts = (await store.inbox_view("ann", limit=1)).counts
    assert counts.shared["ops"] == SourceCounts(total=3, unread=2, unseen=2)
