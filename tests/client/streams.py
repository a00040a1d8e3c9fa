"""Feeding and reading a channel in tests that stop nodes under it: publish through outages,
collect a subscription's publications, read a channel's whole stored history."""

from __future__ import annotations

import asyncio
import time

from tidings.client import ApiClient, Publication, Subscription


async def publications(sub: Subscription, count: int, timeout: float = 10) -> list[Publication]:
    """The next `count` publications of a subscription, skipping join/leave events."""
    out: list[Publication] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        event = await sub.get(deadline - time.monotonic())
        if isinstance(event, Publication):
            out.append(event)
    return out


async def publish_through_outages(api: ApiClient, channel: str, count: int) -> None:
    """Publish `count` messages `{"n": i}`, retrying while no node answers (or one drains).

    A publish cut off mid-answer may have been stored: compare with `all_history`, not `n`.
    """
    n = 0
    while n < count:
        try:
            await api.publish(channel, {"n": n})
        except Exception:  # Unreachable, or a 503 from a draining node
            await asyncio.sleep(0.05)
        else:
            n += 1
            await asyncio.sleep(0.005)


async def all_history(api: ApiClient, channel: str) -> list[Publication]:
    out: list[Publication] = []
    since = 0
    while page := (await api.history(channel, since=since, limit=1000)).publications:
        out.extend(page)
        since = page[-1].offset
    return out
