"""Getting a network broker's connection back: capped exponential backoff, then resubscribe.

The Redis, RabbitMQ and NATS backends all reconnect here rather than through their client
library's own retry loop, for three reasons: the node must learn that the live path had a
hole (so `Broker._reconnected` can resubscribe and the hub can read the gap back from the
store); publishing while the connection is down must fail at once instead of queueing
somewhere for an unknown time; and a fleet of nodes must not hammer a broker that is
restarting, which the libraries' fixed retry intervals would do.

The loop runs under the broker's Supervisor: if the node's recovery raises something other
than BrokerError, the failure is logged and counted and the whole loop runs again, so a
reconnect never ends with the connection up and the gap unfilled. Closing is bounded, even
while a client library is inside a connect attempt to a server that is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tidings.broker.base import BrokerError
from tidings.supervision import Supervisor, cancel_and_wait

FIRST_DELAY = 0.1
MAX_DELAY = 5.0

log = logging.getLogger("tidings.broker")


class Reconnector:
    """Runs at most one reconnect loop at a time for one broker.

    `open` replaces the connection with a fresh one (closing what is left of the old one)
    or raises BrokerError; `restored` (the broker's `_reconnected`) then resubscribes and
    tells the node. A BrokerError from `restored` means the new connection failed too, so
    the loop goes round again; a loss reported while the loop runs makes it go round once
    more, so a connection that dies during resubscription is never mistaken for a good one.
    """

    def __init__(self, what: str, open: Callable[[], Awaitable[None]],
                 restored: Callable[[], Awaitable[None]],
                 supervisor: Supervisor | None = None):
        self._what = what
        self._open = open
        self._restored = restored
        self._supervisor = supervisor or Supervisor()
        self._task: asyncio.Task | None = None
        self._again = False
        self._closed = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def lost(self, reason: object) -> None:
        """The connection is gone: start reconnecting unless already at it or closing."""
        if self._closed:
            return
        if self.running:
            self._again = True
            return
        log.warning("%s connection lost (%s); reconnecting", self._what, reason)
        self._task = self._supervisor.spawn(f"{self._what}-reconnect", self._run)

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        delay = FIRST_DELAY
        while True:
            self._again = False
            try:
                await self._open()
                await self._restored()
            except BrokerError as exc:
                log.warning("%s reconnect failed (%s); next try in %.1f s",
                            self._what, exc, delay)
            else:
                if not self._again:
                    log.info("%s connection restored", self._what)
                    return
            await asyncio.sleep(delay)
            delay = min(MAX_DELAY, delay * 2)
