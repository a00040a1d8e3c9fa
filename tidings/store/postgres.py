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
import re
import secrets
from collections import defaultdict
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from tidings.model import AckPosition, Publication, StreamPosition
from tidings.store.base import AppendRequest, CommitUnknown, Store, StoreError, now_ms

SCHEMA_VERSION = 2
MIGRATION_LOCK = 0x7469_6469  # advisory lock id: "tidi"
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

    async def _commit(self, batch: list[AppendRequest]) -> list[Publication]:
        by_channel: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(batch):
            by_channel[request.channel].append(index)
        channels = sorted(by_channel)  # sorted: concurrent batches lock rows in one order
        counts = [len(by_channel[channel]) for channel in channels]
        pubs: list[Publication | None] = [None] * len(batch)
        rows, trims = [], []
        with _failures("appending", CommitUnknown):
            async with self._pool_or_fail().acquire() as conn, conn.transaction():
                tops = await conn.fetch(RESERVE, channels, counts, self._epoch)
                for record in tops:
                    channel, top, epoch = record["channel"], record["top"], record["epoch"]
                    indexes = by_channel[channel]
                    for offset, index in enumerate(indexes, start=top - len(indexes) + 1):
                        pubs[index] = batch[index].stored(offset, epoch)
                        rows.append(batch[index].row(offset))
                    trims.append((channel, top - batch[indexes[-1]].retention.size))
                await conn.copy_records_to_table(
                    "tidings_publications", records=rows, schema_name=self.schema,
                    columns=["channel", "offset", "time", "expires", "data", "source", "sender"],
                )
                await conn.execute(TRIM, [c for c, _ in trims], [upto for _, upto in trims])
        return pubs  # type: ignore[return-value]

    async def _expire(self, now: int) -> int:
        with _failures("expiring"):
            status = await self._pool_or_fail().execute(
                "DELETE FROM tidings_publications WHERE expires IS NOT NULL AND expires <= $1",
                now,
            )
        return int(status.split()[-1])

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
