"""What only the NATS broker has to get right: reading KV entries when the server's answers
overtake its deliveries.

A read asks the server about its consumer (how many messages delivered, how many pending)
while the messages are on their way. On a loaded server the answer can arrive first, having
counted every message as delivered: a reader that takes "nothing pending, nothing received"
for "no entries" reads a full room as empty (seen in CI, 0 of 500). The relay here makes
that order certain instead of rare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.broker.conftest import PORTS, Namespace, Relay
from tidings.model import ClientInfo

LAG = 0.5  # s a JetStream delivery spends in the relay


class LaggingRelay(Relay):
    """A relay to the shared nats-server that holds JetStream deliveries back by LAG and a
    consumer info request by LAG/2: the server answers having delivered every message it
    had, and the answer reaches the client ahead of them, as on a loaded server."""

    def __init__(self) -> None:
        super().__init__(PORTS["nats"])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            _lagging_pump(reader, up_writer, b"PUB $JS.API.CONSUMER.INFO.", LAG / 2),
            _lagging_pump(up_reader, writer, b" $JS.ACK.", LAG),
            return_exceptions=True,
        )


async def _lagging_pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        marker: bytes, lag: float) -> None:
    """Copies NATS protocol frames, holding back by `lag` those whose first line holds
    `marker`; held frames keep their order among themselves."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            frame = await reader.readuntil(b"\r\n")
            if frame.split(b" ", 1)[0] in (b"MSG", b"HMSG", b"PUB", b"HPUB"):
                frame += await reader.readexactly(int(frame.split()[-1]) + 2)
            if marker in frame.split(b"\r\n", 1)[0]:
                loop.call_later(lag, writer.write, frame)
            else:
                writer.write(frame)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
async def space() -> AsyncIterator[Namespace]:
    namespace = Namespace("nats")
    yield namespace
    await namespace.close()


@pytest.fixture
async def lagging_relay() -> AsyncIterator[LaggingRelay]:
    relay = LaggingRelay()
    await relay.start()
    yield relay
    await relay.cut()


async def test_a_read_waits_for_entries_the_server_counted_before_they_arrive(
    space, lagging_relay
):
    writer, _ = await space.node("a")
    reader, _ = await space.node("b", port=lagging_relay.port)
    crowd = [ClientInfo(f"c{n}", f"u{n}", writer.node) for n in range(3)]
    await asyncio.gather(*(writer.presence_add("room:lag", client) for client in crowd))
    started = time.monotonic()
    assert sorted(client.user for client in await reader.presence("room:lag")) == [
        "u0", "u1", "u2"]
    assert time.monotonic() - started >= LAG  # it did wait for the held-back deliveries
    assert await reader.presence("room:empty") == []
