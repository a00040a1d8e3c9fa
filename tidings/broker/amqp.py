"""RabbitMQ broker: a topic exchange and one exclusive queue per node, bound on demand.

URL: `amqp://user:password@host:5672/vhost`, optionally `?exchange=name` (default
`tidings`) to keep clusters or test runs apart.

Live delivery: publications go to the topic exchange with routing key `c.<channel>` (`%`
and `.` percent-encoded, so a channel is one topic word and `*`/`#` cannot occur). Each node
declares one exclusive, auto-delete queue and binds it only to the keys of channels its
sessions need: the fanout-exchange-per-node design, made targeted. Live messages are
transient and published without confirms: the store, not the broker, is the record.

aio-pika's robust connection reconnects (every 0.5 s) and restores the queue, its bindings
and the consumer by itself; the node is then told, and its hub reads what was lost from the
store.

Cluster state: RabbitMQ has no key-value store, so it travels over the exchange. Every node
binds `_ctl.nodes` and announces itself there each heartbeat; a node is alive while its
last heartbeat is younger than `ttl`. Presence entries stay on the node that holds the
session: `presence(channel)` asks every live node on `_ctl.nodes` and gathers the answers
sent to `_ctl.node.<asker>` (waiting at most one second for a node that does not answer).
A dead node neither heartbeats nor answers, so its entries vanish with it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError

from tidings.broker.base import Broker, BrokerError
from tidings.model import ClientInfo, NodeInfo
from tidings.presence import PresenceMap

log = logging.getLogger("tidings.broker.amqp")

CONTROL = "_ctl.nodes"
ANSWER_WAIT = 1.0


def _word(text: str) -> str:
    return text.replace("%", "%25").replace(".", "%2E")


def _unword(word: str) -> str:
    return word.replace("%2E", ".").replace("%25", "%")


class AmqpBroker(Broker):
    def __init__(self, url: str, node: str, **options):
        super().__init__(node, **options)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.exchange_name = query.pop("exchange", "tidings")
        query.setdefault("reconnect_interval", "0.5")
        self.url = urlunsplit(parts._replace(query=urlencode(query)))
        self._connection = None
        self._exchange = None
        self._queue = None
        self._local = PresenceMap()  # this node's presence
        self._peers: dict[str, tuple[NodeInfo, float]] = {}
        self._me: NodeInfo | None = None
        self._questions: dict[str, tuple[asyncio.Future, list, set[str]]] = {}
        self._ids = itertools.count()

    def _key(self, channel: str) -> str:
        return "c." + _word(channel)

    # ---- connection ------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self.url, client_properties={"connection_name": f"tidings-{self.node}"},
                timeout=5,
            )
            channel = await self._connection.channel(publisher_confirms=False)
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            self._queue = await channel.declare_queue(
                f"{self.exchange_name}.node.{self.node}", exclusive=True, auto_delete=True
            )
            await self._queue.bind(self._exchange, CONTROL)
            await self._queue.bind(self._exchange, f"_ctl.node.{_word(self.node)}")
            await self._queue.consume(self._take, no_ack=True)
        except (AMQPError, OSError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"amqp: cannot connect: {exc}") from exc
        self._connection.reconnect_callbacks.add(self._on_reconnect_done)

    async def _on_reconnect_done(self, connection) -> None:
        log.info("amqp connection restored")
        await self._reconnected(resubscribed=True)

    async def _disconnect(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _send(self, key: str, body: bytes) -> None:
        if self._exchange is None or self._connection is None or self._connection.is_closed:
            raise BrokerError("amqp: not connected")
        try:
            await self._exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT),
                routing_key=key, mandatory=False, timeout=5,  # unroutable: nothing to say
            )
        except (AMQPError, OSError, RuntimeError, asyncio.TimeoutError) as exc:
            raise BrokerError(f"amqp: publish failed: {exc}") from exc

    async def _take(self, message: AbstractIncomingMessage) -> None:
        key = message.routing_key or ""
        if key.startswith("c."):
            self._deliver(_unword(key[2:]), message.body)
        else:
            self._on_control(orjson.loads(message.body))

    # ---- live delivery ---------------------------------------------------------------

    async def _publish(self, channel: str, payload: bytes) -> None:
        await self._send(self._key(channel), payload)

    async def _bind_all(self, method: str, channels: list[str]) -> None:
        try:
            await asyncio.gather(*(
                getattr(self._queue, method)(self._exchange, self._key(channel))
                for channel in channels
            ))
        except (AMQPError, OSError, RuntimeError) as exc:
            raise BrokerError(f"amqp: {method} failed: {exc}") from exc

    async def _subscribe_many(self, channels: list[str]) -> None:
        await self._bind_all("bind", channels)

    async def _unsubscribe_many(self, channels: list[str]) -> None:
        await self._bind_all("unbind", channels)

    # ---- cluster state ---------------------------------------------------------------

    def _on_control(self, message: dict) -> None:
        kind, sender = message.get("t"), message.get("from")
        if sender == self.node:
            return
        if kind == "hb":
            self._peers[sender] = (NodeInfo.from_dict(message["node"]), time.monotonic())
        elif kind == "ask":
            clients = [c.to_dict() for c in self._local.members(message["channel"])]
            answer = {"t": "answer", "from": self.node, "id": message["id"], "clients": clients}
            asyncio.get_running_loop().create_task(
                self._answer(f"_ctl.node.{_word(sender)}", orjson.dumps(answer))
            )
        elif kind == "answer":
            question = self._questions.get(message["id"])
            if question is not None:
                done, gathered, waiting = question
                gathered.extend(ClientInfo.from_dict(c) for c in message["clients"])
                waiting.discard(sender)
                if not waiting and not done.done():
                    done.set_result(None)

    async def _answer(self, key: str, body: bytes) -> None:
        try:
            await self._send(key, body)
        except BrokerError as exc:
            log.warning("presence answer not sent: %s", exc)

    def _live_peers(self) -> list[NodeInfo]:
        now = time.monotonic()
        return [info for info, seen in self._peers.values() if now - seen <= self.ttl]

    async def heartbeat(self, node: NodeInfo, presence: dict[str, list[ClientInfo]]) -> None:
        self._me = node
        self._local.replace(presence)
        await self._send(CONTROL, orjson.dumps({"t": "hb", "from": self.node,
                                                "node": node.to_dict()}))

    async def presence_add(self, channel: str, client: ClientInfo) -> None:
        self._local.add(channel, client)

    async def presence_remove(self, channel: str, client: str) -> None:
        self._local.remove(channel, client)

    async def presence(self, channel: str) -> list[ClientInfo]:
        clients = self._local.members(channel)
        peers = {info.name for info in self._live_peers()}
        if not peers:
            return clients
        id = f"{self.node}:{next(self._ids)}"
        done = asyncio.get_running_loop().create_future()
        self._questions[id] = (done, clients, set(peers))
        try:
            await self._send(CONTROL, orjson.dumps({"t": "ask", "from": self.node, "id": id,
                                                    "channel": channel}))
            await asyncio.wait_for(done, ANSWER_WAIT)
        except asyncio.TimeoutError:
            pass  # a node that does not answer within the wait is dying or gone
        finally:
            del self._questions[id]
        return clients

    async def nodes(self) -> list[NodeInfo]:
        return ([self._me] if self._me else []) + self._live_peers()
