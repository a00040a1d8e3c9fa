"""RabbitMQ ingest (aio-pika): a durable queue, consumed with a prefetch window.

The queue is declared durable with `x-dead-letter-exchange` set to the source's dead-letter
exchange (a fanout exchange with a durable queue of the same name bound to it), so what
RabbitMQ itself dead-letters lands there too. Poison is published there by Tidings with
`x-tidings-reason` and `x-tidings-detail` headers, confirmed, then the original is
acknowledged. `prefetch_count = max_in_flight` is the backpressure: RabbitMQ sends no more
until messages are acknowledged, which happens after the store commit. Messages go to the
store in batches of up to half the window, each waiting at most LINGER (5 ms) to fill,
and a stored batch is acknowledged with one `multiple` ack (AckWindow). A message whose
store write failed is requeued; a node that dies leaves its unacknowledged messages to
RabbitMQ, which redelivers them to the other consumers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from tidings.ingest.base import RETRY_DELAY, Delivery, Handler, IngestSource, batch_size

SETUP_TIMEOUT = 10.0  # seconds for connecting and declaring
LINGER = 0.005  # seconds a batch waits for more messages after its first one


class AckWindow:
    """One channel's delivery tags, acknowledged in order with one `multiple` ack.

    Batches settle out of order; a tag is acknowledged once it and every tag before it is
    settled, so one ack frame covers a batch instead of one frame per message.
    """

    def __init__(self) -> None:
        self._floor = 0  # every tag up to it is settled (a new channel's first tag is 1)
        self._settled: set[int] = set()  # settled tags above the floor
        self._to_ack: dict[int, AbstractIncomingMessage] = {}  # settled by ack, not yet sent

    def settle(self, tag: int, acked: AbstractIncomingMessage | None = None) -> None:
        """`tag` is settled: to be acknowledged (`acked`), or already acked or rejected."""
        self._settled.add(tag)
        if acked is not None:
            self._to_ack[tag] = acked
        while self._floor + 1 in self._settled:
            self._floor += 1
            self._settled.discard(self._floor)

    async def flush(self) -> None:
        """Acknowledge every settled message up to the floor, in one frame."""
        covered = [tag for tag in self._to_ack if tag <= self._floor]
        if covered:
            last = self._to_ack[max(covered)]
            for tag in covered:
                del self._to_ack[tag]
            await last.ack(multiple=True)


class AmqpDelivery(Delivery):
    def __init__(self, message: AbstractIncomingMessage, dead_letters: AbstractExchange,
                 source: str, window: AckWindow):
        self.message = message
        self.body = message.body
        self.where = f"delivery {message.delivery_tag} of {message.routing_key}"
        if message.timestamp is not None:  # set by the publisher, if at all
            self.queued_at = message.timestamp.timestamp()
        self._dead_letters = dead_letters
        self._source = source
        self._window = window

    async def ack(self) -> None:
        """Acknowledged with the rest of its batch (AckWindow.flush)."""
        self._window.settle(self.message.delivery_tag, self.message)

    async def dead_letter(self, reason: str, detail: str) -> None:
        headers = {**(self.message.headers or {}), "x-tidings-reason": reason,
                   "x-tidings-detail": detail[:1000], "x-tidings-source": self._source}
        await self._dead_letters.publish(
            aio_pika.Message(self.message.body, headers=headers,
                             content_type=self.message.content_type,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=self.message.routing_key or "",
        )
        await self.message.ack()
        self._window.settle(self.message.delivery_tag)

    async def retry(self) -> None:
        await asyncio.sleep(RETRY_DELAY)
        await self.message.nack(requeue=True)
        self._window.settle(self.message.delivery_tag)


class AmqpSource(IngestSource):
    async def _declare(self, connection: aio_pika.abc.AbstractConnection):
        """The channel, the dead-letter exchange (with its queue) and the source queue."""
        config = self.config
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=config.max_in_flight)
        dead = config.dead_letter_name
        exchange = await channel.declare_exchange(dead, aio_pika.ExchangeType.FANOUT,
                                                  durable=True)
        dead_queue = await channel.declare_queue(dead, durable=True)
        await dead_queue.bind(exchange)
        queue = await channel.declare_queue(
            config.queue, durable=True, arguments={"x-dead-letter-exchange": dead})
        return channel, exchange, queue

    async def _consume(self, handle: Handler, connected: Callable[[], None]) -> None:
        config = self.config
        connection = await aio_pika.connect(
            config.url, timeout=5,
            client_properties={"connection_name": f"tidings-{self.node}-ingest-{self.name}"})
        try:
            # a declaration RabbitMQ never answers must not hang the source: reconnect
            async with asyncio.timeout(SETUP_TIMEOUT):
                channel, exchange, queue = await self._declare(connection)
            tasks: set[asyncio.Task] = set()
            closed = asyncio.get_running_loop().create_future()

            def on_close(*_args) -> None:
                if not closed.done():
                    closed.set_result(None)

            connection.close_callbacks.add(on_close)
            channel.close_callbacks.add(on_close)

            batch: list[Delivery] = []
            loop = asyncio.get_running_loop()
            window = AckWindow()

            async def settle(deliveries: list[Delivery]) -> None:
                await handle(deliveries)
                await window.flush()

            def flush() -> None:
                if not batch:
                    return
                task = asyncio.create_task(settle(batch[:]))
                batch.clear()
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            async def on_message(message: AbstractIncomingMessage) -> None:
                # RabbitMQ pushes one message at a time: gather them into batches (full,
                # or LINGER after the first) so the store takes them in one go
                batch.append(AmqpDelivery(message, exchange, self.name, window))
                if len(batch) >= batch_size(config.max_in_flight):
                    flush()
                elif len(batch) == 1:
                    loop.call_later(LINGER, flush)

            await queue.consume(on_message)
            connected()
            try:
                await closed
            finally:  # unsettled messages go back to the queue with the connection
                for task in tasks:
                    task.cancel()
            raise ConnectionError("connection to RabbitMQ closed")
        finally:
            await connection.close()
