"""WebSocket by hand over a plain TCP socket: frames a well-behaved library would never send."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def client_frame(payload: bytes, opcode: int = TEXT, *, masked: bool = True,
                 fin: bool = True) -> bytes:
    """One frame as a client sends it: masked with a random key unless told otherwise."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code: int, reason: bytes = b"", **kwargs) -> bytes:
    return client_frame(struct.pack("!H", code) + reason, CLOSE, **kwargs)


class RawSocket:
    """A TCP connection that has (or has tried to have) a WebSocket handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 status: int, head: str, body: bytes):
        self.reader, self.writer = reader, writer
        self.status, self.head, self.body = status, head, body

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self, timeout: float = 5) -> tuple[int, bytes]:
        """The next server frame: (opcode, payload)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return first & 0x0F, await asyncio.wait_for(self.reader.readexactly(size), timeout)

    async def close_code(self, timeout: float = 5) -> int:
        """Read frames until the server's close frame; its code."""
        while True:
            opcode, payload = await self.frame(timeout)
            if opcode == CLOSE:
                return struct.unpack("!H", payload[:2])[0]

    async def eof(self, timeout: float = 5) -> bool:
        """True once the server has closed the TCP connection (whatever it sent before)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


async def open_raw(port: int, path: str = "/ws", headers: dict[str, str] | None = None,
                   early: bytes = b"") -> RawSocket:
    """Send a handshake (and `early` bytes in the same write); read the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    fields = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13", **(headers or {})}
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in fields.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + early)
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
    status = int(head.split(" ", 2)[1])
    body = b""
    if status != 101:
        length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        body = await asyncio.wait_for(reader.readexactly(length), 5)
    return RawSocket(reader, writer, status, head, body)
