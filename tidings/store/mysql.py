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
- Idempotency keys are claimed inside the batch's transaction, before the channel rows
  (`INSERT ... ON DUPLICATE KEY UPDATE`, sorted), so a node racing another on one key
  waits for that node's commit and answers its place; keys are kept as their SHA-256.
  A connection lost during a commit is CommitUnknown: the COMMIT may have gone through.

Connections come from a bounded pool in autocommit mode; the writer opens an explicit
transaction per batch (READ COMMITTED, so concurrent batches do not take gap locks on
each other), reads open a read-only one when they need one snapshot. A connection that
failed is closed rather than returned to the pool. A statement with no answer for 30 s
fails with StoreError instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncmy
import orjson
from asyncmy import errors

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

log = logging.getLogger("tidings.store.mysql")
T = TypeVar("T")

SCHEMA_VERSION = 4
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
    # The message center: idempotency keys, inbox messages with their read state. Keys are
    # kept as their SHA-256 (any key length fits InnoDB's index limit). IF NOT EXISTS: DDL
    # commits one statement at a time, so a step cut short can be run again.
    3: [
        """
        CREATE TABLE IF NOT EXISTS tidings_idempotency (
            digest BINARY(32) NOT NULL,
            channel VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            `offset` BIGINT NOT NULL,
            epoch VARCHAR(32) NOT NULL,
            time BIGINT NOT NULL,
            expires BIGINT NOT NULL,
            PRIMARY KEY (digest, channel),
            KEY tidings_idempotency_expires (expires)
        ) ENGINE=InnoDB
        """,
        """
        CREATE TABLE IF NOT EXISTS tidings_inbox (
            recipient VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            `offset` BIGINT NOT NULL,
            source VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            time BIGINT NOT NULL,
            expires BIGINT NULL,
            data LONGBLOB NOT NULL,
            is_read TINYINT NOT NULL DEFAULT 0,
            is_seen TINYINT NOT NULL DEFAULT 0,
            is_archived TINYINT NOT NULL DEFAULT 0,
            PRIMARY KEY (recipient, `offset`),
            KEY tidings_inbox_source (recipient, source, `offset`),
            KEY tidings_inbox_counts (recipient, is_archived, source, is_read, is_seen, expires),
            KEY tidings_inbox_expires (expires)
        ) ENGINE=InnoDB
        """,
        """
        CREATE TABLE IF NOT EXISTS tidings_inbox_users (
            recipient VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
            version BIGINT NOT NULL
        ) ENGINE=InnoDB
        """,
    ],
    # shared notifications: read and seen up to an offset of the shared channel, per source
    4: [
        """
        CREATE TABLE IF NOT EXISTS tidings_inbox_cursors (
            recipient VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            channel VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            source VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            read_upto BIGINT NOT NULL DEFAULT 0,
            seen_upto BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (recipient, channel, source)
        ) ENGINE=InnoDB
        """,
    ],
}

COLUMNS = "channel, `offset`, time, data, source, sender"
NOT_EXPIRED = "(expires IS NULL OR expires > %s)"
# Claim idempotency keys (rows in sorted order, so concurrent batches lock them in one
# order; a key another node is inserting waits for that node's commit). A key past its
# window is taken over with `offset` 0, as a new one is inserted: after this, the rows at
# offset 0 are the keys this batch appends for, the rest name a publication already stored.
# `expires` is assigned last, so every test before it reads the old value.
CLAIM = """
INSERT INTO tidings_idempotency (digest, channel, `offset`, epoch, time, expires) VALUES {rows}
ON DUPLICATE KEY UPDATE `offset` = IF(expires <= %s, 0, `offset`),
    epoch = IF(expires <= %s, '', epoch), time = IF(expires <= %s, 0, time),
    expires = IF(expires <= %s, VALUES(expires), expires)
"""
PLACE_KEYS = """
INSERT INTO tidings_idempotency (digest, channel, `offset`, epoch, time, expires) VALUES {rows}
ON DUPLICATE KEY UPDATE `offset` = VALUES(`offset`), epoch = VALUES(epoch), time = VALUES(time)
"""
INBOX_LIVE = "recipient = %s AND is_archived = 0 AND (expires IS NULL OR expires > %s)"
INBOX_COLUMNS = "`offset`, source, time, data, is_read, is_seen"
# the shared channel's sourced publications, each with the user's cursor of its source
# (parameters: user, channel, now); sources compare as the cursors' binary collation
SHARED_SOURCE = "p.source COLLATE utf8mb4_bin"
SHARED_FROM = f"""tidings_publications p LEFT JOIN tidings_inbox_cursors c
    ON c.recipient = %s AND c.channel = p.channel AND c.source = {SHARED_SOURCE}
WHERE p.channel = %s AND p.source IS NOT NULL AND (p.expires IS NULL OR p.expires > %s)"""
SHARED_READ = "p.`offset` <= COALESCE(c.read_upto, 0)"
SHARED_SEEN = "p.`offset` <= GREATEST(COALESCE(c.read_upto, 0), COALESCE(c.seen_upto, 0))"
SHARED_COUNTS = (f"SELECT {SHARED_SOURCE}, COUNT(*), SUM(NOT ({SHARED_READ})), "
                 f"SUM(NOT ({SHARED_SEEN})) FROM {SHARED_FROM} GROUP BY {SHARED_SOURCE}")
