"""The store contract, run against SQLite, a real PostgreSQL (a throwaway schema each test)
and a real MariaDB (a throwaway database each test).

Tests for the shared databases (PostgreSQL, MariaDB) cover what only a shared database can
get wrong: several nodes appending to one channel, several nodes starting at once, lost
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import asyncmy
import asyncpg
import pytest

from tidings.model import StreamPosition
from tidings.readstate import InboxSpec
from tidings.store import RecoveryImpossible, Retention, StoreError, open_store
from tidings.store.base import (
    Append,
    BatchTimeout,
    CommitUnknown,
    Duplicate,
    Idempotency,
    Store,
)
from tidings.store.mysql import SCHEMA_VERSION as MYSQL_SCHEMA_VERSION
from tidings.store.mysql import split_url as mysql_split_url
from tidings.store.postgres import SCHEMA_VERSION, split_url

PG = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL = "mysql://root@127.0.0.1:3306"
KEEP = Retention(1000)


@contextlib.asynccontextmanager
async def throwaway_schema() -> AsyncIterator[str]:
    """A store URL naming a fresh schema, dropped afterwards.

    The schema name doubles as the connections' application name, so a test can find (and
    terminate) exactly its own store's backends.
    """
    schema = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield f"{PG}?schema={schema}&application_name={schema}"
    finally:
        conn = await asyncpg.connect(PG)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """A MySQL store URL naming a fresh database (the store creates it), dropped afterwards."""
    database = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield f"{MYSQL}/{database}"
    finally:
        await mysql_execute(f"DROP DATABASE IF EXISTS `{database}`")


async def mysql_execute(sql: str, args=(), database: str | None = None) -> list:
    conn = await asyncmy.connect(host="127.0.0.1", user="root", database=database,
                                 autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())
    finally:
        await conn.ensure_closed()


@contextlib.asynccontextmanager
async def running(*urls: str, **options) -> AsyncIterator[list[Store]]:
    """Stores for `urls`, started at the same time, closed afterwards."""
    stores = [open_store(url, **options) for url in urls]
    started = await asyncio.gather(*(s.start() for s in stores), return_exceptions=True)
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield stores
    finally:
        for s, outcome in zip(stores, started):
            if not isinstance(outcome, BaseException):
                await s.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with throwaway_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
async def store_url(request, tmp_path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    elif request.param == "mysql":
        async with throwaway_database() as url:
            yield url
    else:
        async with throwaway_schema() as url:
            yield url


@pytest.fixture(params=["postgresql", "mysql"])
async def shared_url(request) -> AsyncIterator[str]:
    """A database several nodes share."""
    empty = throwaway_database() if request.param == "mysql" else throwaway_schema()
    async with empty as url:
        yield url


@pytest.fixture
async def store(store_url) -> AsyncIterator[Store]:
    async with running(store_url) as (opened,):
        yield opened


async def _fill(store: Store, channel: str, count: int, retention: Retention = KEEP):
    """`count` appends one after another: one batch each."""
    return [await store.append(channel, str(n).encode(), retention=retention)
            for n in range(count)]


async def _burst(store: Store, channel: str, count: int, retention: Retention = KEEP):
    """`count` concurrent appends: they go out in as few batches as group commit makes."""
    return await asyncio.gather(*(store.append(channel, str(n).encode(), retention=retention)
                                  for n in range(count)))


# ---- offsets and epochs ----------------------------------------------------------------


async def test_offsets_start_at_one_and_have_no_gaps_per_channel(store):
    a = await _burst(store, "room:a", 50)
    b = await _fill(store, "room:b", 3)
    c = await _burst(store, "room:a", 5)
    assert [p.offset for p in a + c] == list(range(1, 56))  # in the order of the appends
    assert [p.offset for p in b] == [1, 2, 3]
    assert {p.epoch for p in a + b + c} == {a[0].epoch}  # one epoch for every channel


async def test_unwritten_channel_has_offset_zero_and_the_store_epoch(store):
    pubs = await _fill(store, "room:x", 2)
    positions = await store.positions(["room:never", "room:x"])
    assert positions["room:never"].offset == 0
    assert positions["room:never"].epoch == pubs[0].epoch
    assert positions["room:x"].offset == 2


async def test_restart_keeps_history_offsets_and_epoch(store_url):
    async with running(store_url) as (first,):
        pubs = await _fill(first, "room:r", 3)
    async with running(store_url) as (second,):
        page = await second.history("room:r", limit=10)
        assert [p.data for p in page.publications] == [b"0", b"1", b"2"]
        assert page.position.offset == 3
        assert page.position.epoch == pubs[0].epoch
        assert (await second.positions(["room:new"]))["room:new"].epoch == pubs[0].epoch
        assert (await second.append("room:r", b"3", retention=KEEP)).offset == 4


# ---- history and retention -------------------------------------------------------------


async def test_history_pages_forward_and_reverse(store):
    await _fill(store, "room:h", 7)
    first = await store.history("room:h", limit=3)
    assert [p.offset for p in first.publications] == [1, 2, 3]
    forward = await store.history("room:h", limit=3, since=3)
    assert [p.offset for p in forward.publications] == [4, 5, 6]
    assert [p.offset for p in (await store.history("room:h", limit=3, since=6)).publications] \
        == [7]
    assert (await store.history("room:h", limit=3, since=7)).publications == []
    newest = await store.history("room:h", limit=3, reverse=True)
    assert [p.offset for p in newest.publications] == [7, 6, 5]
    older = await store.history("room:h", limit=3, reverse=True, since=3)
    assert [p.offset for p in older.publications] == [2, 1]
    assert newest.position.offset == 7
    assert [p.data for p in first.publications] == [b"0", b"1", b"2"]


async def test_publications_keep_source_sender_and_time(store):
    before = int(time.time() * 1000)
    pub = await store.append("room:m", b'{"x":1}', retention=KEEP, source="billing",
                             sender="alice")
    (stored,) = (await store.history("room:m", limit=1)).publications
    assert stored == pub
    assert (stored.source, stored.sender, stored.data) == ("billing", "alice", b'{"x":1}')
    assert before <= stored.time <= int(time.time() * 1000)


async def test_retention_size_trims_oldest(store):
    await _fill(store, "room:t", 10, Retention(4))
    assert [p.offset for p in (await store.history("room:t", limit=100)).publications] \
        == [7, 8, 9, 10]
    await _burst(store, "room:t", 10, Retention(4))  # one batch longer than the retention
    page = await store.history("room:t", limit=100)
    assert [p.offset for p in page.publications] == [17, 18, 19, 20]
    assert page.position.offset == 20


async def test_ttl_hides_and_expire_deletes(store):
    await _fill(store, "room:ttl", 2, Retention(100, ttl=0.2))
    await store.append("room:ttl", b"kept", retention=KEEP)
    assert len((await store.history("room:ttl", limit=10)).publications) == 3
    await asyncio.sleep(0.3)
    assert [p.offset for p in (await store.history("room:ttl", limit=10)).publications] == [3]
    assert [p.offset for p in await store.read_range("room:ttl", 0, 3)] == [3]
    assert await store.expire() == 2
    assert await store.expire() == 0
    assert (await store.history("room:ttl", limit=10)).position.offset == 3


# ---- recovery --------------------------------------------------------------------------


async def test_recover_returns_exactly_the_missed_range(store):
    pubs = await _fill(store, "room:rec", 6)
    missed, position = await store.recover("room:rec", 3, pubs[0].epoch, max_publications=100)
    assert missed == pubs[3:]
    assert position.offset == 6
    nothing, position = await store.recover("room:rec", 6, pubs[0].epoch, max_publications=100)
    assert nothing == []
    assert position.offset == 6


@pytest.mark.parametrize("offset, epoch, limit, reason", [
    (2, "other", 100, "epoch changed"),
    (9, None, 100, "ahead of the stream"),
    (0, None, 100, "no longer reaches"),  # offsets 1-3 were trimmed
    (3, None, 2, "more than the recovery limit"),
])
async def test_recover_refuses_what_cannot_be_recovered(store, offset, epoch, limit, reason):
    pubs = await _fill(store, "room:no", 6, Retention(3))
    with pytest.raises(RecoveryImpossible) as err:
        await store.recover("room:no", offset, epoch or pubs[0].epoch, max_publications=limit)
    assert reason in err.value.reason
    assert err.value.position.offset == 6


# ---- group commit ----------------------------------------------------------------------


async def test_group_commit_batches_concurrent_appends(store_url):
    async with running(store_url) as (grouped,):
        await _burst(grouped, "room:g", 100)
        assert grouped.publications_committed == 100
        assert grouped.batches_committed < 10
    async with running(store_url, group_commit=False) as (single,):
        pubs = await _burst(single, "room:s", 20)
        assert [p.offset for p in pubs] == list(range(1, 21))
        assert single.batches_committed == 20


async def test_a_failed_batch_fails_every_waiter_and_the_store_goes_on(store):
    good = [store.append("room:bad", b"ok", retention=KEEP) for _ in range(5)]
    bad = store.append("room:bad", None, retention=KEEP)  # type: ignore[arg-type]
    outcomes = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(isinstance(o, StoreError) for o in outcomes), outcomes
    assert store.batches_committed == 0  # all six were one batch, and it was rolled back
    assert (await store.history("room:bad", limit=10)).publications == []
    assert (await store.append("room:bad", b"fine", retention=KEEP)).offset == 1


async def test_append_many_answers_each_place_from_one_commit(store):
    once = Idempotency("k-1", 60)
    first = await store.append("room:m", b"first", retention=KEEP, idempotency=once)
    batches = store.batches_committed
    results = await store.append_many([
        Append("room:m", b"again", KEEP, idempotency=once),
        Append("room:m", b"second", KEEP, source="billing"),
        Append("room:n", b"other", KEEP)], within=10)
    assert store.batches_committed == batches + 1
    assert isinstance(results[0], Duplicate) and results[0].offset == first.offset
    assert (results[1].channel, results[1].offset, results[1].source) == ("room:m", 2, "billing")
    assert (results[2].channel, results[2].offset) == ("room:n", 1)
    page = await store.history("room:m", limit=10)
    assert [p.data for p in page.publications] == [b"first", b"second"]


async def test_append_many_answers_a_failed_commit_as_values(store):
    results = await store.append_many([Append("room:f", b"ok", KEEP),
                                       Append("room:f", None, KEEP)], within=10)  # type: ignore[arg-type]
    assert all(isinstance(r, StoreError) for r in results), results
    assert (await store.append("room:f", b"fine", retention=KEEP)).offset == 1


async def test_append_many_past_its_bound_withdraws_what_is_still_queued(tmp_path):
    import sqlite3

    path = tmp_path / "locked.db"
    async with running(f"sqlite:///{path}") as (store,):
        await store.append("room:w", b"0", retention=KEEP)  # the schema exists
        locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN EXCLUSIVE")  # the next commit waits (busy_timeout) for it
        try:
            stuck = asyncio.ensure_future(store.append("room:w", b"1", retention=KEEP))
            await asyncio.sleep(0.2)  # that one is inside a commit now
            with pytest.raises(BatchTimeout) as raised:
                await store.append_many([Append("room:w", b"2", KEEP),
                                         Append("room:w", b"3", KEEP)], within=0.3)
            assert raised.value.late == []  # both were still queued: withdrawn, not stored
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert (await stuck).offset == 2
        page = await store.history("room:w", limit=10)
        assert [p.data for p in page.publications] == [b"0", b"1"]


async def _appends_again_without_a_gap(store: Store) -> None:
    """After "room:lost" lost its second append with the connection: the pool recovers."""
    for _ in range(10):  # a pooled connection killed while idle may fail one call more
        with contextlib.suppress(StoreError):
            pub = await store.append("room:lost", b"3", retention=KEEP)
            break
    assert pub.offset == 2  # the lost batch left no gap
    page = await store.history("room:lost", limit=10)
    assert [p.data for p in page.publications] == [b"1", b"3"]


# ---- PostgreSQL and MySQL: several nodes, one database ---------------------------------


async def test_three_nodes_appending_one_channel_keep_offsets_gap_free(shared_url):
    async with running(shared_url, shared_url, shared_url) as nodes:
        results = await asyncio.gather(*(_burst(node, "room:shared", 300) for node in nodes))
    offsets = sorted(p.offset for pubs in results for p in pubs)
    assert offsets == list(range(1, 901))
    for pubs in results:  # each node's own appends keep their order
        mine = [p.offset for p in pubs]
        assert mine == sorted(mine)


async def test_two_sqlite_stores_on_one_file_take_turns_without_reusing_an_offset(tmp_path):
    """The writer remembers channel tops between batches: another writer's commits in
    between (another worker process on the same file) must make it read them again."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with running(url, url) as (first, second):
        offsets = []
        for turn in range(6):
            node = (first, second)[turn % 2]
            offsets.append((await node.append("room:turns", b"1", retention=KEEP)).offset)
    assert offsets == [1, 2, 3, 4, 5, 6]


