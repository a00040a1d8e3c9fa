"""Revoked token ids (`jti`), honoured by every node of a cluster.

The list lives where the cluster already keeps what must survive and reach every node: in
the store, as the internal stored channel `$revoked` (a name no client or API call can
address, since every other channel needs a namespace). `POST /api/revoke` publishes
`{"jti": ..., "until": ...}` there like any publication; every node follows the channel as
a hub subscriber, so a revocation made on any node reaches the others over the broker at
once, and through the hub's gap filling (within 10 s) even if the broker dropped it. A
starting node reads the whole history first. Each node then closes its own sessions that
hold the revoked token (close code 4505) and refuses the token from then on.

Entries are kept `security.revocation_ttl` (the channel's history TTL), which must cover the
longest token lifetime; at most `security.max_revocations` are held at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson

from tidings.channels import Channel
from tidings.config import Namespace, Security
from tidings.hub import Hub
from tidings.model import ClientInfo, Publication
from tidings.store.base import Store

log = logging.getLogger("tidings.revocation")

CHANNEL = "$revoked"
PAGE = 1000


class RevokedTokens:
    """The revoked ids this node knows, and the hub subscriber that keeps them current."""

    def __init__(self, security: Security, on_revoked: Callable[[str], None]):
        self.ttl = security.revocation_ttl
        self.capacity = security.max_revocations
        self.channel = Channel(CHANNEL, CHANNEL, Namespace(
            history_size=self.capacity, history_ttl=self.ttl, publish="server",
            subscribe="server", recovery_max=self.capacity,
        ))
        self.codec = self  # the hub hands us each publication's data as it is
        self._until: dict[str, float] = {}
        self._on_revoked = on_revoked
        self._hub: Hub | None = None
        self._store: Store | None = None
        self._reloading: asyncio.Task | None = None

    # ---- asking ----------------------------------------------------------------------

    def __contains__(self, jti: str) -> bool:
        until = self._until.get(jti)
        if until is None:
            return False
        if until > time.time():
            return True
        del self._until[jti]
        return False

    def __len__(self) -> int:
        self._sweep()
        return len(self._until)

    def entry(self, jti: str, exp: float | None = None) -> bytes:
        """The publication that revokes `jti` (until the token's `exp`, if that comes first)."""
        until = time.time() + self.ttl
        if exp is not None:
            until = min(until, exp)
        return orjson.dumps({"jti": jti, "until": until})

    # ---- following the channel -------------------------------------------------------

    async def start(self, hub: Hub, store: Store) -> None:
        """Read every revocation kept, then follow new ones live from where the read ended."""
        self._hub, self._store = hub, store
        position = await self._read_all()
        await hub.subscribe(self, self.channel, since=position, recovery_max=self.capacity)

    async def stop(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
        if self._hub is not None:
            self._hub.unsubscribe(self, CHANNEL)

    async def _read_all(self) -> tuple[int, str]:
        since = None
        while True:
            page = await self._store.history(CHANNEL, limit=PAGE, since=since, reverse=False)
            for pub in page.publications:
                self._add(pub.data)
            if len(page.publications) < PAGE:
                last = page.publications[-1].offset if page.publications else since
                return (last if last is not None else page.position.offset,
                        page.position.epoch)
            since = page.publications[-1].offset

    # hub Subscriber and Codec: the frame of a revocation is its data

    def pub_frame(self, pub: Publication) -> bytes:
        return pub.data

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes:
        return b""

    def write(self, frame: bytes) -> None:
        jti = self._add(frame)
        if jti is not None:
            self._on_revoked(jti)

    def lost_sync(self, channel: str) -> None:
        """A hole the hub cannot fill: read the whole list again (revocations only add up)."""
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        while True:
            try:
                await self._read_all()
                return
            except Exception:
                log.exception("reading the revoked tokens failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    def _add(self, data: bytes) -> str | None:
        try:
            entry = orjson.loads(data)
            jti, until = entry["jti"], float(entry["until"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed entry in %s", CHANNEL)
            return None
        if not isinstance(jti, str) or until <= time.time():
            return None
        if len(self._until) >= self.capacity:
            self._sweep()
        self._until[jti] = max(until, self._until.get(jti, 0.0))
        return jti

    def _sweep(self) -> None:
        now = time.time()
        for jti in [j for j, until in self._until.items() if until <= now]:
            del self._until[jti]
