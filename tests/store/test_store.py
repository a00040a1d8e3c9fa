"""The store contract, run against SQLite and a real PostgreSQL (a throwaway schema each test)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tidings.store import RecoveryImpossible, Retention, StoreError, open_store
from tidings.store.base import Store

PG = "postgresql://postgres@127.0.0.1:5432/test"
KEEP = Retention(1000)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    schema = f"t{uuid.uuid4().hex[:10]}"
    yield f"{PG}?schema={schema}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


@pytest.fixture
async def store(store_url):
    opened = open_store(store_url)
    await opened.start()
    yield opened
    await opened.close()


async def _fill(store: Store, channel: str, count: int, retention: Retention = KEEP):
    return [await store.append(channel, str(n).encode(), retention=retention)
            for n in range(count)]


async def test_offsets_start_at_one_and_have_no_gaps_per_channel(store):
    a = await asyncio.gather(*(store.append("room:a", b"1", retention=KEEP) for _ in range(50)))
    b = await _fill(store, "room:b", 3)
    assert sorted(p.offset for p in a) == list(range(1, 51))
    assert [p.offset for p in b] == [1, 2, 3]
    assert a[0].epoch == b[0].epoch  # one epoch per store


async def test_restart_keeps_history_offsets_and_epoch(store_url):
    first = open_store(store_url)
    await first.start()
    pubs = await _fill(first, "room:r", 3)
    await first.close()
    second = open_store(store_url)
    await second.start()
    try:
        page = await second.history("room:r", limit=10)
        assert [p.data for p in page.publications] == [b"0", b"1", b"2"]
        assert page.position.epoch == pubs[0].epoch
        assert (await second.append("room:r", b"3", retention=KEEP)).offset == 4
    finally:
        await second.close()


async def test_history_pages_forward_and_reverse(store):
    await _fill(store, "room:h", 7)
    forward = await store.history("room:h", limit=3, since=2)
    assert [p.offset for p in forward.publications] == [3, 4, 5]
    newest = await store.history("room:h", limit=3, reverse=True)
    assert [p.offset for p in newest.publications] == [7, 6, 5]
    older = await store.history("room:h", limit=3, reverse=True, since=3)
    assert [p.offset for p in older.publications] == [2, 1]
    assert newest.position.offset == 7


async def test_unwritten_channel_has_offset_zero_and_the_store_epoch(store):
    pubs = await _fill(store, "room:x", 1)
    positions = await store.positions(["room:never"])
    assert positions["room:never"].offset == 0
    assert positions["room:never"].epoch == pubs[0].epoch


async def test_retention_size_trims_oldest(store):
    await _fill(store, "room:t", 10, Retention(4))
    page = await store.history("room:t", limit=100)
    assert [p.offset for p in page.publications] == [7, 8, 9, 10]


async def test_ttl_hides_and_expire_deletes(store):
    await _fill(store, "room:ttl", 2, Retention(100, ttl=0.2))
    await asyncio.sleep(0.3)
    assert (await store.history("room:ttl", limit=10)).publications == []
    assert await store.expire() == 2


async def test_recover_returns_exactly_the_missed_range(store):
    pubs = await _fill(store, "room:rec", 6)
    missed, position = await store.recover("room:rec", 3, pubs[0].epoch, max_publications=100)
    assert [p.offset for p in missed] == [4, 5, 6]
    assert position.offset == 6
    nothing, _ = await store.recover("room:rec", 6, pubs[0].epoch, max_publications=100)
    assert nothing == []


@pytest.mark.parametrize("offset, epoch, limit, reason", [
    (2, "other", 100, "epoch changed"),
    (9, None, 100, "ahead of the stream"),
    (0, None, 100, "no longer reaches"),
    (1, None, 2, "more than the recovery limit"),
])
async def test_recover_refuses_what_cannot_be_recovered(store, offset, epoch, limit, reason):
    pubs = await _fill(store, "room:no", 6, Retention(3))
    with pytest.raises(RecoveryImpossible) as err:
        await store.recover("room:no", offset, epoch or pubs[0].epoch, max_publications=limit)
    assert reason in err.value.reason


async def test_group_commit_batches_concurrent_appends(store_url):
    grouped, single = open_store(store_url), open_store(store_url, group_commit=False)
    for s in (grouped, single):
        await s.start()
    try:
        await asyncio.gather(*(grouped.append("room:g", b"1", retention=KEEP) for _ in range(100)))
        await asyncio.gather(*(single.append("room:s", b"1", retention=KEEP) for _ in range(20)))
        assert grouped.batches_committed < 10
        assert single.batches_committed == 20
    finally:
        for s in (grouped, single):
            await s.close()


async def test_a_failed_batch_fails_its_waiters_and_the_store_goes_on(store):
    bad = store.append("room:bad", None, retention=KEEP)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await bad
    assert (await store.append("room:bad", b"fine", retention=KEEP)).offset == 1


async def test_several_postgres_nodes_appending_one_channel_keep_offsets_gap_free():
    schema = f"t{uuid.uuid4().hex[:10]}"
    url = f"{PG}?schema={schema}"
    nodes = [open_store(url) for _ in range(3)]
    await asyncio.gather(*(node.start() for node in nodes))  # concurrent first start
    try:
        results = await asyncio.gather(*(
            asyncio.gather(*(node.append("room:shared", b"x", retention=KEEP)
                             for _ in range(300)))
            for node in nodes
        ))
        offsets = sorted(p.offset for pubs in results for p in pubs)
        assert offsets == list(range(1, 901))
        for pubs in results:  # each node's own appends keep their order
            mine = [p.offset for p in pubs]
            assert mine == sorted(mine)
    finally:
        for node in nodes:
            await node.close()
        conn = await asyncpg.connect(PG)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def test_unknown_store_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown store URL scheme"):
        open_store("mongodb://somewhere")