async def test_workers_opening_one_new_sqlite_file_at_once_all_start_on_one_epoch(tmp_path):
    """Four workers on a fresh file, ten times: switching to WAL and making the schema must
    wait for one another instead of failing with "database is locked" or a second epoch."""
    for round_ in range(10):
        url = f"sqlite:///{tmp_path / f'fresh{round_}.db'}"
        async with running(url, url, url, url) as stores:
            first = await stores[0].append("room:fresh", b"1", retention=KEEP)
            positions = [(await s.positions(["room:fresh"]))["room:fresh"] for s in stores]
        assert {p.epoch for p in positions} == {first.epoch}


async def test_nodes_writing_many_channels_in_any_order_do_not_deadlock(shared_url):
    channels = [f"room:{name}" for name in "abcd"]

    async def mixed(node: Store, order: list[str]):
        return await asyncio.gather(*(node.append(order[n % 4], b"x", retention=KEEP)
                                      for n in range(200)))

    async with running(shared_url, shared_url, shared_url) as nodes:
        results = await asyncio.gather(*(mixed(node, channels[i:] + channels[:i])
                                         for i, node in enumerate(nodes)))
        positions = await nodes[0].positions(channels)
    for channel in channels:
        offsets = sorted(p.offset for pubs in results for p in pubs if p.channel == channel)
        assert offsets == list(range(1, 151))
        assert positions[channel].offset == 150


