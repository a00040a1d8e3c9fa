"""PostgreSQL store, for a cluster: every node appends to and reads from one database.

URL: `postgresql://user:password@host:5432/database[?schema=name]`.

- `schema=name` keeps Tidings' tables in a schema of their own (created if missing, and
  made the connections' `search_path`): several deployments, or throwaway test runs, can
  share one database. Names are lower-case letters, digits and `_`.
- Every other query parameter is a server setting for the connections (e.g.
  `application_name=node-3`; the default application name is `tidings`; `lock_timeout`
  defaults to 10 s, so a batch stuck behind someone else's table lock fails plainly, as not
  stored, instead of waiting out the 30 s command timeout).

Offsets stay gap-free when several nodes append to one channel at once: a batch locks the
rows of its channels (in sorted order, so two batches cannot deadlock) with
`INSERT ... ON CONFLICT DO UPDATE SET top = top + n RETURNING top`, which reserves the next
n offsets, then copies the publications in and trims to the retention size, all in one
transaction. Commits are synchronous (`synchronous_commit = on`), so an acknowledged
publish survives a crash of the database.

The pool is bounded; the writer takes one connection per batch and reads take others, so
history reads never wait behind a commit. A lost connection fails the call in progress
with StoreError; the pool replaces the connection on the next call.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from tidings.model import AckPosition, Publication, StreamPosition
from tidings.readstate import (
    InboxCounts,
    InboxMessage,
    InboxView,
    NoSuchMessage,
    ReadChange,
    SourceCounts,
)
from tidings.store.base import (
    CHANGE_SETS,
    AppendRequest,
    CommitUnknown,
    Duplicate,
    Store,
    StoreError,
    change_filter,
    cursor_column,
    now_ms,
    repeats_in_batch,
    resolve_repeats,
)

SCHEMA_VERSION = 4
MIGRATION_LOCK = 0x7469_6469  # advisory lock id: "tidi"
log = logging.getLogger("tidings.store")

COMMAND_TIMEOUT = 30.0  # seconds: a database that stops answering fails the call, not hangs
LOCK_TIMEOUT = "10s"  # a statement waiting longer on a lock fails: its batch is known unstored
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# MIGRATIONS[n] takes the schema from version n - 1 to n; add new steps, never edit old ones.
MIGRATIONS = {
    1: """
    CREATE TABLE tidings_channels (
        channel TEXT PRIMARY KEY,
        top BIGINT NOT NULL,
        epoch TEXT NOT NULL
    );
    CREATE TABLE tidings_publications (
        channel TEXT NOT NULL,
        "offset" BIGINT NOT NULL,
        time BIGINT NOT NULL,
        expires BIGINT,
        data BYTEA NOT NULL,
        source TEXT,
        sender TEXT,
        PRIMARY KEY (channel, "offset")
    );
    CREATE INDEX tidings_publications_expires
        ON tidings_publications (expires) WHERE expires IS NOT NULL;
    """,
    2: """
    CREATE TABLE tidings_ack_positions (
        "user" TEXT NOT NULL,
        subscription TEXT NOT NULL,
        destination TEXT NOT NULL,
        "offset" BIGINT NOT NULL,
        epoch TEXT NOT NULL,
        acked BIGINT[] NOT NULL,
        updated BIGINT NOT NULL,
        PRIMARY KEY ("user", subscription)
    );
    """,
    # the message center: idempotency keys, inbox messages with their read state
    3: """
    CREATE TABLE tidings_idempotency (
        key TEXT NOT NULL,
        channel TEXT NOT NULL,
        "offset" BIGINT NOT NULL,
        epoch TEXT NOT NULL,
        time BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        PRIMARY KEY (key, channel)
    );
    CREATE INDEX tidings_idempotency_expires ON tidings_idempotency (expires);
    CREATE TABLE tidings_inbox (
        recipient TEXT NOT NULL,
        "offset" BIGINT NOT NULL,
        source TEXT NOT NULL,
        time BIGINT NOT NULL,
        expires BIGINT,
        data BYTEA NOT NULL,
        is_read SMALLINT NOT NULL DEFAULT 0,
        is_seen SMALLINT NOT NULL DEFAULT 0,
        is_archived SMALLINT NOT NULL DEFAULT 0,
        PRIMARY KEY (recipient, "offset")
    );
    CREATE INDEX tidings_inbox_source ON tidings_inbox (recipient, source, "offset");
    CREATE INDEX tidings_inbox_counts
        ON tidings_inbox (recipient, is_archived, source, is_read, is_seen, expires);
    CREATE INDEX tidings_inbox_expires ON tidings_inbox (expires) WHERE expires IS NOT NULL;
    CREATE TABLE tidings_inbox_users (
        recipient TEXT PRIMARY KEY,
        version BIGINT NOT NULL
    );
    """,
    # shared notifications: read and seen up to an offset of the shared channel, per source
    4: """
    CREATE TABLE tidings_inbox_cursors (
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        source TEXT NOT NULL,
        read_upto BIGINT NOT NULL DEFAULT 0,
        seen_upto BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (recipient, channel, source)
    );
    """,
}

COLUMNS = 'channel, "offset", time, data, source, sender'
# One round trip reserves the next offsets of every channel in a batch (row locks taken in
# the sorted order of the input), one more trims them all to their retention size.
RESERVE = """
INSERT INTO tidings_channels (channel, top, epoch)
SELECT channel, n, $3 FROM unnest($1::text[], $2::bigint[]) AS t(channel, n) ORDER BY channel
ON CONFLICT (channel) DO UPDATE SET top = tidings_channels.top + excluded.top
RETURNING channel, top, epoch
"""
TRIM = """
DELETE FROM tidings_publications p USING unnest($1::text[], $2::bigint[]) AS t(channel, upto)
WHERE p.channel = t.channel AND p."offset" <= t.upto
"""
# Claim idempotency keys (sorted, so concurrent batches lock them in one order; a key another
# node is inserting waits for that node's commit). Returned: the keys this batch may append
# for, new or past their window. The rest are repeats of a publication already stored.
CLAIM = """
INSERT INTO tidings_idempotency (key, channel, "offset", epoch, time, expires)
SELECT k, c, 0, '', 0, e FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(k, c, e)
ORDER BY k, c
ON CONFLICT (key, channel) DO UPDATE SET "offset" = 0, expires = excluded.expires
    WHERE tidings_idempotency.expires <= $4
