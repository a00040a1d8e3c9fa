"""Tidings' own WebSocket layer: messages whole and in order, limits, the closing handshake."""

from __future__ import annotations

import asyncio

import orjson

from tests.wsraw import (BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame,
                         close_frame, open_raw)
from tidings.server.wsserver import MAX_WAITING, WebSocket


def _command(id: int, method: str = "presence", **params) -> bytes:
    return client_frame(orjson.dumps({"id": id, method: params}))


async def _replies(raw, count: int) -> list[int]:
    ids = []
    while len(ids) < count:
        opcode, payload = await raw.frame()
        assert opcode == TEXT
        ids.append(orjson.loads(payload)["id"])
    return ids


async def test_replies_to_commands_sent_before_a_close_frame_come_before_the_answer(server):
    raw = await open_raw(server.port)
    raw.send(b"".join(_command(n) for n in range(1, 6)) + close_frame(1000))
    assert await _replies(raw, 5) == [1, 2, 3, 4, 5]
    opcode, payload = await raw.frame()
    assert (opcode, payload[:2]) == (CLOSE, b"\x03\xe8")  # 1000 answered with 1000
    assert await raw.eof()


async def test_a_fragmented_command_arrives_whole(server):
    raw = await open_raw(server.port)
    text = orjson.dumps({"id": 7, "connect": {"user": "alice"}})
    raw.send(client_frame(text[:5], TEXT, fin=False)
             + client_frame(b"", PING)  # a control frame may come between fragments
             + client_frame(text[5:20], CONTINUATION, fin=False)
             + client_frame(text[20:], CONTINUATION))
    assert await raw.frame() == (PONG, b"")
    opcode, payload = await raw.frame()
    assert orjson.loads(payload)["connect"]["user"] == "alice"


async def test_a_ping_is_answered_with_its_payload(server):
    raw = await open_raw(server.port)
    raw.send(client_frame(b"are you there", PING))
    assert await raw.frame() == (PONG, b"are you there")


async def test_a_message_of_max_frame_bytes_is_taken_one_byte_more_gets_1009(make_server):
    async with make_server(max_frame_bytes=1024) as server:
        raw = await open_raw(server.port)
        raw.send(client_frame(b" " * 1024))  # not a command, but read: a 101 error reply
        opcode, payload = await raw.frame()
        assert orjson.loads(payload)["error"]["code"] == 101
        raw.send(client_frame(b"x" * 600, TEXT, fin=False) + client_frame(b"x" * 425,
                                                                          CONTINUATION))
        assert await raw.close_code() == 1009


async def test_a_message_counts_bytes_not_characters(make_server):
    async with make_server(max_frame_bytes=1024) as server:
        raw = await open_raw(server.port)
        raw.send(client_frame("é".encode() * 513))  # 513 characters, 1,026 bytes
        assert await raw.close_code() == 1009


async def test_invalid_utf_8_in_a_text_message_gets_1007(server):
    raw = await open_raw(server.port)
    raw.send(client_frame(b'{"id": 1, "x": "\xff"}'))
    assert await raw.close_code() == 1007


async def test_a_server_close_waits_for_the_answer_then_drops_tcp(server):
    raw = await open_raw(server.port)
    for _ in range(100):
        if server.node.sessions:
            session = next(iter(server.node.sessions.values()))
            break
        await asyncio.sleep(0.01)
    session.close(4007, "bye")
    assert await raw.close_code() == 4007
    raw.send(close_frame(4007))
    assert await raw.eof()
    for _ in range(100):
        if not server.node.sessions:
            break
        await asyncio.sleep(0.01)
    assert not server.node.sessions  # the session ended with its socket


class Held:
    """A receiver that takes nothing until released: the client outpaces it."""

    def __init__(self):
        self.got: list[str | bytes] = []
        self.release = asyncio.Event()
        self.ended = asyncio.Event()

    def seen(self) -> None:
        pass

    async def receive(self, message: str | bytes) -> None:
        await self.release.wait()
        self.got.append(message)

    async def closed(self) -> None:
        self.ended.set()


async def test_a_client_outpacing_its_receiver_is_not_read_until_it_catches_up():
    held = Held()
    sockets: list[WebSocket] = []

    class Upgraded(asyncio.Protocol):
        def connection_made(self, transport):
            socket = WebSocket(transport, 1 << 20, lambda s: None)
            sockets.append(socket)
            socket.start(held, b"")

    server = await asyncio.get_running_loop().create_server(Upgraded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        count = MAX_WAITING * 3
        writer.write(b"".join(client_frame(b"%d" % n, BINARY) for n in range(count)))
        await writer.drain()
        for _ in range(200):
            if not sockets[0].transport.is_reading():
                break
            await asyncio.sleep(0.01)
        assert not sockets[0].transport.is_reading()
        held.release.set()
        for _ in range(500):
            if len(held.got) == count:
                break
            await asyncio.sleep(0.01)
        assert held.got == [b"%d" % n for n in range(count)]  # every one, in order
        assert sockets[0].transport.is_reading()
        writer.close()
        await asyncio.wait_for(held.ended.wait(), 5)  # told once the socket is gone
    finally:
        writer.close()
        server.close()
