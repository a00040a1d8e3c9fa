"""NATS JetStream ingest: a durable pull consumer on a stream subject, acked after commit.

The stream (`stream`, default made from the subject) is created with the subject if it
does not exist; so is a stream for the dead-letter subject unless one already captures it.
Every node pulls from the same durable consumer `group`, in two concurrent batches of half
`max_in_flight` messages each (and the consumer's `max_ack_pending` is that times eight, for all nodes
together). A message is acknowledged after the store commit; one the store could not take
is negatively acknowledged with a delay; one taken by a node that died is redelivered by
JetStream after `redeliver_after` seconds (the consumer's ack wait). Poison is published
to the dead-letter subject with `Tidings-Reason` and `Tidings-Detail` headers, confirmed by
JetStream, then acknowledged.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import nats
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from tidings.ingest.base import (
    PULLERS,
    RETRY_DELAY,
    Delivery,
    Handler,
    IngestSource,
    batch_size,
)


def stream_name(subject: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", subject)


class JetStreamDelivery(Delivery):
    def __init__(self, msg: Msg, js: JetStreamContext, dead_subject: str, source: str):
        self.msg = msg
        self.body = msg.data
        meta = msg.metadata
        self.where = f"{msg.subject} #{meta.sequence.stream}"
        if meta.timestamp is not None:
            self.queued_at = meta.timestamp.timestamp()
        self._js = js
        self._dead_subject = dead_subject
        self._source = source

    async def ack(self) -> None:
        await self.msg.ack()

    async def dead_letter(self, reason: str, detail: str) -> None:
        headers = {**(self.msg.headers or {}), "Tidings-Reason": reason,
                   "Tidings-Detail": detail[:1000], "Tidings-Source": self._source,
                   "Tidings-Origin": self.where}
        await self._js.publish(self._dead_subject, self.msg.data, headers=headers)
        await self.msg.ack()

    async def retry(self) -> None:
        await self.msg.nak(delay=RETRY_DELAY)


class JetStreamSource(IngestSource):
    async def _consume(self, handle: Handler, connected: Callable[[], None]) -> None:
        config = self.config
        nc = await nats.connect(config.url, name=f"tidings-{self.node}-ingest-{self.name}",
                                connect_timeout=2, max_reconnect_attempts=0,
                                allow_reconnect=False)
        try:
            js = nc.jetstream(timeout=5)
            stream = config.stream or stream_name(config.queue)
            await self._ensure_stream(js, stream, config.queue)
            dead = config.dead_letter_name
            await self._ensure_stream(js, f"{stream}-dead-letter", dead)
            sub = await js.pull_subscribe(
                config.queue, durable=config.group, stream=stream,
                config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                      deliver_policy=DeliverPolicy.ALL,
                                      ack_wait=config.redeliver_after,
                                      max_ack_pending=config.max_in_flight * 8))
            connected()

            async def pull() -> None:
                while True:
                    if not nc.is_connected:
                        raise ConnectionError("connection to NATS lost")
                    try:
                        msgs = await sub.fetch(batch_size(config.max_in_flight), timeout=1)
                    except (NatsTimeout, asyncio.TimeoutError):  # nothing waiting this second
                        continue
                    await handle([JetStreamDelivery(m, js, dead, self.name) for m in msgs])

            await asyncio.gather(*(pull() for _ in range(PULLERS)))
        finally:
            await nc.close()

    @staticmethod
    async def _ensure_stream(js: JetStreamContext, name: str, subject: str) -> None:
        try:
            await js.find_stream_name_by_subject(subject)
        except NotFoundError:
            await js.add_stream(name=name, subjects=[subject])