async def test_nodes_starting_at_once_on_a_fresh_schema_share_one_epoch(shared_url):
    async with running(shared_url, shared_url, shared_url) as nodes:
        pubs = [await node.append("room:e", b"x", retention=KEEP) for node in nodes]
    assert [p.offset for p in pubs] == [1, 2, 3]
    assert len({p.epoch for p in pubs}) == 1
    async with running(shared_url, shared_url) as nodes:  # and starting again changes nothing
        positions = await asyncio.gather(*(node.positions(["room:e"]) for node in nodes))
    assert [p["room:e"] for p in positions] == [StreamPosition(3, pubs[0].epoch)] * 2


async def test_postgres_refuses_a_schema_newer_than_it_knows(pg_url):
    async with running(pg_url):
        pass
    dsn, schema = split_url(pg_url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute("UPDATE tidings_meta SET value = $1 WHERE key = 'schema_version'",
                           str(SCHEMA_VERSION + 1))
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="newer than this Tidings"):
        async with running(pg_url):
            pass


async def test_postgres_reads_do_not_wait_behind_a_locked_channel(pg_url):
    async with running(pg_url) as (store,):
        await store.append("room:lock", b"1", retention=KEEP)
        dsn, schema = split_url(pg_url)
        other = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            locked = other.transaction()
            await locked.start()
            await other.execute(  # what another node's batch holds while it commits
                "SELECT top FROM tidings_channels WHERE channel = 'room:lock' FOR UPDATE"
            )
            append = asyncio.create_task(store.append("room:lock", b"2", retention=KEEP))
            page = await asyncio.wait_for(store.history("room:lock", limit=10), 2)
            assert [p.offset for p in page.publications] == [1]
            assert not append.done()
            await locked.rollback()
            assert (await append).offset == 2
        finally:
            await other.close()


