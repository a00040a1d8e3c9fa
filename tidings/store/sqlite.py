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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from tidings.model import AckPosition, Publication, StreamPosition
from tidings.store.base import AppendRequest, Store, StoreError, now_ms

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
"""

COLUMNS = "channel, offset, time, data, source, sender"
CHECKPOINT_INTERVAL = 1.0
log = logging.getLogger("tidings.store.sqlite")


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


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
        self._writer_conn.executescript(SCHEMA)
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

    async def _commit(self, batch: list[AppendRequest]) -> list[Publication]:
        return await self._on(self._write_thread, self._commit_sync, batch)

    def _commit_sync(self, batch: list[AppendRequest]) -> list[Publication]:
        conn = self._writer_conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            tops: dict[str, list] = {}  # channel -> [top, epoch, retention size]
            for request in batch:
                if request.channel not in tops:
                    row = conn.execute(
                        "SELECT top, epoch FROM tidings_channels WHERE channel = ?",
                        (request.channel,),
                    ).fetchone()
                    top, epoch = row if row else (0, self._epoch)
                    tops[request.channel] = [top, epoch, request.retention.size]
            pubs: list[Publication] = []
            rows = []
            for request in batch:
                state = tops[request.channel]
                state[0] += 1
                state[2] = request.retention.size
                ttl = request.retention.ttl
                expires = request.time + int(ttl * 1000) if ttl else None
                pub = Publication(
                    request.channel, state[0], state[1], request.data, request.time,
                    request.source, request.sender,
                )
                pubs.append(pub)
                rows.append(
                    (pub.channel, pub.offset, pub.time, expires, pub.data, pub.source, pub.sender)
                )
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
            conn.executemany(
                "DELETE FROM tidings_publications WHERE channel = ? AND offset <= ?",
                [(channel, top - size) for channel, (top, _, size) in tops.items()],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return pubs

    async def _expire(self, now: int) -> int:
        return await self._on(self._write_thread, self._expire_sync, now)

    def _expire_sync(self, now: int) -> int:
        assert self._writer_conn is not None
        cursor = self._writer_conn.execute(
            "DELETE FROM tidings_publications WHERE expires IS NOT NULL AND expires <= ?", (now,)
        )
        return cursor.rowcount

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