SHARED_MESSAGES = (f"(SELECT p.`offset`, p.source, p.time, p.data, {SHARED_READ}, {SHARED_SEEN} "
                   f"FROM {SHARED_FROM} AND {SHARED_SOURCE} = %s "
                   "ORDER BY p.`offset` DESC LIMIT %s)")
# move cursors (column: read_upto or seen_upto) up to `upto`, never back, for one source
# or all (parameters: user, upto, channel, now, [source])
MOVE_CURSOR = f"""INSERT INTO tidings_inbox_cursors (recipient, channel, source, {{column}})
SELECT %s, channel, {SHARED_SOURCE}, LEAST(MAX(`offset`), %s) FROM tidings_publications p
WHERE channel = %s AND source IS NOT NULL AND (expires IS NULL OR expires > %s){{only}}
GROUP BY channel, {SHARED_SOURCE}
ON DUPLICATE KEY UPDATE {{column}} = GREATEST({{column}}, VALUES({{column}}))"""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _key_expires(request: AppendRequest) -> int:
    """When the request's idempotency key may be used again (ms)."""
    return request.time + int(request.idempotency.window * 1000)


def _values(count: int, width: int) -> str:
    """`(%s, ...), (%s, ...)`: `count` rows of `width` placeholders."""
    return ", ".join(["(" + ", ".join(["%s"] * width) + ")"] * count)


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
def _failures(action: str, lost_error: type[StoreError] = StoreError) -> Iterator[None]:
    """Turn driver errors into StoreError, saying plainly when the connection was lost
    (as `lost_error`: CommitUnknown for a commit, whose outcome a lost connection hides)."""
    try:
        yield
    except StoreError:
        raise
    except (errors.MySQLError, OSError, asyncio.TimeoutError) as exc:
        if _lost(exc):
            raise lost_error(f"mysql: database unreachable or connection lost while {action} "
                             f"({type(exc).__name__}: {exc})") from exc
        raise StoreError(f"mysql: {action} failed: {exc}") from exc


