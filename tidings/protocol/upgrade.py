"""A WebSocket opening handshake (RFC 6455 4.2), sans-I/O: the request head in, a verdict out.

Tidings reads the first request of every TCP connection itself (tidings.server.front): a
well-formed upgrade to one of its WebSocket endpoints is answered here and the socket stays
with Tidings' own WebSocket layer; anything else (a plain HTTP request, or an upgrade this
module does not accept) goes to the HTTP server with every byte read so far, and gets that
server's usual answer. So this module never needs to explain a refusal: it only says
"mine" (an `UpgradeRequest`) or "not mine" (None). The head is parsed by h11.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl

import h11
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

MAX_HEAD_BYTES = 8192  # a longer head is the HTTP server's to refuse (431)
HEAD_END = b"\r\n\r\n"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


@dataclass(slots=True)
class UpgradeRequest:
    """An upgrade this module accepts: GET, HTTP/1.1, `Upgrade: websocket`, version 13."""

    path: str
    query: str
    headers: CIMultiDictProxy[str]
    key: str  # Sec-WebSocket-Key, 16 bytes in base64
    early: bytes  # bytes the client sent after the head (its first frames)

    def params(self) -> MultiDictProxy[str]:
        """The query's parameters, decoded (`?token=` and the like)."""
        return MultiDictProxy(MultiDict(parse_qsl(self.query, keep_blank_values=True)))

    def offered(self) -> list[str]:
        """The subprotocols the client offers (Sec-WebSocket-Protocol), in its order."""
        return [name for value in self.headers.getall("Sec-WebSocket-Protocol", ())
                for name in (part.strip() for part in value.split(",")) if name]


def request_path(data: bytes) -> str | None:
    """The path of the request line once `data` holds it (None before that, or if it is not GET).

    Lets the front decide at the first line that a request is not for a WebSocket endpoint.
    """
    end = data.find(b"\r\n")
    if end < 0:
        return None
    parts = data[:end].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return ""
    return parts[1].split(b"?", 1)[0].decode("latin-1")


def parse_upgrade(data: bytes) -> UpgradeRequest | None:
    """The upgrade in `data` (a whole head, maybe followed by frames), or None if not one."""
    end = data.find(HEAD_END)
    if end < 0 or end + len(HEAD_END) > MAX_HEAD_BYTES:
        return None
    head, early = data[:end + len(HEAD_END)], data[end + len(HEAD_END):]
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(head)
    try:
        event = parser.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(event, h11.Request) or event.method != b"GET" \
            or event.http_version != b"1.1":
        return None
    headers = CIMultiDict((name.decode("latin-1"), value.decode("latin-1"))
                          for name, value in event.headers)
    if not _has_token(headers, "Upgrade", "websocket") \
            or not _has_token(headers, "Connection", "upgrade") \
            or headers.get("Sec-WebSocket-Version") != "13":
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    if not _valid_key(key):
        return None
    target = event.target.decode("latin-1")
    path, _, query = target.partition("?")
    return UpgradeRequest(path, query, CIMultiDictProxy(headers), key, early)


def negotiate_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first subprotocol the client offered that the server supports (RFC 6455 4.2.2).

    None when it offered none of them (or none at all): the 101 then names no subprotocol,
    and the client decides whether that will do.
    """
    return next((name for name in offered if name in supported), None)


def switching_protocols(key: str, subprotocol: str | None = None) -> bytes:
    """The 101 answer that completes the handshake for `key`, naming `subprotocol` if any."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
    chosen = b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1") + b"\r\n" \
        if subprotocol else b""
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n" + chosen + b"\r\n")


def http_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response that closes the connection (an upgrade refused)."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
             "Content-Type: application/json; charset=utf-8",
             f"Content-Length: {len(body)}", "Connection: close",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _has_token(headers: CIMultiDict[str], name: str, token: str) -> bool:
    return any(part.strip().lower() == token
               for value in headers.getall(name, ()) for part in value.split(","))


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False
