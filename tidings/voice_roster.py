"""Who is in a voice room across the cluster, as of a moment ago, for the voice relay.

Two decisions of a speaker's node need the members on other nodes: whether a whisper's
target is in the room at all (else error 129), and whether any other node has members (if
none, a frame need not go to the broker). The broker's presence answers both, one round
trip per room per `refresh` seconds at most: a stale entry is refreshed in the background
while the old one still answers, and a join or leave the node hears of forgets the entry
at once. Lookups of one room share one round trip.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass

from tidings.broker.base import Broker

log = logging.getLogger("tidings.voice")


@dataclass(slots=True, frozen=True)
class Members:
    users: frozenset[str]
    nodes: frozenset[str]
    taken: float  # time.monotonic() of the presence read


class VoiceRoster:
    def __init__(self, broker: Broker, refresh: float):
        self.broker = broker
        self.refresh = refresh
        self.reads = 0  # presence round trips
        self._known: dict[str, Members] = {}
        self._reading: dict[str, asyncio.Task] = {}

    def known(self, channel: str) -> Members | None:
        """The members as last read (None before the first read); starts a refresh when stale."""
        members = self._known.get(channel)
        if members is None or time.monotonic() - members.taken > self.refresh:
            self._start_read(channel)
        return members

    async def members(self, channel: str) -> Members | None:
        """The members, read now unless the last read is fresh; None if the broker failed."""
        members = self._known.get(channel)
        if members is not None and time.monotonic() - members.taken <= self.refresh:
            return members
        return await asyncio.shield(self._start_read(channel))

    def forget(self, channel: str) -> None:
        """Someone joined or left `channel`: the next lookup reads presence again.

        A read under way may predate the change: its answer still reaches its waiters but
        is not kept.
        """
        self._known.pop(channel, None)
        self._reading.pop(channel, None)

    def _start_read(self, channel: str) -> asyncio.Task:
        task = self._reading.get(channel)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._read(channel), context=contextvars.Context())  # shared by every asker
            self._reading[channel] = task
            task.add_done_callback(lambda done: self._finished(channel, done))
        return task

    def _finished(self, channel: str, task: asyncio.Task) -> None:
        if self._reading.get(channel) is not task:
            return  # forgotten meanwhile: the answer may be out of date
        del self._reading[channel]
        if not task.cancelled() and task.exception() is None and task.result() is not None:
            self._known[channel] = task.result()

    async def _read(self, channel: str) -> Members | None:
        self.reads += 1
        started = time.monotonic()
        try:
            clients = await self.broker.presence(channel)
        except Exception as exc:  # BrokerError, or a client library's own error
            log.warning("presence of %s for voice failed: %s", channel, exc)
            return None
        return Members(frozenset(c.user for c in clients), frozenset(c.node for c in clients),
                       started)

    async def close(self) -> None:
        reading = list(self._reading.values())
        self._reading.clear()
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
