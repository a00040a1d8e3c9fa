"""SQLite store: the embedded default. One file, WAL mode, durable commits.

The writer and the reader each own a connection and a thread of their own, so history reads
never wait behind a commit (WAL lets readers see the last committed state while a writer
works). `synchronous=FULL` makes every commit fsync; group commit makes that one fsync a
batch, not one per publication.

Checkpoints (copying the WAL back into the database file) run on a third connection once a
second, never inside a commit: SQLite's automatic checkpoint would run in the committing
thread and hold up every publish of that batch for the length of a database-file fsync.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

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
    Duplicate,
    Store,
    StoreError,
    change_filter,
    cursor_column,
    now_ms,
    repeats_in_batch,
    resolve_repeats,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tidings_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tidings_channels (
    channel TEXT PRIMARY KEY,
    top INTEGER NOT NULL,
    epoch TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tidings_publications (
    channel TEXT NOT NULL,
    offset INTEGER NOT NULL,
    time INTEGER NOT NULL,
    expires INTEGER,
    data BLOB NOT NULL,
    source TEXT,
    sender TEXT,
    PRIMARY KEY (channel, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tidings_publications_expires
    ON tidings_publications (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS tidings_ack_positions (
    user TEXT NOT NULL,
    subscription TEXT NOT NULL,
    destination TEXT NOT NULL,
    offset INTEGER NOT NULL,
    epoch TEXT NOT NULL,
    acked TEXT NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (user, subscription)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tidings_idempotency (
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    offset INTEGER NOT NULL,
    epoch TEXT NOT NULL,
    time INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (key, channel)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tidings_idempotency_expires ON tidings_idempotency (expires);
CREATE TABLE IF NOT EXISTS tidings_inbox (
    recipient TEXT NOT NULL,
    offset INTEGER NOT NULL,
    source TEXT NOT NULL,
    time INTEGER NOT NULL,
    expires INTEGER,
    data BLOB NOT NULL,
    is_read INTEGER NOT NULL DEFAULT 0,
    is_seen INTEGER NOT NULL DEFAULT 0,
    is_archived INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tidings_inbox_source ON tidings_inbox (recipient, source, offset);
-- covers the counts: they read this index only, never the rows
CREATE INDEX IF NOT EXISTS tidings_inbox_counts
    ON tidings_inbox (recipient, is_archived, source, is_read, is_seen, expires);
CREATE INDEX IF NOT EXISTS tidings_inbox_expires
    ON tidings_inbox (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS tidings_inbox_users (
    recipient TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
-- shared notifications: read and seen up to an offset of the shared channel, per source
CREATE TABLE IF NOT EXISTS tidings_inbox_cursors (
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    source TEXT NOT NULL,
    read_upto INTEGER NOT NULL DEFAULT 0,
    seen_upto INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient, channel, source)
) WITHOUT ROWID;
"""
INBOX_LIVE = "recipient = ? AND is_archived = 0 AND (expires IS NULL OR expires > ?)"
INBOX_COLUMNS = "offset, source, time, data, is_read, is_seen"
# the shared channel's sourced publications, each with the user's cursor of its source
# (parameters: user, channel, now)
SHARED_FROM = """tidings_publications p LEFT JOIN tidings_inbox_cursors c
    ON c.recipient = ? AND c.channel = p.channel AND c.source = p.source
WHERE p.channel = ? AND p.source IS NOT NULL AND (p.expires IS NULL OR p.expires > ?)"""
SHARED_READ = "p.offset <= COALESCE(c.read_upto, 0)"
SHARED_SEEN = "p.offset <= MAX(COALESCE(c.read_upto, 0), COALESCE(c.seen_upto, 0))"
SHARED_COUNTS = (f"SELECT p.source, COUNT(*), SUM(NOT ({SHARED_READ})), SUM(NOT ({SHARED_SEEN})) "
                 f"FROM {SHARED_FROM} GROUP BY p.source")