RETURNING key, channel
"""
CLAIMED = """
SELECT i.key, i.channel, i."offset", i.epoch, i.time FROM tidings_idempotency i
JOIN unnest($1::text[], $2::text[]) AS t(k, c) ON i.key = t.k AND i.channel = t.c
"""
PLACE_KEYS = """
UPDATE tidings_idempotency i SET "offset" = t.o, epoch = t.e, time = t.tm
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[]) AS t(k, c, o, e, tm)
WHERE i.key = t.k AND i.channel = t.c
"""
# Keep each (user, source)'s newest `keep` inbox messages.
TRIM_INBOX = """
DELETE FROM tidings_inbox i USING (
    SELECT t.r, t.s, (SELECT x."offset" FROM tidings_inbox x
                      WHERE x.recipient = t.r AND x.source = t.s
                      ORDER BY x."offset" DESC OFFSET t.keep LIMIT 1) AS cut
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(r, s, keep)
) c
WHERE i.recipient = c.r AND i.source = c.s AND i."offset" <= c.cut
"""
INBOX_LIVE = "recipient = $1 AND is_archived = 0 AND (expires IS NULL OR expires > $2)"
INBOX_COLUMNS = '"offset", source, time, data, is_read, is_seen'
COUNTS = f"""
SELECT source, COUNT(*) AS total, COUNT(*) FILTER (WHERE is_read = 0) AS unread,
       COUNT(*) FILTER (WHERE is_seen = 0) AS unseen
FROM tidings_inbox WHERE {INBOX_LIVE} GROUP BY source
"""
# the shared channel's sourced publications, each with the user's cursor of its source
# ($1 user, $2 now, $3 channel)
SHARED_FROM = """tidings_publications p LEFT JOIN tidings_inbox_cursors c
    ON c.recipient = $1 AND c.channel = p.channel AND c.source = p.source