async def test_postgres_lost_connection_is_a_store_error_and_the_pool_reconnects(pg_url):
    dsn, schema = split_url(pg_url)
    async with running(pg_url) as (store,):
        await store.append("room:lost", b"1", retention=KEEP)
        admin = await asyncpg.connect(dsn, server_settings={"search_path": schema,
                                                            "application_name": "admin"})
        try:
            lock = admin.transaction()
            await lock.start()
            await admin.execute(
                "SELECT top FROM tidings_channels WHERE channel = 'room:lost' FOR UPDATE"
            )
            append = asyncio.create_task(store.append("room:lost", b"2", retention=KEEP))
            while not await admin.fetchval(  # the store's batch is waiting inside its transaction
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND wait_event_type = 'Lock'", schema,
            ):
                await asyncio.sleep(0.01)
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1", schema,
            )
            await lock.rollback()
            with pytest.raises(StoreError, match="connection lost"):
                await append
        finally:
            await admin.close()
        await _appends_again_without_a_gap(store)


async def test_postgres_unreachable_at_start_is_a_store_error():
    with pytest.raises(StoreError, match="unreachable"):
        async with running("postgresql://postgres@127.0.0.1:1/test"):
            pass


# ---- MySQL / MariaDB -------------------------------------------------------------------


