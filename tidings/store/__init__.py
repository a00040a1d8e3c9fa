"""Stores, chosen by URL: `sqlite:///path/to/file.db`, `postgresql://user@host/db` or
`mysql://user@host/db` (MySQL 8, MariaDB 10.6+)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.store.base import OutcomeUnknown, RecoveryImpossible, Retention, Store, StoreError

__all__ = ["OutcomeUnknown", "RecoveryImpossible", "Retention", "Store", "StoreError", "open_store"]


def open_store(url: str, *, group_commit: bool = True) -> Store:
    """Build (not yet start) the store a URL names; ValueError for an unknown scheme."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from tidings.store.sqlite import SQLiteStore

        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
        path = url.removeprefix("sqlite://").removeprefix("/")
        if path == ":memory:":
            raise ValueError("sqlite :memory: cannot work: the store's connections would each "
                             "see a database of their own; give a file")
        return SQLiteStore(path or "tidings.db", group_commit=group_commit)
    if scheme in ("postgresql", "postgres"):
        from tidings.store.postgres import PostgresStore

        return PostgresStore(url, group_commit=group_commit)
    if scheme in ("mysql", "mariadb"):
        from tidings.store.mysql import MySQLStore

        return MySQLStore(url, group_commit=group_commit)
    raise ValueError(
        f"unknown store URL scheme {scheme!r}: use sqlite:///file.db, postgresql://... or "
        "mysql://..."
    )
