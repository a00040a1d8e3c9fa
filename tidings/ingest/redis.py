"""Redis Streams ingest: a stream read through a consumer group, XACK after the store commit.

Every node reads the stream as consumer `<node name>` of the group `group` (created, with
the stream, if missing), in two concurrent batches of half `max_in_flight` entries each. The notification is
the entry's `notification` field. An entry stays pending until it is acknowledged, so:

- a node restarted under the same name first reads its own pending entries again;
- entries a node took and never acknowledged (it died) are claimed by any other node once
  they have been idle for `redeliver_after` seconds (XAUTOCLAIM);
- an entry the store could not take stays pending and is read again after a pause.

Poison is added to the dead-letter stream (fields `notification`, `reason`, `detail`,
`source`, `origin`) and then acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis.asyncio as redis
from redis.exceptions import ResponseError

from tidings.ingest.base import (
    PULLERS,
    RETRY_DELAY,
    Delivery,
    Handler,
    IngestSource,
    batch_size,
)

FIELD = b"notification"


class StreamDelivery(Delivery):
    def __init__(self, source: "RedisStreamSource", client: redis.Redis, entry_id: bytes,
                 fields: dict, acks: list[bytes]):
        self.body = fields.get(FIELD)
        self.where = f"{source.config.queue} entry {entry_id.decode()}"
        self.queued_at = int(entry_id.split(b"-", 1)[0]) / 1000  # ids are <ms>-<seq>
        self.fields = fields
        self._source = source
        self._client = client
        self._id = entry_id
        self._acks = acks

    async def ack(self) -> None:
        """Acknowledged with the rest of its batch, in one XACK, once all are settled."""
        self._acks.append(self._id)

    async def dead_letter(self, reason: str, detail: str) -> None:
        config = self._source.config
        fields = {**self.fields, b"reason": reason, b"detail": detail[:1000],
                  b"source": self._source.name, b"origin": self._id}
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(config.dead_letter_name, fields)
            pipe.xack(config.queue, config.group, self._id)
            await pipe.execute()

    async def retry(self) -> None:
        self._source.retry_pending = True  # read again from the pending list


class RedisStreamSource(IngestSource):
    retry_pending = True  # start with whatever this consumer left pending

    async def _consume(self, handle: Handler, connected: Callable[[], None]) -> None:
        config = self.config
        pool = redis.BlockingConnectionPool.from_url(
            config.url, max_connections=8, timeout=10, socket_connect_timeout=2,
            socket_timeout=10)
        client = redis.Redis(connection_pool=pool)
        try:
            try:
                await client.xgroup_create(config.queue, config.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            connected()
            self.retry_pending = True
            await asyncio.gather(self._pull(client, handle, keeper=True),
                                 *(self._pull(client, handle) for _ in range(PULLERS - 1)))
        finally:
            await client.aclose()

    async def _pull(self, client: redis.Redis, handle: Handler, keeper: bool = False) -> None:
        """Read and settle batches; the keeper also rereads pending and claims abandoned ones."""
        claimed_at = 0.0
        while True:
            if keeper and time.monotonic() - claimed_at > self.config.redeliver_after / 2:
                claimed_at = time.monotonic()
                await self._claim_abandoned(client, handle)
            if keeper and self.retry_pending:
                self.retry_pending = False
                if await self._read(client, handle, "0"):
                    await asyncio.sleep(RETRY_DELAY if self.retry_pending else 0)
                    continue
            await self._read(client, handle, ">", block=1000)

    async def _read(self, client: redis.Redis, handle: Handler, start: str,
                    block: int | None = None) -> int:
        """Read a batch (new entries with ">", own pending ones with "0") and settle it."""
        config = self.config
        reply = await client.xreadgroup(config.group, self.node, {config.queue: start},
                                        count=batch_size(config.max_in_flight), block=block)
        entries = [(entry_id, fields) for _, items in reply or () for entry_id, fields in items
                   if fields is not None]  # a pending entry trimmed away reads as None
        await self._settle(client, handle, entries)
        return len(entries)

    async def _settle(self, client: redis.Redis, handle: Handler, entries: list) -> None:
        acks: list[bytes] = []
        if entries:
            await handle([StreamDelivery(self, client, entry_id, fields, acks)
                          for entry_id, fields in entries])
        if acks:
            await client.xack(self.config.queue, self.config.group, *acks)

    async def _claim_abandoned(self, client: redis.Redis, handle: Handler) -> None:
        """Take over entries another consumer took and left unacknowledged for too long."""
        config = self.config
        start = "0-0"
        while True:
            next_start, entries, *_ = await client.xautoclaim(
                config.queue, config.group, self.node,
                min_idle_time=int(config.redeliver_after * 1000), start_id=start,
                count=batch_size(config.max_in_flight))
            await self._settle(client, handle, [(entry_id, fields)
                                                for entry_id, fields in entries if fields])
            start = next_start.decode() if isinstance(next_start, bytes) else next_start
            if start == "0-0":
                return
