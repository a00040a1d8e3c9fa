"""Voice on its way to the other nodes: a short queue in front of the broker, oldest dropped.

A member's frame is relayed to local listeners at once; the copy for other nodes waits here
while the broker takes the previous burst (everything queued meanwhile goes out together,
in order, which a pipelining broker sends in one round trip). Audio is worth nothing late,
so the queue is bounded: when the broker falls behind, the oldest waiting frame is dropped
and counted, and what is sent stays fresh. Nothing here ever blocks the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque

from tidings.broker.base import Broker

log = logging.getLogger("tidings.voice")


class VoiceUplink:
    """One per node: voice envelopes queued for the broker, sent in bursts."""

    def __init__(self, broker: Broker, capacity: int):
        self.broker = broker
        self.capacity = capacity
        self.sent = 0  # envelopes the broker took
        self.dropped = 0  # envelopes dropped because the queue was full (the oldest ones)
        self.failed = 0  # envelopes the broker refused (a lost connection)
        self._queue: deque[tuple[str, bytes]] = deque()
        self._sender: asyncio.Task | None = None

    def put(self, channel: str, envelope: bytes) -> None:
        """Queue `envelope` for `channel`; never waits."""
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((channel, envelope))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(
                self._send(), context=contextvars.Context())  # not the first sender's

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def _send(self) -> None:
        try:
            while self._queue:
                burst = list(self._queue)
                self._queue.clear()
                if len(burst) == 1:  # the usual case: no task per frame
                    results = [await _outcome(self.broker.publish(*burst[0]))]
                else:
                    results = await asyncio.gather(
                        *(self.broker.publish(channel, envelope) for channel, envelope in burst),
                        return_exceptions=True,
                    )
                failures = [r for r in results if isinstance(r, Exception)]
                self.sent += len(burst) - len(failures)
                if failures:
                    self.failed += len(failures)
                    log.warning("%d voice frames not sent to other nodes: %s",
                                len(failures), failures[0])
        finally:
            self._sender = None

    async def close(self) -> None:
        self._queue.clear()
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)


async def _outcome(publishing) -> Exception | None:
    try:
        await publishing
    except Exception as exc:
        return exc
    return None