@pytest.fixture
async def mysql_url() -> AsyncIterator[str]:
    async with throwaway_database() as url:
        yield url


def _database(url: str) -> str:
    return mysql_split_url(url)[1]


async def test_mysql_refuses_a_schema_newer_than_it_knows(mysql_url):
    async with running(mysql_url):
        pass
    await mysql_execute("UPDATE tidings_meta SET value = %s WHERE `key` = 'schema_version'",
                        (str(MYSQL_SCHEMA_VERSION + 1),), database=_database(mysql_url))
    with pytest.raises(StoreError, match="newer than this Tidings"):
        async with running(mysql_url):
            pass


async def test_mysql_upgrades_a_version_2_schema_keeping_its_history(mysql_url):
    database = _database(mysql_url)
    async with running(mysql_url) as (store,):
        await store.append("room:old", b"1", retention=KEEP)
    for table in ("tidings_idempotency", "tidings_inbox", "tidings_inbox_users"):  # as at 2
        await mysql_execute(f"DROP TABLE {table}", database=database)
    await mysql_execute("UPDATE tidings_meta SET value = '2' WHERE `key` = 'schema_version'",
                        database=database)
    async with running(mysql_url) as (store,):
        assert [p.data for p in (await store.history("room:old", limit=5)).publications] \
            == [b"1"]
        once = Idempotency("k", 60)
        spec = InboxSpec("u", 10)
        await store.append("user:u", b"{}", retention=KEEP, source="s", inbox=spec,
                           idempotency=once)
        await store.append("user:u", b"{}", retention=KEEP, source="s", inbox=spec,
                           idempotency=once)
        assert (await store.inbox_view("u", limit=5)).counts.unread == 1
    assert await mysql_execute("SELECT value FROM tidings_meta WHERE `key` = 'schema_version'",
                               database=database) == [(str(MYSQL_SCHEMA_VERSION),)]


async def test_mysql_channel_names_are_case_sensitive(mysql_url):
    async with running(mysql_url) as (store,):
        upper = await store.append("room:A", b"upper", retention=KEEP)
        lower = await store.append("room:a", b"lower", retention=KEEP)
        assert (upper.offset, lower.offset) == (1, 1)
        assert [p.data for p in (await store.history("room:a", limit=5)).publications] \
            == [b"lower"]


