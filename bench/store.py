"""The PostgreSQL the durable and cluster scenarios use, and cleaning up after them.

Each server gets its own schema (`?schema=bench_<random>` in the store URL), so a run never
sees another run's or the test suite's tables; the schema is dropped when the server stops.
"""

from __future__ import annotations

import asyncio
import os

PG = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())
