"""SockJS framing, sans-I/O: what the server writes and how client messages are read.

SockJS (https://github.com/sockjs/sockjs-protocol, version 0.3.3) carries a stream of text
messages over a WebSocket or over plain HTTP requests for networks that break WebSocket.
Server frames: `o` (open), `h` (heart-beat), `a[...]` (a JSON array of messages),
`c[code,"reason"]` (close). Clients send a JSON array of strings (or one JSON string).

Messages are encoded once as a JSON string (`message`) so that every transport can wrap the
same bytes: one `a[...]` per frame over WebSocket and streaming, several joined into one
array for a poll. Characters that some browsers' XHR mangle are escaped as SockJS asks.
"""

from __future__ import annotations

import re

import orjson

OPEN = b"o"
HEARTBEAT = b"h"
STREAMING_PRELUDE = b"h" * 2048 + b"\n"
SESSION_ID = re.compile(r"[^/.]+")

# The ranges SockJS wants escaped: control characters, invisible formatting characters,
# line separators, and everything above U+FFEF (surrogates included, as the protocol asks).
_ESCAPABLE = re.compile(
    "[\u007f-\u009f\u00ad\u0600-\u0604\u070f\u17b4\u17b5\u200c-\u200f\u2028-\u202f"
    "\u2060-\u206f\ufeff\ufff0-\uffff\ud800-\udfff]"
)


class SockJSError(ValueError):
    """A client message payload SockJS cannot read (answered with HTTP 500 and this text)."""


def message(text: str) -> bytes:
    """One message as the JSON string every transport wraps."""
    encoded = orjson.dumps(text)
    if not text.isascii():
        encoded = _ESCAPABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", encoded.decode()).encode()
    return encoded


def messages_frame(encoded: list[bytes]) -> bytes:
    """`a[...]` holding messages made by `message`."""
    return b"a[" + b",".join(encoded) + b"]"


def close_frame(code: int, reason: str) -> bytes:
    return b"c" + orjson.dumps([code, reason])


def parse_messages(payload: bytes | str) -> list[str]:
    """The messages of an `xhr_send` body or a WebSocket message from the client."""
    if not payload:
        raise SockJSError("Payload expected.")
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise SockJSError("Broken JSON encoding.") from None
    if isinstance(decoded, str):
        return [decoded]
    if not isinstance(decoded, list) or not all(isinstance(m, str) for m in decoded):
        raise SockJSError("Broken JSON encoding.")
    return decoded


def valid_session_id(value: str) -> bool:
    return bool(SESSION_ID.fullmatch(value))