WHERE p.channel = $3 AND p.source IS NOT NULL AND (p.expires IS NULL OR p.expires > $2)"""
SHARED_READ = 'p."offset" <= COALESCE(c.read_upto, 0)'
SHARED_SEEN = 'p."offset" <= GREATEST(COALESCE(c.read_upto, 0), COALESCE(c.seen_upto, 0))'
# One round trip: own and shared counts, the version and both tops (rows with shared = NULL
# are the user's own sources; the version and tops repeat on every row, or come alone)
ALL_COUNTS = f"""
WITH own AS ({COUNTS}),
shared AS (
    SELECT p.source, COUNT(*) AS total, COUNT(*) FILTER (WHERE NOT ({SHARED_READ})) AS unread,
           COUNT(*) FILTER (WHERE NOT ({SHARED_SEEN})) AS unseen
    FROM {SHARED_FROM} GROUP BY p.source),
tops AS (
    SELECT (SELECT version FROM tidings_inbox_users WHERE recipient = $1) AS version,
           (SELECT MAX("offset") FROM tidings_inbox WHERE recipient = $1) AS top,
           (SELECT top FROM tidings_channels WHERE channel = $3) AS shared_top)
SELECT t.version, t.top, t.shared_top, s.* FROM tops t LEFT JOIN (
    SELECT FALSE AS shared, * FROM own UNION ALL SELECT TRUE, * FROM shared) s ON TRUE
"""
SHARED_MESSAGES = f"""
SELECT m.* FROM unnest($4::text[]) AS s(name) CROSS JOIN LATERAL (
    SELECT p."offset", p.source, p.time, p.data, ({SHARED_READ})::int AS is_read,
           ({SHARED_SEEN})::int AS is_seen
    FROM {SHARED_FROM} AND p.source = s.name ORDER BY p."offset" DESC LIMIT $5) m
"""
# move cursors (column: read_upto or seen_upto) up to $4, never back, for one source ($5) or
# all ($5 NULL); ($1 user, $2 now, $3 channel)
MOVE_CURSOR = """
INSERT INTO tidings_inbox_cursors (recipient, channel, source, {column})
SELECT $1, channel, source, LEAST(MAX("offset"), $4) FROM tidings_publications
WHERE channel = $3 AND source IS NOT NULL AND (expires IS NULL OR expires > $2)
      AND ($5::text IS NULL OR source = $5)
GROUP BY channel, source ORDER BY source
ON CONFLICT (recipient, channel, source) DO UPDATE
SET {column} = GREATEST(tidings_inbox_cursors.{column}, excluded.{column})
"""
# `expires` is set from the accepting node's clock, so reads compare with the node's clock
# too (a parameter), never with the database server's now().
NOT_EXPIRED = "(expires IS NULL OR expires > $4)"
# The errors that mean the connection (or the server) is gone rather than the statement
# being wrong: refused/reset sockets, timeouts, a terminated backend, a shutting-down server.
CONNECTION_LOST = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def split_url(url: str) -> tuple[str, str | None]:
    """The DSN for asyncpg (without `schema=`) and the schema it named, if any."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    if schema is not None and not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"schema {schema!r}: lower-case letters, digits and '_', not starting with a digit"
        )
    query.setdefault("application_name", "tidings")
    return urlunsplit(parts._replace(query=urlencode(query))), schema


