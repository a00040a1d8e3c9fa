"""NATS broker: one subject per channel, subscribed on demand; cluster state in a KV bucket.

URL: `nats://host:4222`, optionally `?prefix=name` (default `tidings`) for the subject
prefix and the KV bucket name, to keep clusters or test runs apart.

Subjects are `<prefix>.c.<channel>` with `%` and `.` percent-encoded, so every channel is
one subject token (NATS splits subjects on dots) and no two channels share a subject.

nats-py reconnects by itself and restores subscriptions; publications made while the
connection is down wait in its pending buffer. On reconnect the node is told, and its hub
checks every channel against the store for what the live path lost. NATS drops messages for
a slow consumer without disconnecting; the hub's gap detection and periodic check cover that.

Presence and node liveness live in a JetStream key-value bucket whose entries expire after
`ttl` (the bucket's max age) unless the owning node's heartbeat writes them again. It keeps
cluster state inside NATS itself, with no second service, and a killed node's entries
vanish on their own. Keys are `<channel>.<client>` and `_nodes.<node>`, each part base64url
(KV keys allow only `[-/_=.a-zA-Z0-9]`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import nats
import orjson
from nats.errors import Error as NatsError

from tidings.broker.base import Broker, BrokerError
from tidings.model import ClientInfo, NodeInfo

log = logging.getLogger("tidings.broker.nats")

NODES = "_nodes"


def _token(text: str) -> str:
    return text.replace("%", "%25").replace(".", "%2E")


def _untoken(token: str) -> str:
    return token.replace("%2E", ".").replace("%25", "%")


def _key_part(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


class NatsBroker(Broker):
    def __init__(self, url: str, node: str, **options):
        super().__init__(node, **options)
        parts = urlsplit(url)
        self.prefix = dict(parse_qsl(parts.query)).get("prefix", "tidings")
        self.url = urlunsplit(parts._replace(query=""))
        self._subject_prefix = f"{self.prefix}.c."
        self._nc: nats.NATS | None = None
        self._kv = None
        self._subs: dict[str, object] = {}
        self._closing = False

    @property
    def bucket(self) -> str:
        return f"{self.prefix}_cluster"

    # ---- connection ------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            self._nc = await nats.connect(
                self.url, name=f"tidings-{self.node}", connect_timeout=2,
                reconnect_time_wait=0.5, max_reconnect_attempts=-1,
                reconnected_cb=self._on_reconnected, disconnected_cb=self._on_disconnected,
                error_cb=self._on_error,
            )
            js = self._nc.jetstream()
            self._kv = await js.create_key_value(bucket=self.bucket, ttl=self.ttl, history=1)
        except (NatsError, OSError) as exc:
            raise BrokerError(f"nats: cannot connect to {self.url}: {exc}") from exc

    async def _disconnect(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    async def _on_reconnected(self) -> None:
        log.info("nats connection restored")
        await self._reconnected(resubscribed=True)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("nats connection lost; reconnecting")

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats: %s", exc)

    # ---- live delivery ---------------------------------------------------------------

    async def _publish(self, channel: str, payload: bytes) -> None:
        if self._nc is None or self._nc.is_closed:
            raise BrokerError("nats: not connected")
        try:
            await self._nc.publish(self._subject_prefix + _token(channel), payload)
        except (NatsError, OSError) as exc:
            raise BrokerError(f"nats: publish failed: {exc}") from exc

    async def _on_msg(self, msg) -> None:
        self._deliver(_untoken(msg.subject[len(self._subject_prefix):]), msg.data)

    async def _subscribe_many(self, channels: list[str]) -> None:
        try:
            for channel in channels:
                if channel not in self._subs:
                    self._subs[channel] = await self._nc.subscribe(
                        self._subject_prefix + _token(channel), cb=self._on_msg,
                        pending_msgs_limit=1_000_000, pending_bytes_limit=256 * 1024 * 1024,
                    )
            await self._nc.flush(timeout=5)
        except (NatsError, OSError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"nats: subscribe failed: {exc}") from exc

    async def _unsubscribe_many(self, channels: list[str]) -> None:
        try:
            for channel in channels:
                sub = self._subs.pop(channel, None)
                if sub is not None:
                    await sub.unsubscribe()
        except (NatsError, OSError) as exc:
            raise BrokerError(f"nats: unsubscribe failed: {exc}") from exc

    # ---- cluster state ---------------------------------------------------------------

    async def _put(self, key: str, value: bytes) -> None:
        try:
            await self._kv.put(key, value)
        except (NatsError, OSError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"nats: kv put failed: {exc}") from exc

    async def heartbeat(self, node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> None:
        puts = [self._put(f"{NODES}.{_key_part(node.name)}", orjson.dumps(node.to_dict()))]
        for channel, clients in presence.items():
            for client in clients:
                puts.append(self._put(self._presence_key(channel, client.client),
                                      orjson.dumps(client.to_dict())))
        await asyncio.gather(*puts)

    def _presence_key(self, channel: str, client: str) -> str:
        return f"{_key_part(channel)}.{_key_part(client)}"

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        await self._put(self._presence_key(channel, client.client),
                        orjson.dumps(client.to_dict()))

    async def presence_remove(self, channel: str, client: str) -> None:
        try:
            await self._kv.purge(self._presence_key(channel, client))
        except (NatsError, OSError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"nats: kv delete failed: {exc}") from exc

    async def _values(self, group: str) -> list[bytes]:
        """Current values of every key in `group`, read through a watcher (one consumer,
        every value in one pass; key listing with filters needs NATS 2.10)."""
        values = []
        try:
            watcher = await self._kv.watch(f"{group}.*", ignore_deletes=True)
            try:
                async for entry in watcher:
                    if entry is None:  # the initial values are all in
                        break
                    if entry.value:
                        values.append(entry.value)
            finally:
                await watcher.stop()
        except (NatsError, OSError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"nats: kv read failed: {exc}") from exc
        return values

    async def presence(self, channel: str) -> list[ClientInfo]:
        values = await self._values(_key_part(channel))
        return [ClientInfo.from_dict(orjson.loads(value)) for value in values]

    async def nodes(self) -> list[NodeInfo]:
        values = await self._values(NODES)
        return [NodeInfo.from_dict(orjson.loads(value)) for value in values]
