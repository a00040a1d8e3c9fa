"""The intake: from a settled queue message to stored, delivered notifications.

Every node runs every configured source; the queue systems share the messages out among
the nodes (competing consumers). For each message the intake parses the notification,
routes it to channels (each user's `user:<id>`, a room channel, or `broadcast`), publishes
a source's whole batch through the node's pipeline at once with the idempotency keys
`(source, id)`, and settles the deliveries only after the store has committed. Poison goes to the dead letter, is logged and
is counted in `/metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

from tidings.broker.base import BrokerError
from tidings.channels import BROADCAST, Channel, ChannelError, user_channel
from tidings.config import MessageCenter
from tidings.ingest.base import Delivery, IngestSource
from tidings.ingest.notification import UNROUTABLE_CHANNEL, Notification, Poison, parse_notification
from tidings.store.base import StoreError

log = logging.getLogger("tidings.ingest")

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Publisher(Protocol):
    """What the intake needs of the node."""

    name: str

    def channel(self, name: object) -> Channel: ...

    def publish_many(self, items: Sequence[tuple[Channel, bytes, str | None, str | None]]
                     ) -> Awaitable[None]: ...


class Intake:
    def __init__(self, node: Publisher, settings: MessageCenter, registry: CollectorRegistry):
        self.node = node
        self.settings = settings
        self.sources: list[IngestSource] = []
        self.stored = Counter("tidings_ingested", "Notifications taken from a queue and "
                              "stored (repeats of a stored one included)", ["source"],
                              registry=registry)
        self.dead = Counter("tidings_dead_letters", "Queue messages sent to the dead letter, "
                            "by ingest source and reason", ["source", "reason"],
                            registry=registry)
        self.retried = Counter("tidings_ingest_retries", "Queue messages handed back because "
                               "the store could not take them", ["source"], registry=registry)
        self.lag = Histogram("tidings_ingest_lag_seconds", "From the queue taking a message to "
                             "its notification stored, by source (clocks of both)", ["source"],
                             registry=registry, buckets=LAG_BUCKETS)
        self.latest_lag: dict[str, float] = {}  # source -> the newest message's lag, seconds

    async def start(self) -> None:
        from tidings.ingest import open_source

        for name, config in self.settings.ingest.items():
            source = open_source(name, config, self.node.name)
            await source.start(lambda batch, source=source: self.take(source, batch))
            self.sources.append(source)

    async def stop(self) -> None:
        for source in self.sources:
            await source.stop()

    async def take(self, source: IngestSource, deliveries: list[Delivery]) -> None:
        """Store a batch's notifications in one go, then settle every delivery of it."""
        items: list[tuple[Channel, bytes, str, str]] = []
        storing: list[Delivery] = []
        poisoned: list[tuple[Delivery, Poison]] = []
        for delivery in deliveries:
            try:
                note = parse_notification(delivery.body,
                                          max_bytes=self.settings.max_notification_bytes,
                                          max_recipients=self.settings.max_recipients)
                channels = self.route(note)
            except Poison as poison:
                poisoned.append((delivery, poison))
                continue
            key = "ingest:" + orjson.dumps([note.source, note.id]).decode()  # unambiguous pair
            items.extend((channel, note.data, note.source, key) for channel in channels)
            storing.append(delivery)
        if poisoned:
            await asyncio.gather(*(self._dead_letter(source, delivery, poison)
                                   for delivery, poison in poisoned))
        if not storing:
            return
        try:
            # Shielded: a source that stops or loses its connection cancels this task, and a
            # publish cut between its commit and its delivery would be stored yet never
            # delivered live (its redelivery is a repeat, which delivers nothing).
            await asyncio.shield(self.node.publish_many(items))
        except (StoreError, BrokerError) as exc:
            log.warning("ingest %s: %d messages (%s, ...) not stored (%s); the queue will "
                        "offer them again", source.name, len(storing), storing[0].where, exc)
            self.retried.labels(source.name).inc(len(storing))
            await asyncio.gather(*(delivery.retry() for delivery in storing))
            return
        now = time.time()
        for delivery in storing:  # in turn, no task each: most only note it for a batch ack
            await delivery.ack()
            if delivery.queued_at is not None:
                lag = max(0.0, now - delivery.queued_at)
                self.latest_lag[source.name] = lag
                self.lag.labels(source.name).observe(lag)
        self.stored.labels(source.name).inc(len(storing))

    async def _dead_letter(self, source: IngestSource, delivery: Delivery,
                           poison: Poison) -> None:
        log.warning("ingest %s: dead-lettering %s: %s", source.name, delivery.where, poison)
        await delivery.dead_letter(poison.reason, poison.detail)
        self.dead.labels(source.name, poison.reason).inc()

    def route(self, note: Notification) -> list[Channel]:
        """The stored channels a notification goes to, or Poison when there are none."""
        if note.kind in ("user", "users"):
            return [self.node.channel(user_channel(user)) for user in note.recipients]
        if note.kind == "everyone":
            return [self.node.channel(BROADCAST)]
        try:
            channel = self.node.channel(note.recipients[0])
        except ChannelError as exc:
            raise Poison(UNROUTABLE_CHANNEL, str(exc)) from None
        if not channel.options.stored:
            raise Poison(UNROUTABLE_CHANNEL,
                         f"{channel.namespace} channels keep nothing: notifications are stored")
        return [channel]
