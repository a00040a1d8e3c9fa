"""The ingest interface: a backend's queue as a source of notifications, one per system.

A source takes messages off its queue in batches and hands each batch to the intake as a
list of Deliveries. The intake stores the batch's notifications in one go (handed to the
store's group commit together) and only then settles each delivery: `ack` after the store commit, `dead_letter` for a
message that can never be stored (to a dead-letter destination of the same system, with
the reason, then acknowledged), or `retry` when the store failed (the queue redelivers it
later). So ingest is at-least-once, and idempotency keys make the store exactly-once.

Backpressure: a source never has more than `max_in_flight` messages taken but not settled
(AMQP prefetch, Kafka/Redis/JetStream batch sizes), so a slow store slows the consumers
down instead of filling memory. A source whose connection fails reconnects by itself with
capped exponential backoff and resumes where its queue says it stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from tidings.config import IngestSource as SourceConfig

FIRST_DELAY = 0.1
MAX_DELAY = 5.0
RETRY_DELAY = 0.5  # before a delivery the store could not take is offered again
PULLERS = 2  # batch-pulling sources keep two half-size batches going: one is being stored
# while the next is fetched and parsed, so neither the store nor the loop waits for the other

log = logging.getLogger("tidings.ingest")


class Delivery(ABC):
    """One message taken off a queue, settled exactly once by the intake."""

    body: bytes | None  # None: the message carried no notification at all
    where: str  # for logs: the system's own id of the message
    queued_at: float | None = None
    """When the queue system took the message (Unix seconds, its own clock), if it says:
    the intake's ingest lag is the time from then to the store commit."""

    @abstractmethod
    async def ack(self) -> None:
        """The notification is durably stored: the queue may forget the message."""

    @abstractmethod
    async def dead_letter(self, reason: str, detail: str) -> None:
        """Put the message on the dead-letter destination with its reason, then ack it."""

    @abstractmethod
    async def retry(self) -> None:
        """Not stored (store unavailable): have the queue deliver it again later."""


# Takes a batch of deliveries and settles every one of them (stored in one go)
Handler = Callable[[list[Delivery]], Awaitable[None]]


class IngestSource(ABC):
    """Consumes one configured queue; subclasses implement `_consume` for one system."""

    def __init__(self, name: str, config: SourceConfig, node: str):
        self.name = name
        self.config = config
        self.node = node  # this node's name: the consumer's name where the system has one
        self.connected = False
        self.reconnects = 0
        self._task: asyncio.Task | None = None

    async def start(self, handle: Handler) -> None:
        """Begin consuming in the background; never waits for the queue to be reachable."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(handle), name=f"tidings-ingest-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, handle: Handler) -> None:
        delay = FIRST_DELAY
        while True:
            try:
                await self._consume(handle, self._connected)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ingest %s (%s): %s: %s; reconnecting in %.1f s", self.name,
                            self.config.kind, type(exc).__name__, exc, delay)
            self.connected = False
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(MAX_DELAY, delay * 2)

    def _connected(self) -> None:
        """Subclasses call this once consuming works: the next failure backs off afresh."""
        if not self.connected:
            log.info("ingest %s consuming %s (%s)", self.name, self.config.queue,
                     self.config.kind)
        self.connected = True

    @abstractmethod
    async def _consume(self, handle: Handler, connected: Callable[[], None]) -> None:
        """Connect, consume until the connection fails (raise), close what was opened.

        Hands the messages to `handle` in batches and keeps at most `max_in_flight`
        unsettled.
        """


def batch_size(max_in_flight: int) -> int:
    """Each of PULLERS batches: together never more than `max_in_flight` unsettled."""
    return max(1, max_in_flight // PULLERS)