async def test_mysql_reads_do_not_wait_behind_a_locked_channel(mysql_url):
    async with running(mysql_url) as (store,):
        await store.append("room:lock", b"1", retention=KEEP)
        other = await asyncmy.connect(host="127.0.0.1", user="root",
                                      database=_database(mysql_url))
        try:
            async with other.cursor() as cur:
                await other.begin()  # what another node's batch holds while it commits
                await cur.execute("SELECT top FROM tidings_channels WHERE channel = 'room:lock' "
                                  "FOR UPDATE")
                append = asyncio.create_task(store.append("room:lock", b"2", retention=KEEP))
                page = await asyncio.wait_for(store.history("room:lock", limit=10), 2)
                assert [p.offset for p in page.publications] == [1]
                assert not append.done()
                await other.rollback()
            assert (await append).offset == 2
        finally:
            await other.ensure_closed()


async def _statement_waiting_in(database: str, besides: int) -> None:
    """Return once a statement in `database` (not from connection `besides`) has run for a
    second: the store's batch, waiting for the row lock. Only this test's own database
    counts: the server is shared with other test runs."""
    while not await mysql_execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s "
            "AND COMMAND = 'Query' AND TIME >= 1", (database, besides)):
        await asyncio.sleep(0.05)


async def test_mysql_lost_connection_is_a_store_error_and_the_pool_reconnects(mysql_url):
    database = _database(mysql_url)
    async with running(mysql_url) as (store,):
        await store.append("room:lost", b"1", retention=KEEP)
        admin = await asyncmy.connect(host="127.0.0.1", user="root", database=database)
        try:
            async with admin.cursor() as cur:
                await admin.begin()
                await cur.execute("SELECT top FROM tidings_channels WHERE channel = 'room:lost' "
                                  "FOR UPDATE")
                append = asyncio.create_task(store.append("room:lost", b"2", retention=KEEP))
                await asyncio.wait_for(_statement_waiting_in(database, admin.thread_id()), 30)
                for (thread,) in await mysql_execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s",
                    (database, admin.thread_id()),
                ):
                    with contextlib.suppress(Exception):
                        await mysql_execute(f"KILL {int(thread)}")
                await admin.rollback()
            with pytest.raises(CommitUnknown, match="connection lost"):  # may be stored or not
                await asyncio.wait_for(append, 60)
        finally:
            await admin.ensure_closed()
        await _appends_again_without_a_gap(store)


async def test_mysql_unreachable_at_start_is_a_store_error():
    with pytest.raises(StoreError, match="unreachable"):
        async with running("mysql://root@127.0.0.1:1/test"):
            pass


def test_mysql_url_names_a_database_and_refuses_unknown_parameters():
    settings, database = mysql_split_url("mysql://u:p%40ss@db.example:3307/tidings")
    assert database == "tidings"
    assert (settings["host"], settings["port"], settings["user"], settings["password"]) == \
        ("db.example", 3307, "u", "p@ss")
    for bad in ("mysql://u@h", "mysql://u@h/", "mysql://u@h/db?schema=x", "mysql://u@h/a`b"):
        with pytest.raises(ValueError, match="mysql"):
            mysql_split_url(bad)


# ---- URLs ------------------------------------------------------------------------------


def test_postgres_url_schema_is_taken_out_of_the_dsn():
    dsn, schema = split_url("postgresql://u@h:5432/db?schema=tidings_a&sslmode=disable")
    assert schema == "tidings_a"
    assert dsn == "postgresql://u@h:5432/db?sslmode=disable&application_name=tidings"
    assert split_url("postgresql://u@h/db?application_name=n3") == \
        ("postgresql://u@h/db?application_name=n3", None)
    for bad in ("Upper", "a-b", "1st", 'x";drop'):
        with pytest.raises(ValueError):
            split_url(f"postgresql://u@h/db?schema={bad}")


def test_unknown_store_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown store URL scheme"):
        open_store("mongodb://somewhere")


def test_sqlite_in_memory_is_refused():
    with pytest.raises(ValueError, match="memory"):
        open_store("sqlite:///:memory:")


