"""STOMP 1.0, 1.1 and 1.2 frames, sans-I/O: bytes in, frames out; frames in, bytes out.

The parser takes whatever the transport delivered (a WebSocket message, a SockJS message, a
piece of either) and returns the complete frames and heart-beats in it; everything a client
can get wrong raises one `StompError` carrying the text of the ERROR frame to answer with.
It never touches a socket and never grows without bound: a frame is refused as soon as it
passes `max_frame_bytes`, before the rest of it arrives.

Grammar (https://stomp.github.io/stomp-specification-1.2.html): a command line, header
lines, a blank line, a body ending in NUL, then any number of EOLs (heart-beats). Lines end
in LF or CR LF. Header escapes (`\\r` in 1.2 only, `\\n`, `\\c`, `\\\\`) apply from 1.1 on,
except in CONNECT, STOMP and CONNECTED frames; an undefined escape is an error. A repeated
header keeps its first value. With `content-length` the body is exactly that many bytes and
may hold NULs; without it the body ends at the first NUL. Bodies are bytes and pass
unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CLIENT_COMMANDS = frozenset({
    "CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "BEGIN", "COMMIT", "ABORT",
    "ACK", "NACK", "DISCONNECT",
})
SERVER_COMMANDS = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
BODY_COMMANDS = frozenset({"SEND", "MESSAGE", "ERROR"})
UNESCAPED_COMMANDS = frozenset({"CONNECT", "STOMP", "CONNECTED"})
VERSIONS = ("1.0", "1.1", "1.2")

HEARTBEAT = b"\n"

_UNESCAPE = {
    "1.1": {"n": "\n", "c": ":", "\\": "\\"},
    "1.2": {"r": "\r", "n": "\n", "c": ":", "\\": "\\"},
}
_ESCAPE = {
    "1.1": str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"}),
    "1.2": str.maketrans({"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"}),
}
_NEEDS_ESCAPE = re.compile(r"[\\\r\n:]")
_ESCAPE_SEQUENCE = re.compile(r"\\(.?)", re.S)


class StompError(Exception):
    """A frame (or a use of one) the server refuses: answered with ERROR, then a close.

    `message` goes into the ERROR frame's `message` header; `receipt_id` is the refused
    frame's `receipt` header, when it had one.
    """

    def __init__(self, message: str, receipt_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.receipt_id = receipt_id


@dataclass(slots=True, frozen=True)
class Frame:
    command: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (a repeated header keeps its first value)."""
        for key, value in self.headers:
            if key == name:
                return value
        return default


@dataclass(slots=True, frozen=True)
class HeartBeat:
    """One or more EOLs between frames: the peer is alive."""


@dataclass(slots=True, frozen=True)
class Limits:
    max_frame_bytes: int = 65536
    """Command, headers and body of one frame together."""
    max_headers: int = 64
    max_header_bytes: int = 8192
    """One header line, name and value, before unescaping."""


class FrameParser:
    """Incremental parser of client frames; `version` sets the escaping once negotiated."""

    def __init__(self, limits: Limits = Limits(), *, commands: frozenset[str] = CLIENT_COMMANDS):
        self.limits = limits
        self.commands = commands
        self.version = "1.2"
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame | HeartBeat]:
        """Every complete frame and heart-beat in what has arrived so far, in order."""
        self._buffer += data
        events: list[Frame | HeartBeat] = []
        buffer = self._buffer
        start = 0
        try:
            while start < len(buffer):
                eols = _skip_eols(buffer, start)
                if eols != start:
                    events.append(HeartBeat())
                    start = eols
                    continue
                if buffer[start] == 0x0D:  # a CR whose LF has not arrived yet
                    break
                parsed = self._frame(buffer, start)
                if parsed is None:
                    break
                frame, start = parsed
                events.append(frame)
        finally:
            del buffer[:start]
        return events

    def _frame(self, buffer: bytearray, start: int) -> tuple[Frame, int] | None:
        limit = self.limits.max_frame_bytes
        head_end = _blank_line(buffer, start)
        if head_end is None:
            if len(buffer) - start > limit:
                raise StompError(f"frame larger than {limit} bytes")
            return None
        head, body_start = head_end
        if head - start > limit:
            raise StompError(f"frame larger than {limit} bytes")
        lines = bytes(buffer[start:head]).split(b"\n")
        command = _text(lines[0].removesuffix(b"\r"), "command")
        if command not in self.commands:
            raise StompError(f"unknown command {command[:40]!r}")
        headers = self._headers(command, lines[1:])
        receipt = _first(headers, "receipt")
        length = _first(headers, "content-length")
        if length is not None:
            if not length.isdigit() or not length.isascii():
                raise StompError("content-length must be a non-negative integer", receipt)
            body_end = body_start + int(length)
            if body_end - start > limit:
                raise StompError(f"frame larger than {limit} bytes", receipt)
            if len(buffer) <= body_end:
                return None
            if buffer[body_end] != 0:
                raise StompError("frame does not end with NUL after content-length bytes",
                                 receipt)
        else:
            body_end = buffer.find(0, body_start, start + limit + 1)
            if body_end < 0:
                if len(buffer) - start > limit:
                    raise StompError(f"frame larger than {limit} bytes", receipt)
                return None
        body = bytes(buffer[body_start:body_end])
        if body and command not in BODY_COMMANDS:
            raise StompError(f"a {command} frame must not have a body", receipt)
        return Frame(command, headers, body), body_end + 1

    def _headers(self, command: str, lines: list[bytes]) -> tuple[tuple[str, str], ...]:
        limits = self.limits
        if len(lines) > limits.max_headers:
            raise StompError(f"more than {limits.max_headers} headers")
        escapes = None if command in UNESCAPED_COMMANDS else _UNESCAPE.get(self.version)
        headers = []
        for raw in lines:
            if len(raw) > limits.max_header_bytes:
                raise StompError(f"a header line longer than {limits.max_header_bytes} bytes")
            line = _text(raw.removesuffix(b"\r"), "headers")
            name, colon, value = line.partition(":")
            if not colon:
                raise StompError(f"header line without ':': {line[:40]!r}")
            if escapes is not None:
                name, value = _unescape(name, escapes), _unescape(value, escapes)
            if not name:
                raise StompError("empty header name")
            headers.append((name, value))
        return tuple(headers)


