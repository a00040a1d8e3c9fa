"""Tidings' own server side of an upgraded WebSocket: one small object per connection.

aiohttp's WebSocket keeps, for a connection's whole life, the parsed upgrade request, an
HTTP parser, a frame reader, a writer, a message queue and two tasks with their coroutine
frames: about 14 KB per idle connection before Tidings adds anything (measured, see
docs/performance.md). An idle connection here is this protocol object, wsproto's sans-I/O
frame parser and the transport; a task exists only while messages wait to be handled.

Frames are parsed by wsproto's `FrameProtocol`, which keeps every RFC 6455 rule for client
frames (masking, reserved bits, opcodes, fragmentation, control frame sizes, close codes,
UTF-8 of text). Messages reach the `Receiver` whole and strictly one at a time, in the
order the client sent them; while `MAX_WAITING` of them wait, the socket is not read, so a
client that sends faster than it is served is slowed by TCP, not buffered without bound.

Every frame the server sends is written to the transport as it is (pre-encoded, see
tidings.protocol.wsframe): the hub writes one frame object to thousands of sockets. A write
to a socket that is already gone is dropped, as the session expects.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Protocol

from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed

from tidings.errors import CloseCode
from tidings.protocol import wsframe
from tidings.server.connection import CLOSE_GRACE, TransportWrites

log = logging.getLogger("tidings.server")

MAX_WAITING = 32  # messages waiting for the receiver before the socket stops being read
_NO_STATUS = wsframe.frame(b"", wsframe.CLOSE)  # the answer to a close frame without a code


class Receiver(Protocol):
    """What an endpoint gives the socket: where its messages go."""

    def seen(self) -> None:
        """The client sent something (a ping counts): it is alive."""

    async def receive(self, message: str | bytes) -> None:
        """One whole message (str for a text message); the next waits until this returns."""

    async def closed(self) -> None:
        """Once, after the last message, when the socket is gone."""


class WebSocket(TransportWrites, asyncio.Protocol):
    """An upgraded connection; also the session's `Connection` (write, buffered, close)."""

    __slots__ = ("transport", "receiver", "_frames", "_parts", "_size", "_max_size",
                 "_waiting", "_worker", "_paused", "_lost", "_close_sent", "_last_words", "_grace",
                 "_forget", "_finished", "_done")

    def __init__(self, transport: asyncio.Transport, max_message_bytes: int,
                 forget: Callable[["WebSocket"], None]):
        self.transport = transport
        self.receiver: Receiver | None = None
        self._frames = FrameProtocol(client=False, extensions=[])
        self._parts: list = []  # the fragments of a message not yet finished
        self._size = 0  # bytes of that message so far
        self._max_size = max_message_bytes
        self._waiting: collections.deque[str | bytes] = collections.deque()
        self._worker: asyncio.Task | None = None
        self._paused = False
        self._lost = False
        self._close_sent = False
        self._last_words: bytes | None = None  # a close frame owed once the waiting are handled
        self._grace: asyncio.TimerHandle | None = None
        self._forget = forget  # told when the socket is gone (the front keeps live sockets)
        self._finished = False  # the receiver has been told `closed`
        self._done: asyncio.Future | None = None  # made only for someone waiting for that

    def start(self, receiver: Receiver, early: bytes) -> None:
        """Take the transport over; `early` is what the client sent right after its handshake."""
        self.receiver = receiver
        self.transport.set_protocol(self)
        if early:
            self.data_received(early)

    # ---- the session's Connection ----------------------------------------------------

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def close(self, code: int, reason: str) -> None:
        """Send a close frame; the socket is dropped if the client has not answered in time."""
        if self._close_sent or self._lost:
            return
        self._send_close(wsframe.close(code, reason))
        self._grace = asyncio.get_running_loop().call_later(CLOSE_GRACE, self.transport.abort)

    # ---- asyncio.Protocol ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.receiver.seen()
        frames = self._frames
        frames.receive_bytes(data)
        try:
            for frame in frames.received_frames():
                opcode = frame.opcode
                if opcode is Opcode.PING:
                    self.write(frames.pong(frame.payload))
                elif opcode is Opcode.CLOSE:
                    self._closed_by_client(*frame.payload)
                    return
                elif opcode is not Opcode.PONG and not self._close_sent:
                    if not self._fragment(frame.payload, frame.message_finished):
                        return
        except ParseFailed as failure:
            self._fail(int(failure.code), str(failure))

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._grace is not None:
            self._grace.cancel()
        self._forget(self)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    # ---- reading -----------------------------------------------------------------------

    def _fragment(self, payload: str | bytes, finished: bool) -> bool:
        """Add a piece of a data message; False when the socket was failed for its size."""
        size = len(payload)
        if isinstance(payload, str) and self._size + 4 * size > self._max_size:
            size = len(payload.encode())  # its bytes only matter near the limit
        self._size += size
        if self._size > self._max_size:
            self._fail(CloseCode.MESSAGE_TOO_BIG,
                       f"message larger than {self._max_size} bytes")
            return False
        if not finished:
            self._parts.append(payload)
            return True
        if self._parts:
            self._parts.append(payload)
            payload = payload[:0].join(self._parts)
            self._parts = []
        self._size = 0
        self._waiting.append(payload)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        elif len(self._waiting) >= MAX_WAITING and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        return True

    async def _work(self) -> None:
        """Hand the waiting messages over one by one; tell the receiver when the socket is gone."""
        waiting, receiver = self._waiting, self.receiver
        while waiting:
            try:
                await receiver.receive(waiting.popleft())
            except Exception:
                log.exception("a message could not be handled")
            if self._paused and not waiting and not self._lost and self._last_words is None:
                self._paused = False
                self.transport.resume_reading()
        self._worker = None
        if self._last_words is not None:
            asyncio.get_running_loop().call_soon(self._end, self._last_words)
        if self._lost:
            try:
                await receiver.closed()
            finally:
                self._finished = True
                if self._done is not None and not self._done.done():
                    self._done.set_result(None)

    def _closed_by_client(self, code: int, reason: str) -> None:
        """The client's close frame: answered with its own code (the closing handshake)."""
        if self._close_sent:
            self.transport.close()  # the answer to ours: the handshake is complete
        elif code == CloseReason.NO_STATUS_RCVD:
            self._end_after_waiting(_NO_STATUS)
        else:
            self._end_after_waiting(wsframe.close(int(code), reason))

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame saying why, then TCP closed."""
        if self._close_sent:
            self.transport.close()
        else:
            self._end_after_waiting(wsframe.close(code, reason))

    def _end_after_waiting(self, close_frame: bytes) -> None:
        """Close once every message before the end has been handled and answered: replies
        to them come before the close frame, as the client sent them before its own."""
        self._close_sent = True  # nothing after this point is read
        if self._worker is None:
            # after this tick's output (tidings.outbox flushes at the end of the tick)
            asyncio.get_running_loop().call_soon(self._end, close_frame)
        else:
            self._last_words = close_frame
            if not self._paused:
                self._paused = True
                self.transport.pause_reading()

    def _end(self, close_frame: bytes) -> None:
        """Called soon after the last message was handled: its reply is written by then."""
        self._last_words = None
        self.write(close_frame)
        self.transport.close()  # the server drops TCP first (RFC 6455 7.1.1)

    def _send_close(self, frame: bytes) -> None:
        self._close_sent = True
        self.write(frame)

    def wait_closed(self) -> asyncio.Future:
        """Resolved once the receiver has been told the socket is gone."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self._finished:
                self._done.set_result(None)
        return self._done
