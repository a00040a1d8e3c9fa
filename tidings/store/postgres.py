"""PostgreSQL store, for a cluster: every node appends to and reads from one database.

URL: `postgresql://user:password@host:5432/database`, optionally `?schema=name` to keep
Tidings' tables in a schema of their own (created if missing); other query parameters go to
the server as connection settings.

Offsets stay gap-free when several nodes append to one channel at once: a batch locks the
rows of its channels (in sorted order, so two batches cannot deadlock) with
`INSERT ... ON CONFLICT DO UPDATE SET top = top + n RETURNING top`, which reserves the next
n offsets, then inserts the publications, in one transaction. Commits are synchronous
(`synchronous_commit = on`), so an acknowledged publish survives a crash of the database.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from tidings.model import Publication, StreamPosition
from tidings.store.base import AppendRequest, Store, StoreError

SCHEMA_VERSION = 1
MIGRATION_LOCK = 0x7469_6469  # advisory lock id: "tidi"

MIGRATIONS = {
    1: """
    CREATE TABLE IF NOT EXISTS tidings_channels (
        channel TEXT PRIMARY KEY,
        top BIGINT NOT NULL,
        epoch TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS tidings_publications (
        channel TEXT NOT NULL,
        "offset" BIGINT NOT NULL,
        time BIGINT NOT NULL,
        expires BIGINT,
        data BYTEA NOT NULL,
        source TEXT,
        sender TEXT,
        PRIMARY KEY (channel, "offset")
    );
    CREATE INDEX IF NOT EXISTS tidings_publications_expires
        ON tidings_publications (expires) WHERE expires IS NOT NULL;
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
NOT_EXPIRED = "(expires IS NULL OR expires > (extract(epoch from now()) * 1000)::bigint)"


def split_url(url: str) -> tuple[str, str | None]:
    """The DSN for asyncpg and the schema named by `?schema=`, if any."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    if schema is not None and not schema.replace("_", "").isalnum():
        raise ValueError(f"schema {schema!r}: letters, digits and '_' only")
    return urlunsplit(parts._replace(query=urlencode(query))), schema


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
        if self.schema:
            settings["search_path"] = self.schema
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, server_settings=settings
            )
            async with self._pool.acquire() as conn:
                await self._migrate(conn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"postgresql: cannot open the store: {exc}") from exc

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        """Create or upgrade the schema; one node at a time (an advisory lock serializes them)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS tidings_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            version = int(await conn.fetchval(
                "SELECT value FROM tidings_meta WHERE key = 'schema_version'"
            ) or 0)
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
        try:
            async with self._pool_or_fail().acquire() as conn, conn.transaction():
                tops = await conn.fetch(RESERVE, channels, counts, self._epoch)
                for record in tops:
                    channel, top, epoch = record["channel"], record["top"], record["epoch"]
                    indexes = by_channel[channel]
                    for offset, index in enumerate(indexes, start=top - len(indexes) + 1):
                        request = batch[index]
                        ttl = request.retention.ttl
                        expires = request.time + int(ttl * 1000) if ttl else None
                        pubs[index] = Publication(channel, offset, epoch, request.data,
                                                  request.time, request.source, request.sender)
                        rows.append((channel, offset, request.time, expires, request.data,
                                     request.source, request.sender))
                    trims.append((channel, top - batch[indexes[-1]].retention.size))
                await conn.copy_records_to_table(
                    "tidings_publications", records=rows, schema_name=self.schema,
                    columns=["channel", "offset", "time", "expires", "data", "source", "sender"],
                )
                await conn.execute(TRIM, [c for c, _ in trims], [upto for _, upto in trims])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgresql: append failed: {exc}") from exc
        return pubs  # type: ignore[return-value]

    async def _expire(self, now: int) -> int:
        status = await self._run(
            "execute",
            "DELETE FROM tidings_publications WHERE expires IS NOT NULL AND expires <= $1", now,
        )
        return int(status.split()[-1])

    # ---- reads -----------------------------------------------------------------------

    async def _run(self, method: str, query: str, *args):
        try:
            async with self._pool_or_fail().acquire() as conn:
                return await getattr(conn, method)(query, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgresql: {exc}") from exc

    async def _positions(self, channels: list[str]) -> dict[str, StreamPosition]:
        rows = await self._run(
            "fetch", "SELECT channel, top, epoch FROM tidings_channels WHERE channel = ANY($1)",
            channels,
        )
        found = {row["channel"]: StreamPosition(row["top"], row["epoch"]) for row in rows}
        return {ch: found.get(ch, StreamPosition(0, self._epoch)) for ch in channels}

    def _pubs(self, rows, epoch: str) -> list[Publication]:
        return [Publication(r["channel"], r["offset"], epoch, bytes(r["data"]), r["time"],
                            r["source"], r["sender"]) for r in rows]

    async def _history(self, channel, limit, since, reverse):
        if reverse:
            where, order = '"offset" < $2', "DESC"
            bound = since if since is not None else 2**62
        else:
            where, order = '"offset" > $2', "ASC"
            bound = since if since is not None else 0
        try:
            async with self._pool_or_fail().acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True
            ):
                position = (await self._positions_on(conn, channel))
                rows = await conn.fetch(
                    f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = $1 "
                    f"AND {where} AND {NOT_EXPIRED} ORDER BY \"offset\" {order} LIMIT $3",
                    channel, bound, limit,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"postgresql: history failed: {exc}") from exc
        return self._pubs(rows, position.epoch), position

    async def _positions_on(self, conn: asyncpg.Connection, channel: str) -> StreamPosition:
        row = await conn.fetchrow(
            "SELECT top, epoch FROM tidings_channels WHERE channel = $1", channel
        )
        return StreamPosition(row["top"], row["epoch"]) if row else StreamPosition(0, self._epoch)

    async def _read_range(self, channel: str, after: int, upto: int) -> list[Publication]:
        position = (await self._positions([channel]))[channel]
        rows = await self._run(
            "fetch",
            f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = $1 "
            f'AND "offset" > $2 AND "offset" <= $3 AND {NOT_EXPIRED} ORDER BY "offset"',
            channel, after, upto,
        )
        return self._pubs(rows, position.epoch)