def _newest_first(messages: list[InboxMessage]) -> dict[str, list[InboxMessage]]:
    """Messages by source, newest first (a UNION promises no order)."""
    grouped: dict[str, list[InboxMessage]] = {}
    for message in sorted(messages, key=lambda m: -m.offset):
        grouped.setdefault(message.source, []).append(message)
    return grouped


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
        try:
            conn = await asyncio.wait_for(self._pool.acquire(), COMMAND_TIMEOUT)
        except asyncio.TimeoutError:  # nothing was sent: a plain failure, not a lost commit
            raise StoreError(f"mysql: no free connection within {COMMAND_TIMEOUT} s") from None
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        finally:
            self._pool.release(conn)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator:
        """A cursor in one READ COMMITTED transaction: committed at the end, rolled back on
        error. READ COMMITTED, so concurrent writers take no gap locks on each other."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            await conn.begin()
            try:
                yield cur
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.rollback()
                raise
            await conn.commit()

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator:
        """A cursor whose reads all see one snapshot, as the other stores' reads do."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            await cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                yield cur
            finally:
                await conn.commit()

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run a transaction, again if InnoDB chose it as a deadlock victim (rolled back whole)."""
        for tries in range(1, DEADLOCK_RETRIES + 1):
            try:
                return await attempt()
            except errors.OperationalError as exc:
                if _code(exc) not in DEADLOCK_CODES or tries == DEADLOCK_RETRIES:
                    raise
                log.info("mysql: transaction chosen as deadlock victim; trying again")
        raise AssertionError("unreachable")

    # ---- writes ----------------------------------------------------------------------

    async def _commit(self, batch: list[AppendRequest]) -> list[Publication | Duplicate]:
        with _failures("appending", CommitUnknown):
            return await self._retrying(lambda: self._commit_once(batch))

    async def _commit_once(self, batch: list[AppendRequest]) -> list[Publication | Duplicate]:
        results: list[Publication | Duplicate | None] = [None] * len(batch)
        repeats = repeats_in_batch(batch)
        keyed = [i for i, r in enumerate(batch) if r.idempotency is not None and i not in repeats]
        async with self._transaction() as cur:
            if keyed:
                await self._claim_keys(cur, batch, keyed, results)
            fresh = [i for i in range(len(batch)) if results[i] is None and i not in repeats]
            if fresh:
                await self._append(cur, batch, fresh, results)
            placed = [i for i in keyed if isinstance(results[i], Publication)]
            if placed:
                await cur.execute(PLACE_KEYS.format(rows=_values(len(placed), 6)), [
                    v for i in placed for v in (
                        _digest(batch[i].idempotency.key), results[i].channel,
                        results[i].offset, results[i].epoch, results[i].time,
                        _key_expires(batch[i]))])
        resolve_repeats(results, repeats)
        return results  # type: ignore[return-value]

    async def _claim_keys(self, cur, batch: list[AppendRequest], keyed: list[int],
                          results: list) -> None:
        """Claim the batch's idempotency keys; answer the ones already used with Duplicate."""
        now = now_ms()
        claims = sorted((_digest(batch[i].idempotency.key), batch[i].channel, i) for i in keyed)
        await cur.execute(
            CLAIM.format(rows=", ".join(["(%s, %s, 0, '', 0, %s)"] * len(claims))),
            [v for digest, channel, i in claims for v in (digest, channel,
                                                         _key_expires(batch[i]))]
            + [now] * 4)
        await cur.execute(
            "SELECT digest, channel, `offset`, epoch, time FROM tidings_idempotency WHERE "
            + " OR ".join(["(digest = %s AND channel = %s)"] * len(claims)),
            [v for digest, channel, _ in claims for v in (digest, channel)])
        places = {(digest, channel): (offset, epoch, time)
                  for digest, channel, offset, epoch, time in await cur.fetchall()}
        for digest, channel, i in claims:
            offset, epoch, time = places[(bytes(digest), channel)]
            if offset:  # not claimed by this batch: the first append's place
                results[i] = Duplicate(channel, offset, epoch, time)

    async def _append(self, cur, batch: list[AppendRequest], fresh: list[int],
                      results: list) -> None:
        """Reserve the offsets, insert the publications (and inbox messages), trim both."""
        by_channel: dict[str, list[int]] = defaultdict(list)
        for index in fresh:
            by_channel[batch[index].channel].append(index)
        channels = sorted(by_channel)  # sorted: concurrent batches lock rows in one order
        rows, trims, inbox, inbox_trims = [], [], [], {}
        await cur.execute(
            "INSERT INTO tidings_channels (channel, top, epoch) VALUES "
            + _values(len(channels), 3) + " ON DUPLICATE KEY UPDATE top = top + VALUES(top)",
            [v for c in channels for v in (c, len(by_channel[c]), self._epoch)])
        await cur.execute(
            "SELECT channel, top, epoch FROM tidings_channels WHERE channel IN ("
            + ", ".join(["%s"] * len(channels)) + ")", channels)
        for channel, top, epoch in await cur.fetchall():
            indexes = by_channel[channel]
            for offset, index in enumerate(indexes, start=top - len(indexes) + 1):
                request = batch[index]
                results[index] = request.stored(offset, epoch)
                rows.append(request.row(offset))
                message = request.inbox_row(offset)
                if message is not None:
                    inbox.append(message)
                    inbox_trims[(request.inbox.user, request.source)] = request.inbox.max_messages
            upto = top - batch[indexes[-1]].retention.size
            if upto > 0:
                trims.append((channel, upto))
        await cur.execute(
            "INSERT INTO tidings_publications "
            "(channel, `offset`, time, expires, data, source, sender) VALUES "
            + _values(len(rows), 7), [v for row in rows for v in row])
        if trims:
            await cur.execute(
                "DELETE FROM tidings_publications WHERE "
                + " OR ".join(["(channel = %s AND `offset` <= %s)"] * len(trims)),
                [v for trim in trims for v in trim])
        if inbox:
            await cur.execute(
                "INSERT INTO tidings_inbox (recipient, `offset`, source, time, expires, data) "
                "VALUES " + _values(len(inbox), 6), [v for row in inbox for v in row])
            await self._trim_inbox(cur, inbox_trims)

    @staticmethod
    async def _trim_inbox(cur, keep: dict[tuple[str, str], int]) -> None:
        """Keep each (user, source)'s newest `keep` inbox messages.

        Two statements, because MySQL cannot delete from a table a subquery reads: one finds
        each pair's newest offset past the limit, one deletes from there down.
        """
        pairs = sorted(keep.items())
        await cur.execute(" UNION ALL ".join([
            "(SELECT recipient, source, `offset` FROM tidings_inbox WHERE recipient = %s "
            "AND source = %s ORDER BY `offset` DESC LIMIT 1 OFFSET %s)"] * len(pairs)),
            [v for (user, source), kept in pairs for v in (user, source, kept)])
        cuts = await cur.fetchall()
        if cuts:
            await cur.execute(
                "DELETE FROM tidings_inbox WHERE " + " OR ".join(
                    ["(recipient = %s AND source = %s AND `offset` <= %s)"] * len(cuts)),
                [v for cut in cuts for v in cut])

    async def _expire(self, now: int) -> int:
        with _failures("expiring"):
            async with self._connection() as conn, conn.cursor() as cur:
                expired = await cur.execute(
                    "DELETE FROM tidings_publications WHERE expires IS NOT NULL "
                    "AND expires <= %s", (now,))
                await cur.execute(
                    "DELETE FROM tidings_inbox WHERE expires IS NOT NULL AND expires <= %s",
                    (now,))
                await cur.execute("DELETE FROM tidings_idempotency WHERE expires <= %s", (now,))
        return expired

    # ---- the inbox -------------------------------------------------------------------

    async def _counts_on(self, cur, user: str, now: int,
                         source: str | None = None) -> InboxCounts:
        only = " AND source = %s" if source is not None else ""
        await cur.execute(
            "SELECT source, COUNT(*), SUM(is_read = 0), SUM(is_seen = 0) "
            f"FROM tidings_inbox WHERE {INBOX_LIVE}{only} GROUP BY source",
            (user, now) + ((source,) if source is not None else ()))
        rows = await cur.fetchall()
        await cur.execute(
            "SELECT (SELECT version FROM tidings_inbox_users WHERE recipient = %s), "
            "(SELECT MAX(`offset`) FROM tidings_inbox WHERE recipient = %s)", (user, user))
        version, top = await cur.fetchone()
        shared, shared_top = await self._shared_counts_on(cur, user, now, source)
        return InboxCounts(  # SUM is a DECIMAL in MySQL
            {name: SourceCounts(int(total), int(unread), int(unseen))
             for name, total, unread, unseen in rows}, version or 0, top or 0,
            shared, shared_top)

    async def _shared_counts_on(self, cur, user: str, now: int, source: str | None = None
                                ) -> tuple[dict[str, SourceCounts], int]:
        """Counts of the shared notifications from the user's cursors; the channel's top."""
        channel = self.shared_channel
        if channel is None:
            return {}, 0
        await cur.execute(SHARED_COUNTS, (user, channel, now))
        rows = await cur.fetchall()
        await cur.execute("SELECT top FROM tidings_channels WHERE channel = %s", (channel,))
        top = await cur.fetchone()
        return ({name: SourceCounts(int(total), int(unread), int(unseen))
                 for name, total, unread, unseen in rows if source is None or name == source},
                top[0] if top else 0)

    async def _move_cursors_on(self, cur, user: str, change: ReadChange, now: int) -> int:
        """Move the shared cursors a change moves; how many shared messages it changed."""
        column = cursor_column(change)
        if column is None or self.shared_channel is None:
            return 0
        counted = "unread" if column == "read_upto" else "unseen"
        only = (change.source,) if change.source is not None else ()
        before, _ = await self._shared_counts_on(cur, user, now, change.source)
        if not before:
            return 0
        await cur.execute(
            MOVE_CURSOR.format(column=column,
                               only=f" AND {SHARED_SOURCE} = %s" if only else ""),
            (user, change.upto if change.upto is not None else 2**63 - 1,
             self.shared_channel, now, *only))
        after, _ = await self._shared_counts_on(cur, user, now, change.source)
        return sum(getattr(c, counted) - getattr(after[name], counted)
                   for name, c in before.items())

    @staticmethod
    def _messages(rows) -> list[InboxMessage]:
        return [InboxMessage(o, s, t, bytes(d), bool(r), bool(n)) for o, s, t, d, r, n in rows]

    async def _inbox_view(self, user: str, limit: int, now: int) -> InboxView:
        rows: list = []
        with _failures("reading the inbox"):
            async with self._snapshot() as cur:
                counts = await self._counts_on(cur, user, now)
                if counts.sources:  # each source's newest, walking its index backwards
                    await cur.execute(" UNION ALL ".join([
                        f"(SELECT {INBOX_COLUMNS} FROM tidings_inbox WHERE {INBOX_LIVE} "
                        "AND source = %s ORDER BY `offset` DESC LIMIT %s)"] * len(counts.sources)),
                        [v for source in counts.sources for v in (user, now, source, limit)])
                    rows = list(await cur.fetchall())
                shared_rows: list = []
                if counts.shared:
                    await cur.execute(" UNION ALL ".join([SHARED_MESSAGES] * len(counts.shared)),
                                      [v for source in counts.shared for v in (
                                          user, self.shared_channel, now, source, limit)])
                    shared_rows = list(await cur.fetchall())
        return InboxView(counts, _newest_first(self._messages(rows)),
                         _newest_first(self._messages(shared_rows)))

    async def _inbox_page(self, user, source, before, limit, now):
        with _failures("reading the inbox"):
            async with self._snapshot() as cur:
                counts = await self._counts_on(cur, user, now, source)
                await cur.execute(
                    f"SELECT {INBOX_COLUMNS} FROM tidings_inbox WHERE {INBOX_LIVE} "
                    "AND source = %s AND `offset` < %s ORDER BY `offset` DESC LIMIT %s",
                    (user, now, source, before if before is not None else 2**63 - 1, limit))
                rows = await cur.fetchall()
        return counts, self._messages(rows)

    async def _inbox_change(self, user: str, change: ReadChange,
                            now: int) -> tuple[int, InboxCounts]:
        terms = change_filter(change)
        where = "recipient = %s AND (expires IS NULL OR expires > %s)" + "".join(
            f" AND {column.replace('offset', '`offset`')} %s" for column, _ in terms)
        params = (user, now, *(value for _, value in terms))
        sets, needs = CHANGE_SETS[change.kind]

        async def once() -> tuple[int, InboxCounts] | None:
            async with self._transaction() as cur:
                if change.offset is not None:
                    await cur.execute(f"SELECT 1 FROM tidings_inbox WHERE {where}", params)
                    if await cur.fetchone() is None:
                        return None  # nothing written: the commit ends an empty transaction
                changed = 0
                if not change.shared:
                    changed = await cur.execute(
                        f"UPDATE tidings_inbox SET {sets} WHERE {where} AND {needs}", params)
                changed += await self._move_cursors_on(cur, user, change, now)
                await cur.execute(
                    "INSERT INTO tidings_inbox_users (recipient, version) VALUES (%s, 1) "
                    "ON DUPLICATE KEY UPDATE version = version + 1", (user,))
                return changed, await self._counts_on(cur, user, now)

        with _failures("changing read state"):
            outcome = await self._retrying(once)
        if outcome is None:
            raise NoSuchMessage(change.offset)
        return outcome

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
            async with self._snapshot() as cur:  # one snapshot for the position and the rows
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