SHARED_MESSAGES = (f"SELECT p.offset, p.source, p.time, p.data, {SHARED_READ}, {SHARED_SEEN} "
                   f"FROM {SHARED_FROM} AND p.source = ? ORDER BY p.offset DESC LIMIT ?")
# move cursors (column: read_upto or seen_upto) up to `upto`, never back, for one source
# or all (parameters: user, upto, channel, now, [source])
MOVE_CURSOR = """INSERT INTO tidings_inbox_cursors (recipient, channel, source, {column})
SELECT ?, channel, source, MIN(MAX(offset), ?) FROM tidings_publications
WHERE channel = ? AND source IS NOT NULL AND (expires IS NULL OR expires > ?){only}
GROUP BY source
ON CONFLICT (recipient, channel, source) DO UPDATE
SET {column} = MAX({column}, excluded.{column})"""

COLUMNS = "channel, offset, time, data, source, sender"
CHECKPOINT_INTERVAL = 1.0
BUSY_TIMEOUT = 5.0  # seconds a statement waits for another process's write lock
MAX_CACHED_TOPS = 100_000  # channel tops the writer remembers; past that it starts again
# The writer's page cache, in KiB (SQLite's default is 2 MiB). Every channel written to in a
# batch dirties the last leaf page of its history; past 500 or so channels those no longer
# fit SQLite's default and every append read its page back from the file (an insert took
# about 14 us instead of 5). Pages are allocated only as the writer touches them.
WRITER_CACHE_KIB = 64 * 1024
log = logging.getLogger("tidings.store.sqlite")


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                           timeout=BUSY_TIMEOUT)
    _switch_to_wal(conn)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Turn WAL on, waiting out another process doing the same on a fresh file.

    The switch needs the file to itself, and SQLite answers "database is locked" at once,
    without its busy handler, when two connections would otherwise wait for each other
    (two workers opening one new file at the same moment).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SQLiteStore(Store):
    def __init__(self, path: str, **options):
        super().__init__(**options)
        self.path = path
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-sqlite-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-sqlite-read")
        self._writer_conn: sqlite3.Connection | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-sqlite-wal")
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointer: asyncio.Task | None = None
        self._epoch = ""
        self._tops: dict[str, tuple[int, str]] = {}  # writer thread only (see _known_tops)
        self._data_version: int | None = None

    async def _on(self, thread: ThreadPoolExecutor, fn, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    # ---- lifecycle -------------------------------------------------------------------

    async def _open(self) -> None:
        await self._on(self._write_thread, self._open_sync)
        self._checkpoint_conn = await self._on(self._checkpoint_thread, _connect, self.path)
        self._checkpointer = self.supervisor.spawn("sqlite-checkpoint", self._checkpoint_loop)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            try:
                await self._on(self._checkpoint_thread, self._checkpoint_conn.execute,
                               "PRAGMA wal_checkpoint(PASSIVE)")
            except StoreError as exc:  # busy or failing disk: the next round tries again
                log.warning("checkpoint failed: %s", exc)

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer_conn = _connect(self.path)
        self._writer_conn.execute("PRAGMA wal_autocheckpoint=0")
        self._writer_conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        # One immediate transaction: a worker opening the same new file at the same moment
        # waits for it, then finds the tables and the epoch made (no racing schema writes).
        self._writer_conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}")
        try:
            row = self._writer_conn.execute(
                "SELECT value FROM tidings_meta WHERE key = 'epoch'"
            ).fetchone()
            if row is None:
                self._epoch = secrets.token_hex(4)
                self._writer_conn.execute(
                    "INSERT INTO tidings_meta (key, value) VALUES ('epoch', ?)", (self._epoch,)
                )
            else:
                self._epoch = row[0]
            self._writer_conn.execute("COMMIT")
        except BaseException:
            self._writer_conn.execute("ROLLBACK")
            raise
        self._reader_conn = _connect(self.path)

    async def _close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
        for thread, conn in (
            (self._write_thread, self._writer_conn),
            (self._read_thread, self._reader_conn),
            (self._checkpoint_thread, self._checkpoint_conn),
        ):
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(thread, conn.close)
            thread.shutdown(wait=True)

    # ---- writes ----------------------------------------------------------------------

    async def _commit(self, batch: list[AppendRequest]) -> list[Publication | Duplicate]:
        return await self._on(self._write_thread, self._commit_sync, batch)

    def _commit_sync(self, batch: list[AppendRequest]) -> list[Publication | Duplicate]:
        conn = self._writer_conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            results: list[Publication | Duplicate | None] = [None] * len(batch)
            repeats = repeats_in_batch(batch)
            fresh = []
            for index, request in enumerate(batch):
                if index in repeats:
                    continue
                if request.idempotency is not None:
                    row = conn.execute(
                        "SELECT offset, epoch, time FROM tidings_idempotency "
                        "WHERE key = ? AND channel = ? AND expires > ?",
                        (request.idempotency.key, request.channel, request.time),
                    ).fetchone()
                    if row is not None:
                        results[index] = Duplicate(request.channel, *row)
                        continue
                fresh.append(index)
            known = self._known_tops(conn)
            tops: dict[str, list] = {}  # channel -> [top, epoch, retention size]
            for index in fresh:
                request = batch[index]
                if request.channel not in tops:
                    row = known.get(request.channel)
                    if row is None:
                        row = conn.execute(
                            "SELECT top, epoch FROM tidings_channels WHERE channel = ?",
                            (request.channel,),
                        ).fetchone()
                    top, epoch = row if row else (0, self._epoch)
                    tops[request.channel] = [top, epoch, request.retention.size]
            rows, keys, inbox, trims = [], [], [], {}
            for index in fresh:
                request = batch[index]
                state = tops[request.channel]
                state[0] += 1
                state[2] = request.retention.size
                ttl = request.retention.ttl
                expires = request.time + int(ttl * 1000) if ttl else None
                pub = Publication(
                    request.channel, state[0], state[1], request.data, request.time,
                    request.source, request.sender,
                )
                results[index] = pub
                rows.append(
                    (pub.channel, pub.offset, pub.time, expires, pub.data, pub.source, pub.sender)
                )
                if request.idempotency is not None:
                    window = int(request.idempotency.window * 1000)
                    keys.append((request.idempotency.key, pub.channel, pub.offset, pub.epoch,
                                 pub.time, pub.time + window))
                message = request.inbox_row(pub.offset)
                if message is not None:
                    inbox.append(message)
                    trims[(request.inbox.user, pub.source)] = request.inbox.max_messages
            conn.executemany(
                "INSERT INTO tidings_publications "
                "(channel, offset, time, expires, data, source, sender) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO tidings_channels (channel, top, epoch) VALUES (?, ?, ?) "
                "ON CONFLICT (channel) DO UPDATE SET top = excluded.top",
                [(channel, top, epoch) for channel, (top, epoch, _) in tops.items()],
            )
            # the rest is rare on the direct-message path: a statement only when it has rows
            trimmed = [(channel, top - size) for channel, (top, _, size) in tops.items()
                       if top > size]  # only channels holding more than they keep
            if trimmed:
                conn.executemany(
                    "DELETE FROM tidings_publications WHERE channel = ? AND offset <= ?", trimmed)
            if keys:
                conn.executemany(
                    "INSERT OR REPLACE INTO tidings_idempotency "
                    "(key, channel, offset, epoch, time, expires) VALUES (?, ?, ?, ?, ?, ?)",
                    keys,
                )
            if inbox:
                conn.executemany(
                    "INSERT INTO tidings_inbox (recipient, offset, source, time, expires, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    inbox,
                )
                conn.executemany(  # keep each (user, source)'s newest max_messages
                    "DELETE FROM tidings_inbox WHERE recipient = ? AND source = ? AND offset <= "
                    "(SELECT offset FROM tidings_inbox WHERE recipient = ? AND source = ? "
                    "ORDER BY offset DESC LIMIT 1 OFFSET ?)",
                    [(user, source, user, source, keep) for (user, source), keep in trims.items()],
                )
            conn.execute("COMMIT")
        except BaseException:
            self._tops.clear()
            conn.execute("ROLLBACK")
            raise
        self._remember_tops(tops)
        resolve_repeats(results, repeats)
        return results  # type: ignore[return-value]

    def _known_tops(self, conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
        """The channel tops this writer committed last, unless another connection wrote since.

        Saves a SELECT per channel and batch (a direct message is a batch's only publication
        to its channel, so that was one query per message). `data_version` changes only when
        another connection (another process on the same file) commits; then every cached top
        may be stale and is read again.
        """
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if version != self._data_version:
            self._tops.clear()
            self._data_version = version
        return self._tops

    def _remember_tops(self, tops: dict[str, list]) -> None:
        if len(self._tops) + len(tops) > MAX_CACHED_TOPS:
            self._tops.clear()
        for channel, (top, epoch, _) in tops.items():
            self._tops[channel] = (top, epoch)

    async def _expire(self, now: int) -> int:
        return await self._on(self._write_thread, self._expire_sync, now)

    def _expire_sync(self, now: int) -> int:
        conn = self._writer_conn
        assert conn is not None
        cursor = conn.execute(
            "DELETE FROM tidings_publications WHERE expires IS NOT NULL AND expires <= ?", (now,)
        )
        conn.execute("DELETE FROM tidings_inbox WHERE expires IS NOT NULL AND expires <= ?",
                     (now,))
        conn.execute("DELETE FROM tidings_idempotency WHERE expires <= ?", (now,))
        return cursor.rowcount

    # ---- the inbox -------------------------------------------------------------------

    def _counts_sync(self, conn: sqlite3.Connection, user: str, now: int,
                     source: str | None = None) -> InboxCounts:
        only = " AND source = ?" if source is not None else ""
        rows = conn.execute(
            "SELECT source, COUNT(*), SUM(is_read = 0), SUM(is_seen = 0) "
            f"FROM tidings_inbox WHERE {INBOX_LIVE}{only} GROUP BY source",
            (user, now) + ((source,) if source is not None else ()),
        ).fetchall()
        version = conn.execute(
            "SELECT version FROM tidings_inbox_users WHERE recipient = ?", (user,)
        ).fetchone()
        (top,) = conn.execute("SELECT MAX(offset) FROM tidings_inbox WHERE recipient = ?",
                              (user,)).fetchone()
        shared, shared_top = self._shared_counts_sync(conn, user, now, source)
        return InboxCounts({name: SourceCounts(*counts) for name, *counts in rows},
                           version[0] if version else 0, top or 0, shared, shared_top)

    def _shared_counts_sync(self, conn: sqlite3.Connection, user: str, now: int,
                            source: str | None = None) -> tuple[dict[str, SourceCounts], int]:
        """Counts of the shared notifications from the user's cursors; the channel's top."""
        channel = self.shared_channel
        if channel is None:
            return {}, 0
        rows = conn.execute(SHARED_COUNTS, (user, channel, now)).fetchall()
        top = conn.execute("SELECT top FROM tidings_channels WHERE channel = ?",
                           (channel,)).fetchone()
        return ({name: SourceCounts(*counts) for name, *counts in rows
                 if source is None or name == source}, top[0] if top else 0)

    @staticmethod
    def _messages(rows) -> list[InboxMessage]:
        return [InboxMessage(o, s, t, bytes(d), bool(r), bool(n)) for o, s, t, d, r, n in rows]

    async def _inbox_view(self, user: str, limit: int, now: int) -> InboxView:
        return await self._on(self._read_thread, self._inbox_view_sync, user, limit, now)

    def _inbox_view_sync(self, user: str, limit: int, now: int) -> InboxView:
        conn = self._reader_conn
        assert conn is not None
        conn.execute("BEGIN")  # counts and messages from one snapshot
        try:
            counts = self._counts_sync(conn, user, now)
            messages = {  # each source's newest, walking its index backwards
                source: self._messages(conn.execute(
                    f"SELECT {INBOX_COLUMNS} FROM tidings_inbox WHERE {INBOX_LIVE} "
                    "AND source = ? ORDER BY offset DESC LIMIT ?",
                    (user, now, source, limit)).fetchall())
                for source in counts.sources}
            shared = {source: self._messages(conn.execute(
                SHARED_MESSAGES, (user, self.shared_channel, now, source, limit)).fetchall())
                for source in counts.shared}
        finally:
            conn.execute("COMMIT")
        return InboxView(counts, messages, shared)

    async def _inbox_page(self, user, source, before, limit, now):
        return await self._on(self._read_thread, self._inbox_page_sync, user, source, before,
                              limit, now)

    def _inbox_page_sync(self, user: str, source: str, before: int | None, limit: int,
                         now: int) -> tuple[InboxCounts, list[InboxMessage]]:
        conn = self._reader_conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            counts = self._counts_sync(conn, user, now, source)
            rows = conn.execute(
                f"SELECT {INBOX_COLUMNS} FROM tidings_inbox WHERE {INBOX_LIVE} "
                "AND source = ? AND offset < ? ORDER BY offset DESC LIMIT ?",
                (user, now, source, before if before is not None else 2**63 - 1, limit),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return counts, self._messages(rows)

    async def _inbox_change(self, user: str, change: ReadChange,
                            now: int) -> tuple[int, InboxCounts]:
        return await self._on(self._write_thread, self._inbox_change_sync, user, change, now)

    def _inbox_change_sync(self, user: str, change: ReadChange,
                           now: int) -> tuple[int, InboxCounts]:
        conn = self._writer_conn
        assert conn is not None
        terms = change_filter(change)
        where = "recipient = ? AND (expires IS NULL OR expires > ?)" + "".join(
            f" AND {column} ?" for column, _ in terms)
        params = (user, now, *(value for _, value in terms))
        conn.execute("BEGIN IMMEDIATE")
        try:
            if change.offset is not None and conn.execute(
                f"SELECT 1 FROM tidings_inbox WHERE {where}", params
            ).fetchone() is None:
                raise NoSuchMessage(change.offset)
            changed = 0
            if not change.shared:
                sets, needs = CHANGE_SETS[change.kind]
                changed = conn.execute(
                    f"UPDATE tidings_inbox SET {sets} WHERE {where} AND {needs}", params
                ).rowcount
            changed += self._move_cursors_sync(conn, user, change, now)
            conn.execute(
                "INSERT INTO tidings_inbox_users (recipient, version) VALUES (?, 1) "
                "ON CONFLICT (recipient) DO UPDATE SET version = version + 1",
                (user,),
            )
            counts = self._counts_sync(conn, user, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return changed, counts

    def _move_cursors_sync(self, conn: sqlite3.Connection, user: str, change: ReadChange,
                           now: int) -> int:
        """Move the shared cursors a change moves; how many shared messages it changed."""
        column = cursor_column(change)
        if column is None or self.shared_channel is None:
            return 0
        counted = "unread" if column == "read_upto" else "unseen"
        only = (change.source,) if change.source is not None else ()
        before, _ = self._shared_counts_sync(conn, user, now, change.source)
        conn.execute(MOVE_CURSOR.format(column=column, only=" AND source = ?" if only else ""),
                     (user, change.upto if change.upto is not None else 2**63 - 1,
                      self.shared_channel, now, *only))
        after, _ = self._shared_counts_sync(conn, user, now, change.source)
        return sum(getattr(counts, counted) - getattr(after[name], counted)
                   for name, counts in before.items())

    # ---- reads -----------------------------------------------------------------------

    def _rows_to_pubs(self, rows, epoch: str) -> list[Publication]:
        return [Publication(c, o, epoch, bytes(d), t, s, u) for c, o, t, d, s, u in rows]

    def _position_sync(self, channel: str) -> StreamPosition:
        assert self._reader_conn is not None
        row = self._reader_conn.execute(
            "SELECT top, epoch FROM tidings_channels WHERE channel = ?", (channel,)
        ).fetchone()
        return StreamPosition(*row) if row else StreamPosition(0, self._epoch)

    async def _positions(self, channels: list[str]) -> dict[str, StreamPosition]:
        return await self._on(self._read_thread, self._positions_sync, channels)

    def _positions_sync(self, channels: list[str]) -> dict[str, StreamPosition]:
        return {channel: self._position_sync(channel) for channel in channels}

    async def _history(self, channel, limit, since, reverse):
        return await self._on(self._read_thread, self._history_sync, channel, limit, since, reverse)

    def _history_sync(self, channel: str, limit: int, since: int | None, reverse: bool):
        assert self._reader_conn is not None
        self._reader_conn.execute("BEGIN")  # one snapshot for position and rows
        try:
            position = self._position_sync(channel)
            if reverse:
                bound = position.offset + 1 if since is None else since
                sql = "offset < ? ORDER BY offset DESC"
            else:
                bound = 0 if since is None else since
                sql = "offset > ? ORDER BY offset ASC"
            rows = self._reader_conn.execute(
                f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = ? "
                f"AND (expires IS NULL OR expires > ?) AND {sql} LIMIT ?",
                (channel, now_ms(), bound, limit),
            ).fetchall()
        finally:
            self._reader_conn.execute("COMMIT")
        return self._rows_to_pubs(rows, position.epoch), position

    async def _read_range(self, channel: str, after: int, upto: int) -> list[Publication]:
        return await self._on(self._read_thread, self._read_range_sync, channel, after, upto)

    def _read_range_sync(self, channel: str, after: int, upto: int) -> list[Publication]:
        assert self._reader_conn is not None
        position = self._position_sync(channel)
        rows = self._reader_conn.execute(
            f"SELECT {COLUMNS} FROM tidings_publications WHERE channel = ? "
            "AND offset > ? AND offset <= ? AND (expires IS NULL OR expires > ?) "
            "ORDER BY offset ASC",
            (channel, after, upto, now_ms()),
        ).fetchall()
        return self._rows_to_pubs(rows, position.epoch)

    # ---- acknowledged positions ------------------------------------------------------

    async def load_ack_position(self, user: str, subscription: str) -> AckPosition | None:
        return await self._on(self._read_thread, self._load_ack_sync, user, subscription)

    def _load_ack_sync(self, user: str, subscription: str) -> AckPosition | None:
        assert self._reader_conn is not None
        row = self._reader_conn.execute(
            "SELECT destination, offset, epoch, acked FROM tidings_ack_positions "
            "WHERE user = ? AND subscription = ?", (user, subscription),
        ).fetchone()
        if row is None:
            return None
        destination, offset, epoch, acked = row
        return AckPosition(destination, offset, epoch, tuple(orjson.loads(acked)))

    async def save_ack_positions(
        self, positions: dict[tuple[str, str], AckPosition | None]
    ) -> None:
        await self._on(self._write_thread, self._save_acks_sync, positions)

    def _save_acks_sync(self, positions: dict[tuple[str, str], AckPosition | None]) -> None:
        conn = self._writer_conn
        assert conn is not None
        now = now_ms()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "DELETE FROM tidings_ack_positions WHERE user = ? AND subscription = ?",
                [key for key, position in positions.items() if position is None],
            )
            conn.executemany(
                "INSERT INTO tidings_ack_positions "
                "(user, subscription, destination, offset, epoch, acked, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user, subscription) DO UPDATE SET "
                "destination = excluded.destination, offset = excluded.offset, "
                "epoch = excluded.epoch, acked = excluded.acked, updated = excluded.updated",
                [(user, sub, p.destination, p.offset, p.epoch, orjson.dumps(p.acked).decode(), now)
                 for (user, sub), p in positions.items() if p is not None],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