async def test_ack_positions_are_kept_replaced_and_deleted(store):
    from tidings.model import AckPosition

    assert await store.load_ack_position("alice", "sub-0") is None
    first = AckPosition("/topic/a", 3, "e1", (5, 7))
    await store.save_ack_positions({("alice", "sub-0"): first,
                                    ("bob", "sub-0"): AckPosition("/user/queue/x", 1, "e1")})
    assert await store.load_ack_position("alice", "sub-0") == first
    await store.save_ack_positions({("alice", "sub-0"): AckPosition("/topic/a", 8, "e1")})
    assert await store.load_ack_position("alice", "sub-0") == AckPosition("/topic/a", 8, "e1")
    await store.save_ack_positions({("bob", "sub-0"): None})
    assert await store.load_ack_position("bob", "sub-0") is None
    assert await store.load_ack_position("alice", "sub-1") is None


# ---- reads in a reconnect storm --------------------------------------------------------


async def test_concurrent_recoveries_share_reads_and_each_gets_its_own_range(store):
    pubs = await _fill(store, "room:storm", 12)
    epoch = pubs[0].epoch
    await store.recover("room:storm", 0, epoch, max_publications=100)
    before = (store.position_reads.rounds, store.range_reads.rounds)
    offsets = [n % 12 for n in range(300)]
    results = await asyncio.gather(*(store.recover("room:storm", offset, epoch,
                                                   max_publications=100)
                                      for offset in offsets))
    for offset, (missed, position) in zip(offsets, results):
        assert missed == pubs[offset:]
        assert position.offset == 12
    positions = await asyncio.gather(*(store.positions([f"user:u{n}", "room:storm"])
                                       for n in range(300)))
    assert all(p["room:storm"].offset == 12 and p["user:u7"].offset == 0 for p in positions[7:8])
    assert store.position_reads.rounds - before[0] <= 6  # a few rounds, not 600 reads
    assert store.range_reads.rounds - before[1] <= 3


async def test_each_committed_batch_is_told_before_its_waiters_resume(store):
    told: list[list[int]] = []
    resumed: list[int] = []
    store.on_commit = lambda pubs: told.append([p.offset for p in pubs])

    async def append() -> None:
        await store.append("room:told", b"x", retention=KEEP)
        resumed.append(len(told))  # how many batches had been told when this one resumed

    await asyncio.gather(*(append() for _ in range(5)))
    assert told == [[1, 2, 3, 4, 5]] and resumed == [1] * 5
    store.on_commit = lambda pubs: 1 / 0  # a broken listener does not fail the commit
    assert (await store.append("room:told", b"y", retention=KEEP)).offset == 6


# ---- a commit that fails in an unforeseen way ----------------------------------------------


async def test_an_unexpected_error_in_a_commit_is_an_unknown_outcome_not_a_refusal(tmp_path):
    async with running(f"sqlite:///{tmp_path / 'store.db'}") as (store,):
        async def commit_then_fail(batch):
            raise RuntimeError("after the COMMIT, for all anyone knows")

        store._commit = commit_then_fail
        with pytest.raises(CommitUnknown, match="unexpectedly"):
            await store.append("room:x", b"1", retention=KEEP)


async def test_postgres_a_connection_that_cannot_go_back_after_a_commit_fails_nothing(pg_url):
    class ReleaseFails:
        """The store's pool, whose connections fail to go back once used."""

        def __init__(self, pool):
            self.pool = pool

        def __getattr__(self, name):
            return getattr(self.pool, name)

        async def release(self, conn, *args, **kwargs):
            await self.pool.release(conn, *args, **kwargs)
            raise asyncpg.InterfaceError("cannot release: the backend was terminated")

    async with running(pg_url) as (store,):
        pool = store._pool
        store._pool = ReleaseFails(pool)
        try:
            pub = await store.append("room:kept", b"1", retention=KEEP)
        finally:
            store._pool = pool
        page = await store.history("room:kept", limit=10)
        assert [p.data for p in page.publications] == [b"1"] and pub.offset == 1
