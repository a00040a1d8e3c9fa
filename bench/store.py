"""The PostgreSQL and MariaDB the durable and cluster scenarios use, and cleaning up.

Each server gets its own schema (`?schema=bench_<random>` in a PostgreSQL store URL) or
database (`mysql://.../bench_<random>`), so a run never sees another run's or the test
suite's tables; it is dropped when the server stops.
"""

from __future__ import annotations

import asyncio
import os

PG = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL = os.environ.get("BENCH_MYSQL", "mysql://root@127.0.0.1:3306")  # + /<database>


def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def drop_database(url: str, database: str) -> None:
    from urllib.parse import urlsplit

    import asyncmy

    async def drop() -> None:
        parts = urlsplit(url)
        conn = await asyncmy.connect(host=parts.hostname, port=parts.port or 3306,
                                     user=parts.username or "root",
                                     password=parts.password or "")
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        finally:
            await conn.ensure_closed()

    asyncio.run(drop())
