"""MySQL / MariaDB store, for a cluster whose database is MySQL 8 or MariaDB 10.6+.

URL: `mysql://user:password@host:3306/database`. The database is created if it does not
exist (so a throwaway one per test run is one URL away); query parameters other than
`charset` are refused, so a typo is not silently ignored.

The same design as the PostgreSQL store, in MySQL's terms:
- Offsets stay gap-free when several nodes append to one channel at once: a batch
  reserves the next n offsets of all its channels with one
  `INSERT ... ON DUPLICATE KEY UPDATE top = top + n` (rows in sorted channel order, so
  two batches lock them in one order), reads the new tops back inside the same
  transaction, inserts the publications in one multi-row INSERT and trims to the
  retention size, then commits. InnoDB can still pick a deadlock victim when two
  batches create new channel rows at once; the victim's transaction was rolled back
  whole, so the batch is simply tried again.
- Durability: an acknowledged publish was committed with InnoDB's
  `innodb_flush_log_at_trx_commit = 1` (the server default; a server set otherwise is
  reported at start, because Tidings cannot change it per session).
- Schema versions live in `tidings_meta`; a starting node takes the named lock
  `tidings-migrate:<database>` (GET_LOCK) before looking, so of several nodes starting
  at once one migrates and the others find it done. MySQL commits DDL implicitly, so the
  lock, not a transaction, is what keeps two nodes from migrating at once.
- Channel names are ASCII with a binary collation (`ascii_bin`): `room:A` and `room:a`
  are two channels, as everywhere else in Tidings.

Connections come from a bounded pool in autocommit mode; the writer opens an explicit
transaction per batch (READ COMMITTED, so concurrent batches do not take gap locks on
each other), reads open a read-only one when they need one snapshot. A connection that
failed is closed rather than returned to the pool. A statement with no answer for 30 s
fails with StoreError instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncmy
import orjson
from asyncmy import errors

from tidings.model import AckPosition, Publication, StreamPosition
from tidings.store.base import AppendRequest, Store, StoreError, now_ms

log = logging.getLogger("tidings.store.mysql")

SCHEMA_VERSION = 2
COMMAND_TIMEOUT = 30  # seconds: a database that stops answering fails the call, not hangs
CONNECT_TIMEOUT = 5
LOCK_TIMEOUT = 60  # seconds a starting node waits for another's migration
DEADLOCK_RETRIES = 5
CONNECTION_LOST_CODES = {2003, 2006, 2013, 2055, 1927, 4031}  # refused, gone, lost, killed
DEADLOCK_CODES = {1213, 1205}  # deadlock victim, lock wait timeout: rolled back

# MIGRATIONS[n] takes the schema from version n - 1 to n; add new steps, never edit old ones.
MIGRATIONS = {
    1: [
        """
        CREATE TABLE tidings_channels (
            channel VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
            top BIGINT NOT NULL,
            epoch VARCHAR(32) NOT NULL
        ) ENGINE=InnoDB
        """,
        """
        CREATE TABLE tidings_publications (
            channel VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            `offset` BIGINT NOT NULL,
            time BIGINT NOT NULL,
            expires BIGINT NULL,
            data LONGBLOB NOT NULL,
            source TEXT CHARACTER SET utf8mb4 NULL,
            sender TEXT CHARACTER SET utf8mb4 NULL,
            PRIMARY KEY (channel, `offset`),
            KEY tidings_publications_expires (expires)
        ) ENGINE=InnoDB
        """,
    ],
    2: [
        """
        CREATE TABLE tidings_ack_positions (
            user VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            subscription VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            destination TEXT CHARACTER SET utf8mb4 NOT NULL,
            `offset` BIGINT NOT NULL,
            epoch VARCHAR(32) NOT NULL,
            acked LONGTEXT NOT NULL,
            updated BIGINT NOT NULL,
            PRIMARY KEY (user, subscription)
        ) ENGINE=InnoDB
        """,
    ],
}

COLUMNS = "channel, `offset`, time, data, source, sender"
NOT_EXPIRED = "(expires IS NULL OR expires > %s)"


def split_url(url: str) -> tuple[dict, str]:
    """Connection settings for asyncmy and the database the URL names."""
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not database or "`" in database or "/" in database:
        raise ValueError(f"mysql: the URL must name a database (mysql://user@host/db): {url!r}")
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"charset"}
    if unknown:
        raise ValueError(f"mysql: unknown URL parameter(s) {sorted(unknown)}")
    settings = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "charset": query.get("charset", "utf8mb4"),
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": COMMAND_TIMEOUT,
        "autocommit": True,
    }
    return settings, database


def _code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _lost(exc: BaseException) -> bool:
    return (isinstance(exc, (OSError, asyncio.TimeoutError, errors.InterfaceError))
            or _code(exc) in CONNECTION_LOST_CODES)


@contextlib.contextmanager
def _failures(action: str) -> Iterator[None]:
    """Turn driver errors into StoreError, saying plainly when the connection was lost."""
    try:
        yield
    except StoreError:
        raise
    except (errors.MySQLError, OSError, asyncio.TimeoutError) as exc:
        if _lost(exc):
            raise StoreError(f"mysql: database unreachable or connection lost while {action} "
                             f"({type(exc).__name__}: {exc})") from exc
        raise StoreError(f"mysql: {action} failed: {exc}") from exc


class MySQLStore(Store):
    def __init__(self, url: str, *, pool_size: int = 10, **options):
        super().__init__(**options)
        self.settings, self.database = split_url(url)
        self.pool_size = pool_size
        self._pool = None
        self._epoch = ""

    # ---- lifecycle -------------------------------------------------------------------

    async def _open(self) -> None:
        with _failures("opening the store"):
            await self._create_database()
            self._pool = await asyncmy.create_pool(
                minsize=1, maxsize=self.pool_size, db=self.database, **self.settings)
            try:
                async with self._connection() as conn:
                    await self._migrate(conn)
                    await self._check_durability(conn)
            except BaseException:
                await self._close()
                raise

    async def _create_database(self) -> None:
        conn = await asyncmy.connect(**self.settings)
        try:
            async with conn.cursor() as cur:
                await cur.execute("SHOW DATABASES LIKE %s", (self.database,))
                if not await cur.fetchall():
                    await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}` "
                                      "CHARACTER SET utf8mb4")
        finally:
            await conn.ensure_closed()

    async def _migrate(self, conn) -> None:
        """Create or upgrade the schema; one node at a time (a named lock serializes them)."""
        lock = f"tidings-migrate:{self.database}"
        async with conn.cursor() as cur:
            await cur.execute("SELECT GET_LOCK(%s, %s)", (lock, LOCK_TIMEOUT))
            if (await cur.fetchone())[0] != 1:
                raise StoreError(f"mysql: another node held the migration lock for "
                                 f"{LOCK_TIMEOUT} s")
            try:
                # statements that cause no warnings: the driver logs every one it is told of
                await cur.execute("SHOW TABLES LIKE 'tidings_meta'")
                if not await cur.fetchall():
                    await cur.execute(
                        "CREATE TABLE tidings_meta (`key` VARCHAR(64) CHARACTER SET ascii "
                        "PRIMARY KEY, value TEXT NOT NULL) ENGINE=InnoDB")
                await cur.execute("SELECT value FROM tidings_meta WHERE `key` = 'schema_version'")
                row = await cur.fetchone()
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"mysql: the database schema is version {version}, newer than this "
                        f"Tidings understands ({SCHEMA_VERSION}): upgrade this node")
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step]:
                        await cur.execute(statement)
                    await cur.execute(
                        "INSERT INTO tidings_meta (`key`, value) VALUES ('schema_version', %s) "
                        "ON DUPLICATE KEY UPDATE value = VALUES(value)", (str(step),))
                await cur.execute("INSERT INTO tidings_meta (`key`, value) VALUES ('epoch', %s) "
                                  "ON DUPLICATE KEY UPDATE value = value", (secrets.token_hex(4),))
                await cur.execute("SELECT value FROM tidings_meta WHERE `key` = 'epoch'")
                self._epoch = (await cur.fetchone())[0]
            finally:
                await cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
                await cur.fetchall()

    async def _check_durability(self, conn) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@innodb_flush_log_at_trx_commit")
            (flush,) = await cur.fetchone()
        if int(flush) != 1:
            log.warning("mysql: innodb_flush_log_at_trx_commit is %s, not 1: an acknowledged "
                        "publish can be lost if the database server crashes", flush)

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator:
        """A pooled connection; one that failed is closed instead of going back as it is."""
        if self._pool is None:
            raise StoreError("mysql: store is not open")
        conn = await asyncio.wait_for(self._pool.acquire(), COMMAND_TIMEOUT)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        finally:
            self._pool.release(conn)

    # ---- writes ----------------------------------------------------------------------

    async def _commit(self, batch: list[AppendRequest]) -> list[Publication]:
        with _failures("appending"):
            for attempt in range(DEADLOCK_RETRIES):
                try:
                    return await self._commit_once(batch)
                except errors.OperationalError as exc:
                    if _code(exc) not in DEADLOCK_CODES or attempt == DEADLOCK_RETRIES - 1:
                        raise
                    log.info("mysql: batch chosen as deadlock victim; trying again")
        raise AssertionError("unreachable")

    async def _commit_once(self, batch: list[AppendRequest]) -> list[Publication]:
        by_channel: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(batch):
            by_channel[request.channel].append(index)
        channels = sorted(by_channel)  # sorted: concurrent batches lock rows in one order
        pubs: list[Publication | None] = [None] * len(batch)
        rows, trims = [], []
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            await conn.begin()
            try:
                await cur.execute(
                    "INSERT INTO tidings_channels (channel, top, epoch) VALUES "
                    + ", ".join(["(%s, %s, %s)"] * len(channels))
                    + " ON DUPLICATE KEY UPDATE top = top + VALUES(top)",
                    [v for c in channels for v in (c, len(by_channel[c]), self._epoch)])
                await cur.execute(
                    "SELECT channel, top, epoch FROM tidings_channels WHERE channel IN ("
                    + ", ".join(["%s"] * len(channels)) + ")", channels)
                for channel, top, epoch in await cur.fetchall():
                    indexes = by_channel[channel]
                    for offset, index in enumerate(indexes, start=top - len(indexes) + 1):
                        pubs[index] = batch[index].stored(offset, epoch)
                        rows.append(batch[index].row(offset))
                    upto = top - batch[indexes[-1]].retention.size
                    if upto > 0:
                        trims.append((channel, upto))
                await cur.execute(
                    "INSERT INTO tidings_publications "
                    "(channel, `offset`, time, expires, data, source, sender) VALUES "
                    + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows)),
                    [v for row in rows for v in row])
                if trims:
                    await cur.execute(
                        "DELETE FROM tidings_publications WHERE "
                        + " OR ".join(["(channel = %s AND `offset` <= %s)"] * len(trims)),
                        [v for trim in trims for v in trim])
                await conn.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.rollback()
                raise
        return pubs  # type: ignore[return-value]

    async def _expire(self, now: int) -> int:
        with _failures("expiring"):
            async with self._connection() as conn, conn.cursor() as cur:
                return await cur.execute(
                    "DELETE FROM tidings_publications WHERE expires IS NOT NULL "
                    "AND expires <= %s", (now,))

    # ---- reads -----------------------------------------------------------------------

    async def _positions(self, channels: list[str]) -> dict[str, StreamPosition]:
        found: dict[str, StreamPosition] = {}
        if channels:
            with _failures("reading positions"):
                async with self._connection() as conn, conn.cursor() as cur:
                    await cur.execute(
                        "SELECT channel, top, epoch FROM tidings_channels WHERE channel IN ("
                        + ", ".join(["%s"] * len(channels)) + ")", channels)
                    found = {c: StreamPosition(top, epoch)
                             for c, top, epoch in await cur.fetchall()}
        return {ch: found.get(ch, StreamPosition(0, self._epoch)) for ch in channels}

    async def _position_on(self, cur, channel: str) -> StreamPosition:
        await cur.execute("SELECT top, epoch FROM tidings_channels WHERE channel = %s",
                          (channel,))
        row = await cur.fetchone()
        return StreamPosition(row[0], row[1]) if row else StreamPosition(0, self._epoch)

    @staticmethod
    def _pubs(rows, epoch: str) -> list[Publication]:
        return [Publication(channel, offset, epoch, bytes(data), time, source, sender)
                for channel, offset, time, data, source, sender in rows]

    async def _history(self, channel, limit, since, reverse):
        with _failures("reading history"):
            async with self._connection() as conn, conn.cursor() as cur:
                # one snapshot for the position and the rows, as the other stores do
                await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                await cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                try:
                    position = await self._position_on(cur, channel)
                    if reverse:
                        where, order = "`offset` < %s", "DESC"
                        bound = position.offset + 1 if since is None else since
                    else:
                        where, order = "`offset` > %s", "ASC"
                        bound = 0 if since is None else since
                    await cur.execute(
                        f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = %s "
                        f"AND {where} AND {NOT_EXPIRED} ORDER BY `offset` {order} LIMIT %s",
                        (channel, bound, now_ms(), limit))
                    rows = await cur.fetchall()
                finally:
                    await conn.commit()
        return self._pubs(rows, position.epoch), position

    async def _read_range(self, channel: str, after: int, upto: int) -> list[Publication]:
        with _failures("reading history"):
            async with self._connection() as conn, conn.cursor() as cur:
                position = await self._position_on(cur, channel)
                await cur.execute(
                    f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = %s "
                    f"AND `offset` > %s AND `offset` <= %s AND {NOT_EXPIRED} "
                    "ORDER BY `offset`", (channel, after, upto, now_ms()))
                rows = await cur.fetchall()
        return self._pubs(rows, position.epoch)

    # ---- acknowledged positions ------------------------------------------------------

    async def load_ack_position(self, user: str, subscription: str) -> AckPosition | None:
        with _failures("reading an acknowledged position"):
            async with self._connection() as conn, conn.cursor() as cur:
                await cur.execute(
                    "SELECT destination, `offset`, epoch, acked FROM tidings_ack_positions "
                    "WHERE user = %s AND subscription = %s", (user, subscription))
                row = await cur.fetchone()
        if row is None:
            return None
        destination, offset, epoch, acked = row
        return AckPosition(destination, offset, epoch, tuple(orjson.loads(acked)))

    async def save_ack_positions(
        self, positions: dict[tuple[str, str], AckPosition | None]
    ) -> None:
        deleted = [key for key, position in positions.items() if position is None]
        kept = [(user, sub, p.destination, p.offset, p.epoch, orjson.dumps(list(p.acked)).decode(),
                 now_ms()) for (user, sub), p in positions.items() if p is not None]
        with _failures("storing acknowledged positions"):
            async with self._connection() as conn, conn.cursor() as cur:
                await conn.begin()
                try:
                    if deleted:
                        await cur.executemany(
                            "DELETE FROM tidings_ack_positions WHERE user = %s "
                            "AND subscription = %s", deleted)
                    if kept:
                        await cur.executemany(
                            "INSERT INTO tidings_ack_positions (user, subscription, destination, "
                            "`offset`, epoch, acked, updated) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                            "ON DUPLICATE KEY UPDATE destination = VALUES(destination), "
                            "`offset` = VALUES(`offset`), epoch = VALUES(epoch), "
                            "acked = VALUES(acked), updated = VALUES(updated)", kept)
                except BaseException:
                    await conn.rollback()
                    raise
                await conn.commit()