def _skip_eols(buffer: bytearray, start: int) -> int:
    end = len(buffer)
    while start < end:
        byte = buffer[start]
        if byte == 0x0A:
            start += 1
        elif byte == 0x0D and start + 1 < end and buffer[start + 1] == 0x0A:
            start += 2
        else:
            break
    return start


def _blank_line(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """(end of the header block, start of the body) once the blank line has arrived."""
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\n\r\n", start)
    if lf < 0 and crlf < 0:
        return None
    if crlf < 0 or 0 <= lf < crlf:
        return lf, lf + 2
    return crlf, crlf + 3


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StompError(f"{what} must be UTF-8") from None


def _unescape(text: str, escapes: dict[str, str]) -> str:
    if "\\" not in text:
        return text

    def one(match: re.Match) -> str:
        replacement = escapes.get(match.group(1))
        if replacement is None:
            raise StompError(f"undefined escape sequence {match.group(0)!r} in a header")
        return replacement

    return _ESCAPE_SEQUENCE.sub(one, text)


def _first(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


# ---- encoding ------------------------------------------------------------------------


def escape(text: str, version: str) -> str:
    """A header name or value as `version` writes it (1.0 has no escapes: LF becomes space)."""
    if not _NEEDS_ESCAPE.search(text):
        return text
    table = _ESCAPE.get(version)
    if table is None:
        return text.replace("\r", " ").replace("\n", " ")
    return text.translate(table)


def encode(command: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
           *, version: str = "1.2") -> bytes:
    """One frame; a frame with a body gets `content-length` (the body may hold NULs)."""
    plain = command in UNESCAPED_COMMANDS
    lines = [command]
    for name, value in headers:
        if plain:
            lines.append(f"{name}:{value}")
        else:
            lines.append(f"{escape(name, version)}:{escape(value, version)}")
    if body or command in BODY_COMMANDS:
        lines.append(f"content-length:{len(body)}")
    lines.append("\n")
    return "\n".join(lines).encode() + body + b"\0"


def negotiate_version(accept: str | None) -> str | None:
    """The highest version both sides speak; 1.0 when the client names none; None if no match."""
    if accept is None:
        return "1.0"
    offered = {v.strip() for v in accept.split(",")}
    for version in reversed(VERSIONS):
        if version in offered:
            return version
    return None


def parse_heartbeat(value: str | None) -> tuple[int, int]:
    """The `heart-beat` header: (ms the client can send at, ms it wants to receive at)."""
    if value is None:
        return 0, 0
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and p.strip().isascii() for p in parts):
        raise StompError(f"heart-beat must be two non-negative integers, got {value[:40]!r}")
    return int(parts[0]), int(parts[1])


def heartbeat_intervals(client: tuple[int, int], server: tuple[int, int]) -> tuple[int, int]:
    """(ms between the server's heart-beats, ms within which the client's must come); 0: none.

    The spec's rule: each side sends at the larger of what it can do and what the other
    wants, and not at all if either says 0.
    """
    cx, cy = client
    sx, sy = server
    send = 0 if sx == 0 or cy == 0 else max(sx, cy)
    receive = 0 if cx == 0 or sy == 0 else max(cx, sy)
    return send, receive