def _connection_loss(exc: BaseException) -> BaseException | None:
    """The connection failure behind `exc`, if any.

    A connection that dies inside a transaction surfaces as the InterfaceError of the failed
    rollback ("the underlying connection is closed"); the real cause is in its context.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CONNECTION_LOST):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def _failures(action: str, lost_error: type[StoreError] = StoreError) -> Iterator[None]:
    """Turn driver errors into StoreError, saying plainly when the connection was lost
    (as `lost_error`: CommitUnknown for a commit, whose outcome a lost connection hides)."""
    try:
        yield
    except (*CONNECTION_LOST, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        lost = _connection_loss(exc)
        if lost is not None:
            raise lost_error(
                f"postgresql: database unreachable or connection lost while {action} "
                f"({type(lost).__name__}: {lost})"
            ) from exc
        raise StoreError(f"postgresql: {action} failed: {exc}") from exc


def _by_source(messages: list[InboxMessage]) -> dict[str, list[InboxMessage]]:
    grouped: dict[str, list[InboxMessage]] = {}
    for message in messages:
        grouped.setdefault(message.source, []).append(message)
    return grouped


class PostgresStore(Store):
    def __init__(self, url: str, *, pool_size: int = 10, **options):
        super().__init__(**options)
        self.dsn, self.schema = split_url(url)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._epoch = ""

    # ---- lifecycle -------------------------------------------------------------------

    async def _open(self) -> None:
        settings = {"synchronous_commit": "on"}
        if "lock_timeout" not in dict(parse_qsl(urlsplit(self.dsn).query)):
            settings["lock_timeout"] = LOCK_TIMEOUT
        if self.schema:
            settings["search_path"] = self.schema
        with _failures("opening the store"):
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, server_settings=settings,
                command_timeout=COMMAND_TIMEOUT,
            )
            try:
                async with self._pool.acquire() as conn:
                    await self._migrate(conn)
            except BaseException:
                await self._pool.close()
                self._pool = None
                raise

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        """Create or upgrade the schema; one node at a time (an advisory lock serializes them).

        The lock is taken before anything is looked at, so of three nodes starting against an
        empty database one creates everything and the others find it done.
        """
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS tidings_meta "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            version = int(await conn.fetchval(
                "SELECT value FROM tidings_meta WHERE key = 'schema_version'"
            ) or 0)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"postgresql: the database schema is version {version}, newer than this "
                    f"Tidings understands ({SCHEMA_VERSION}): upgrade this node"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                await conn.execute(MIGRATIONS[step])
            await conn.execute(
                "INSERT INTO tidings_meta (key, value) VALUES ('schema_version', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(SCHEMA_VERSION),
            )
            await conn.execute(
                "INSERT INTO tidings_meta (key, value) VALUES ('epoch', $1) "
                "ON CONFLICT (key) DO NOTHING",
                secrets.token_hex(4),
            )
            self._epoch = await conn.fetchval("SELECT value FROM tidings_meta WHERE key = 'epoch'")

    async def _close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def _pool_or_fail(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("postgresql: store is not open")
        return self._pool

    # ---- writes ----------------------------------------------------------------------

    async def _commit(self, batch: list[AppendRequest]) -> list[Publication | Duplicate]:
        results: list[Publication | Duplicate | None] = [None] * len(batch)
        repeats = repeats_in_batch(batch)
        keyed = [i for i, r in enumerate(batch) if r.idempotency is not None and i not in repeats]
        pool = self._pool_or_fail()
        with _failures("appending", CommitUnknown):
            conn = await pool.acquire()
        try:
            with _failures("appending", CommitUnknown):
                async with conn.transaction():
                    await self._write_batch(conn, batch, keyed, repeats, results)
        finally:
            # Once COMMIT has answered, the batch is stored: a failure to hand the connection
            # back (its backend terminated just after) must not tell publishers otherwise.
            try:
                await pool.release(conn)
            except Exception as exc:
                log.warning("postgresql: a connection could not go back to the pool: %s", exc)
        resolve_repeats(results, repeats)
        return results  # type: ignore[return-value]

    async def _write_batch(self, conn: asyncpg.Connection, batch: list[AppendRequest],
                           keyed: list[int], repeats: dict[int, int], results: list) -> None:
        """The statements of one commit, inside its transaction."""
        if keyed:
            await self._claim_keys(conn, batch, keyed, results)
        fresh = [i for i in range(len(batch)) if results[i] is None and i not in repeats]
        if fresh:
            await self._append(conn, batch, fresh, results)
        placed = [i for i in keyed if isinstance(results[i], Publication)]
        if placed:
            pubs = [results[i] for i in placed]
            await conn.execute(
                PLACE_KEYS, [batch[i].idempotency.key for i in placed],
                [p.channel for p in pubs], [p.offset for p in pubs],
                [p.epoch for p in pubs], [p.time for p in pubs],
            )

    async def _claim_keys(self, conn: asyncpg.Connection, batch: list[AppendRequest],
                          keyed: list[int], results: list) -> None:
        """Claim the batch's idempotency keys; answer the ones already used with Duplicate."""
        claimed = {(r["key"], r["channel"]) for r in await conn.fetch(
            CLAIM, [batch[i].idempotency.key for i in keyed], [batch[i].channel for i in keyed],
            [batch[i].time + int(batch[i].idempotency.window * 1000) for i in keyed], now_ms(),
        )}
        used = [i for i in keyed if (batch[i].idempotency.key, batch[i].channel) not in claimed]
        if not used:
            return
        rows = await conn.fetch(CLAIMED, [batch[i].idempotency.key for i in used],
                                [batch[i].channel for i in used])
        first = {(r["key"], r["channel"]): Duplicate(r["channel"], r["offset"], r["epoch"],
                                                     r["time"]) for r in rows}
        for i in used:
            results[i] = first[(batch[i].idempotency.key, batch[i].channel)]

    async def _append(self, conn: asyncpg.Connection, batch: list[AppendRequest],
                      fresh: list[int], results: list) -> None:
        by_channel: dict[str, list[int]] = defaultdict(list)
        for index in fresh:
            by_channel[batch[index].channel].append(index)
        channels = sorted(by_channel)  # sorted: concurrent batches lock rows in one order
        counts = [len(by_channel[channel]) for channel in channels]
        rows, trims, inbox, inbox_trims = [], [], [], {}
        tops = await conn.fetch(RESERVE, channels, counts, self._epoch)
        for record in tops:
            channel, top, epoch = record["channel"], record["top"], record["epoch"]
            indexes = by_channel[channel]
            for offset, index in enumerate(indexes, start=top - len(indexes) + 1):
                request = batch[index]
                results[index] = request.stored(offset, epoch)
                rows.append(request.row(offset))
                message = request.inbox_row(offset)
                if message is not None:
                    inbox.append(message)
                    inbox_trims[(request.inbox.user, request.source)] = request.inbox.max_messages
            trims.append((channel, top - batch[indexes[-1]].retention.size))
        await conn.copy_records_to_table(
            "tidings_publications", records=rows, schema_name=self.schema,
            columns=["channel", "offset", "time", "expires", "data", "source", "sender"],
        )
        await conn.execute(TRIM, [c for c, _ in trims], [upto for _, upto in trims])
        if inbox:
            await conn.copy_records_to_table(
                "tidings_inbox", records=inbox, schema_name=self.schema,
                columns=["recipient", "offset", "source", "time", "expires", "data"],
            )
            await conn.execute(TRIM_INBOX, [u for u, _ in inbox_trims],
                               [s for _, s in inbox_trims], list(inbox_trims.values()))

    async def _expire(self, now: int) -> int:
        with _failures("expiring"):
            pool = self._pool_or_fail()
            status = await pool.execute(
                "DELETE FROM tidings_publications WHERE expires IS NOT NULL AND expires <= $1",
                now,
            )
            await pool.execute(
                "DELETE FROM tidings_inbox WHERE expires IS NOT NULL AND expires <= $1", now)
            await pool.execute("DELETE FROM tidings_idempotency WHERE expires <= $1", now)
        return int(status.split()[-1])

    # ---- the inbox -------------------------------------------------------------------

    async def _counts_on(self, conn: asyncpg.Connection, user: str, now: int) -> InboxCounts:
        """Own and shared counts, the version and the tops, in one round trip."""
        rows = await conn.fetch(ALL_COUNTS, user, now, self.shared_channel)
        own: dict[str, SourceCounts] = {}
        shared: dict[str, SourceCounts] = {}
        for r in rows:
            if r["source"] is not None:
                (shared if r["shared"] else own)[r["source"]] = SourceCounts(
                    r["total"], r["unread"], r["unseen"])
        first = rows[0]
        return InboxCounts(own, first["version"] or 0, first["top"] or 0, shared,
                           first["shared_top"] or 0 if shared else 0)

    @staticmethod
    def _messages(rows) -> list[InboxMessage]:
        return [InboxMessage(r["offset"], r["source"], r["time"], bytes(r["data"]),
                             bool(r["is_read"]), bool(r["is_seen"])) for r in rows]

    async def _inbox_view(self, user: str, limit: int, now: int) -> InboxView:
        with _failures("reading the inbox"):
            async with self._pool_or_fail().acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True
            ):
                counts = await self._counts_on(conn, user, now)
                # each source's newest, walking its index backwards (one round trip)
                rows = await conn.fetch(
                    f"SELECT m.* FROM unnest($3::text[]) AS s(name) CROSS JOIN LATERAL "
                    f"(SELECT {INBOX_COLUMNS} FROM tidings_inbox WHERE {INBOX_LIVE} "
                    'AND source = s.name ORDER BY "offset" DESC LIMIT $4) m',
                    user, now, list(counts.sources), limit,
                )
                shared_rows = await conn.fetch(
                    SHARED_MESSAGES, user, now, self.shared_channel, list(counts.shared),
                    limit) if counts.shared else []
        return InboxView(counts, _by_source(self._messages(rows)),
                         _by_source(self._messages(shared_rows)))

    async def _inbox_page(self, user, source, before, limit, now):
        with _failures("reading the inbox"):
            async with self._pool_or_fail().acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True
            ):
                counts = await self._counts_on(conn, user, now)
                rows = await conn.fetch(
                    f"SELECT {INBOX_COLUMNS} FROM tidings_inbox WHERE {INBOX_LIVE} "
                    'AND source = $3 AND "offset" < $4 ORDER BY "offset" DESC LIMIT $5',
                    user, now, source, before if before is not None else 2**63 - 1, limit,
                )
        own = counts.sources.get(source)
        return (InboxCounts({source: own} if own else {}, counts.version, counts.offset),
                self._messages(rows))

    async def _inbox_change(self, user: str, change: ReadChange,
                            now: int) -> tuple[int, InboxCounts]:
        terms = change_filter(change)
        where = "recipient = $1 AND (expires IS NULL OR expires > $2)" + "".join(
            f" AND {column.replace('offset', chr(34) + 'offset' + chr(34))} ${n}"
            for n, (column, _) in enumerate(terms, start=3))
        params = (user, now, *(value for _, value in terms))
        sets, needs = CHANGE_SETS[change.kind]
        with _failures("changing read state"):
            async with self._pool_or_fail().acquire() as conn, conn.transaction():
                if change.offset is not None and await conn.fetchval(
                    f"SELECT 1 FROM tidings_inbox WHERE {where}", *params
                ) is None:
                    raise NoSuchMessage(change.offset)
                status = "UPDATE 0"
                if not change.shared:
                    status = await conn.execute(
                        f"UPDATE tidings_inbox SET {sets} WHERE {where} AND {needs}", *params)
                moved = await self._move_cursors_on(conn, user, change, now)
                await conn.execute(
                    "INSERT INTO tidings_inbox_users (recipient, version) VALUES ($1, 1) "
                    "ON CONFLICT (recipient) DO UPDATE "
                    "SET version = tidings_inbox_users.version + 1", user)
                counts = await self._counts_on(conn, user, now)
        return int(status.split()[-1]) + moved, counts

    async def _move_cursors_on(self, conn: asyncpg.Connection, user: str, change: ReadChange,
                               now: int) -> int:
        """Move the shared cursors a change moves; how many shared messages it changed."""
        column = cursor_column(change)
        if column is None or self.shared_channel is None:
            return 0
        counted = "unread" if column == "read_upto" else "unseen"

        async def shared() -> dict[str, SourceCounts]:
            counts = (await self._counts_on(conn, user, now)).shared
            return {name: c for name, c in counts.items()
                    if change.source is None or name == change.source}

        before = await shared()
        if not before:
            return 0
        await conn.execute(MOVE_CURSOR.format(column=column), user, now, self.shared_channel,
                           change.upto if change.upto is not None else 2**63 - 1,
                           change.source)
        after = await shared()
        return sum(getattr(c, counted) - getattr(after[name], counted)
                   for name, c in before.items())

    # ---- reads -----------------------------------------------------------------------

    async def _positions(self, channels: list[str]) -> dict[str, StreamPosition]:
        with _failures("reading positions"):
            rows = await self._pool_or_fail().fetch(
                "SELECT channel, top, epoch FROM tidings_channels WHERE channel = ANY($1)",
                channels,
            )
        found = {row["channel"]: StreamPosition(row["top"], row["epoch"]) for row in rows}
        return {ch: found.get(ch, StreamPosition(0, self._epoch)) for ch in channels}

    async def _position_on(self, conn: asyncpg.Connection, channel: str) -> StreamPosition:
        row = await conn.fetchrow(
            "SELECT top, epoch FROM tidings_channels WHERE channel = $1", channel
        )
        return StreamPosition(row["top"], row["epoch"]) if row else StreamPosition(0, self._epoch)

    def _pubs(self, rows, epoch: str) -> list[Publication]:
        return [Publication(r["channel"], r["offset"], epoch, bytes(r["data"]), r["time"],
                            r["source"], r["sender"]) for r in rows]

    async def _history(self, channel, limit, since, reverse):
        with _failures("reading history"):
            # one snapshot for the position and the rows, as SQLite does
            async with self._pool_or_fail().acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True
            ):
                position = await self._position_on(conn, channel)
                if reverse:
                    where, order = '"offset" < $2', "DESC"
                    bound = position.offset + 1 if since is None else since
                else:
                    where, order = '"offset" > $2', "ASC"
                    bound = 0 if since is None else since
                rows = await conn.fetch(
                    f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = $1 "
                    f'AND {where} AND {NOT_EXPIRED} ORDER BY "offset" {order} LIMIT $3',
                    channel, bound, limit, now_ms(),
                )
        return self._pubs(rows, position.epoch), position

    async def _read_range(self, channel: str, after: int, upto: int) -> list[Publication]:
        with _failures("reading history"):
            async with self._pool_or_fail().acquire() as conn:
                position = await self._position_on(conn, channel)
                rows = await conn.fetch(
                    f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = $1 "
                    f'AND "offset" > $2 AND "offset" <= $3 AND {NOT_EXPIRED} ORDER BY "offset"',
                    channel, after, upto, now_ms(),
                )
        return self._pubs(rows, position.epoch)

    # ---- acknowledged positions ------------------------------------------------------

    async def load_ack_position(self, user: str, subscription: str) -> AckPosition | None:
        with _failures("reading an acknowledged position"):
            row = await self._pool_or_fail().fetchrow(
                'SELECT destination, "offset", epoch, acked FROM tidings_ack_positions '
                'WHERE "user" = $1 AND subscription = $2', user, subscription,
            )
        if row is None:
            return None
        return AckPosition(row["destination"], row["offset"], row["epoch"], tuple(row["acked"]))

    async def save_ack_positions(
        self, positions: dict[tuple[str, str], AckPosition | None]
    ) -> None:
        deleted = [key for key, position in positions.items() if position is None]
        kept = [(user, sub, p.destination, p.offset, p.epoch, list(p.acked), now_ms())
                for (user, sub), p in positions.items() if p is not None]
        with _failures("storing acknowledged positions"):
            async with self._pool_or_fail().acquire() as conn, conn.transaction():
                if deleted:
                    await conn.executemany(
                        'DELETE FROM tidings_ack_positions WHERE "user" = $1 AND subscription = $2',
                        deleted,
                    )
                if kept:
                    await conn.executemany(
                        'INSERT INTO tidings_ack_positions ("user", subscription, destination, '
                        '"offset", epoch, acked, updated) VALUES ($1, $2, $3, $4, $5, $6, $7) '
                        'ON CONFLICT ("user", subscription) DO UPDATE SET '
                        'destination = excluded.destination, "offset" = excluded."offset", '
                        "epoch = excluded.epoch, acked = excluded.acked, updated = excluded.updated",
                        kept,
                    )
