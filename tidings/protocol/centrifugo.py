"""Centrifugo's client protocol (version 2), sans-I/O: frames in, typed commands out.

Two encodings of the same messages (tidings/protocol/centrifugo.proto):

- JSON: a text frame holds one or more commands (replies), one JSON object per line;
  `data` fields are JSON values carried as they are.
- Protobuf: a binary frame holds one or more `Command` (`Reply`) messages, each behind its
  length as a varint; `data` fields are bytes (Tidings keeps JSON in them, see below).

Replies and pushes are built as plain dicts in the schema's shape, `data` fields as raw JSON
bytes, and encoded by a `Format`: one dict shape serves both encodings, so a publication is
encoded once per encoding whatever the number of recipients. docs/centrifugo.md is the
reference. This module never touches a socket or a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError, Message

from tidings.model import ClientInfo, Publication
from tidings.protocol import centrifugo_pb2 as pb

MAX_ID = 2**32 - 1
MAX_VARINT_BYTES = 5  # a frame's length prefix: at most 2^35, far above any frame limit
METHODS = ("connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
           "history", "ping", "send", "rpc", "refresh", "sub_refresh")


class FrameError(ValueError):
    """A frame that is not a command stream at all: the connection ends (bad request)."""


class RequestError(ValueError):
    """A readable command with a malformed request: answered with error 107."""

    def __init__(self, id: int, message: str):
        super().__init__(message)
        self.id = id
        self.message = message


@dataclass(slots=True, frozen=True)
class Position:
    offset: int
    epoch: str


@dataclass(slots=True, frozen=True)
class Connect:
    token: str
    data: bytes | None
    recover: dict[str, Position]  # server-side subscriptions to recover
    name: str = ""


@dataclass(slots=True, frozen=True)
class Subscribe:
    channel: str
    token: str
    recover: Position | None
    unsupported: str | None = None  # a feature asked for that Tidings cannot honour


@dataclass(slots=True, frozen=True)
class ChannelRequest:
    """unsubscribe, presence and presence_stats: a channel and nothing else."""

    channel: str


@dataclass(slots=True, frozen=True)
class Publish:
    channel: str
    data: bytes
    unsupported: str | None = None


@dataclass(slots=True, frozen=True)
class History:
    channel: str
    limit: int  # 0: only the stream position; < 0: as many as allowed
    since: Position | None
    reverse: bool


@dataclass(slots=True, frozen=True)
class Rpc:
    method: str
    data: bytes | None


@dataclass(slots=True, frozen=True)
class Token:
    """refresh (channel "") and sub_refresh."""

    token: str
    channel: str = ""


@dataclass(slots=True, frozen=True)
class Empty:
    """ping, send, and the empty command that answers a server ping."""


@dataclass(slots=True, frozen=True)
class Command:
    id: int
    method: str  # "" for the empty command (a pong)
    request: Any = field(default_factory=Empty)


# ---- decoding ------------------------------------------------------------------------


def decode_json(frame: bytes) -> list[Command | RequestError]:
    """Every command of one JSON frame (newline-separated objects); a readable command with
    a malformed request stands in the list as its RequestError, to be answered in turn."""
    commands: list[Command | RequestError] = []
    for line in frame.split(b"\n"):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FrameError(f"a command is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise FrameError("a command must be a JSON object")
        commands.append(_command(raw, json_data=True))
    return commands


def decode_protobuf(frame: bytes) -> list[Command | RequestError]:
    """Every command of one Protobuf frame (varint-length-delimited Command messages)."""
    commands: list[Command | RequestError] = []
    pos = 0
    while pos < len(frame):
        size, pos = read_varint(frame, pos)
        if pos + size > len(frame):
            raise FrameError("a command is cut short")
        try:
            message = pb.Command.FromString(frame[pos:pos + size])
        except DecodeError as exc:
            raise FrameError(f"a command is not a protobuf Command: {exc}") from None
        pos += size
        commands.append(_command(_fields(message), json_data=False))
    return commands


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the length prefix at `pos`."""
    value = shift = 0
    for index in range(pos, min(pos + MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise FrameError("a command's length is malformed")


def _fields(message: Message) -> dict:
    """The fields set in a protobuf message, as the JSON encoding would give them (bytes kept)."""
    out: dict = {}
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            out[descriptor.name] = value
        elif descriptor.message_type.GetOptions().map_entry:
            out[descriptor.name] = {key: _fields(item) if isinstance(item, Message) else item
                                    for key, item in value.items()}
        elif isinstance(value, Message):
            out[descriptor.name] = _fields(value)
        else:
            out[descriptor.name] = [_fields(item) for item in value]
    return out


def _command(raw: dict, *, json_data: bool) -> Command | RequestError:
    try:
        return _read_command(raw, json_data)
    except RequestError as exc:
        return exc


def _read_command(raw: dict, json_data: bool) -> Command:
    id = raw.get("id", 0)
    if not isinstance(id, int) or isinstance(id, bool) or not 0 <= id <= MAX_ID:
        raise FrameError("a command's 'id' must be an integer from 0 to 2^32-1")
    methods = [name for name in METHODS if raw.get(name) is not None]
    if not methods:
        if id:
            raise RequestError(id, "the command names no method")
        return Command(0, "")
    if len(methods) > 1:
        raise RequestError(id, f"the command names more than one method: {methods}")
    method = methods[0]
    params = raw[method]
    if not isinstance(params, dict):
        raise RequestError(id, f"{method}: its request must be an object")
    if id == 0 and method != "send":
        raise FrameError(f"{method} needs an 'id'")
    return Command(id, method, _PARSERS[method](_Fields(id, method, params, json_data)))


class _Fields:
    """Typed reads of one request's fields, each failure a RequestError naming the field."""

    def __init__(self, id: int, method: str, raw: dict, json_data: bool):
        self.id, self.method, self.raw, self.json_data = id, method, raw, json_data

    def fail(self, message: str) -> RequestError:
        return RequestError(self.id, f"{self.method}: {message}")

    def get(self, name: str, kind: type, default: Any) -> Any:
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"'{name}' must be {kind.__name__}")
        return value

    def str(self, name: str, required: bool = False) -> str:
        value = self.get(name, str, "")
        if required and not value:
            raise self.fail(f"'{name}' is required")
        return value

    def int(self, name: str) -> int:
        return self.get(name, int, 0)

    def bool(self, name: str) -> bool:
        return self.get(name, bool, False)

    def data(self, name: str = "data", required: bool = False) -> bytes | None:
        """Raw JSON bytes: a JSON value as sent, or protobuf bytes that must hold JSON."""
        if name not in self.raw:
            if required:
                raise self.fail(f"'{name}' is required")
            return None
        value = self.raw[name]
        if not self.json_data:
            try:
                orjson.loads(value)
            except orjson.JSONDecodeError:
                raise self.fail(f"'{name}' must hold JSON (Tidings stores JSON)") from None
            return bytes(value)
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError as exc:
            raise self.fail(f"'{name}': {exc}") from None

    def position(self, offset: str, epoch: str) -> Position:
        value = self.int(offset)
        if value < 0:
            raise self.fail(f"'{offset}' must be at least 0")
        return Position(value, self.str(epoch))


def _connect(f: _Fields) -> Connect:
    subs = f.get("subs", dict, {})
    recover = {}
    for channel, sub in subs.items():
        if not isinstance(sub, dict):
            raise f.fail(f"'subs.{channel}' must be an object")
        fields = _Fields(f.id, f.method, sub, f.json_data)
        if fields.bool("recover"):
            recover[channel] = fields.position("offset", "epoch")
    return Connect(f.str("token"), f.data(), recover, f.str("name"))


def _subscribe(f: _Fields) -> Subscribe:
    position = f.position("offset", "epoch") if f.bool("recover") else None
    unsupported = None
    if f.str("delta"):
        unsupported = "delta compression"
    elif f.int("type"):
        unsupported = "map and shared-poll subscriptions"
    elif f.raw.get("tf"):
        unsupported = "tag filters"
    return Subscribe(f.str("channel", required=True), f.str("token"), position, unsupported)


def _channel(f: _Fields) -> ChannelRequest:
    return ChannelRequest(f.str("channel", required=True))


def _publish(f: _Fields) -> Publish:
    unsupported = "map publications" if f.int("type") else None
    return Publish(f.str("channel", required=True), f.data(required=True), unsupported)


def _history(f: _Fields) -> History:
    since = f.get("since", dict, None)
    position = None
    if since is not None:
        position = _Fields(f.id, f.method, since, f.json_data).position("offset", "epoch")
    return History(f.str("channel", required=True), f.int("limit"), position, f.bool("reverse"))


def _rpc(f: _Fields) -> Rpc:
    return Rpc(f.str("method"), f.data())


def _refresh(f: _Fields) -> Token:
    return Token(f.str("token", required=True))


def _sub_refresh(f: _Fields) -> Token:
    return Token(f.str("token", required=True), f.str("channel", required=True))


_PARSERS = {
    "connect": _connect,
    "subscribe": _subscribe,
    "unsubscribe": _channel,
    "publish": _publish,
    "presence": _channel,
    "presence_stats": _channel,
    "history": _history,
    "ping": lambda f: Empty(),
    "send": lambda f: Empty(),
    "rpc": _rpc,
    "refresh": _refresh,
    "sub_refresh": _sub_refresh,
}


# ---- building replies and pushes -------------------------------------------------------


def publication(pub: Publication) -> dict:
    """A Tidings publication in Centrifugo's shape: its sender as `info.user`, its source as
    the tag `source`, no offset for an ephemeral channel."""
    out: dict = {"data": pub.data, "time": pub.time}
    if pub.offset:
        out["offset"] = pub.offset
    if pub.sender is not None:
        out["info"] = {"user": pub.sender}
    if pub.source is not None:
        out["tags"] = {"source": pub.source}
    return out


def client_info(client: ClientInfo) -> dict:
    out: dict = {"user": client.user, "client": client.client}
    if client.meta:
        out["conn_info"] = orjson.dumps(client.meta)
    return out


def reply(id: int, method: str, result: dict) -> dict:
    return {"id": id, method: result}


def error_reply(id: int, code: int, message: str, temporary: bool = False) -> dict:
    error: dict = {"code": int(code), "message": message}
    if temporary:
        error["temporary"] = True
    return {"id": id, "error": error}


def push(channel: str, kind: str, body: dict) -> dict:
    out: dict = {kind: body}
    if channel:
        out["channel"] = channel
    return {"push": out}


# ---- encoding --------------------------------------------------------------------------


def _raw_json(value: object) -> orjson.Fragment:
    """`data` fields hold raw JSON bytes: spliced into the frame as they are."""
    if isinstance(value, bytes):
        return orjson.Fragment(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


class JsonFormat:
    name = "json"
    binary = False

    @staticmethod
    def encode(replies: list[dict]) -> bytes:
        return b"\n".join(orjson.dumps(r, default=_raw_json) for r in replies)

    decode = staticmethod(decode_json)
    ping = b"{}"


class ProtobufFormat:
    name = "protobuf"
    binary = True

    @staticmethod
    def encode(replies: list[dict]) -> bytes:
        out = bytearray()
        for r in replies:
            message = pb.Reply(**r).SerializeToString()
            out += encode_varint(len(message))
            out += message
        return bytes(out)

    decode = staticmethod(decode_protobuf)
    ping = b"\x00"  # an empty Reply


def encode_varint(value: int) -> bytes:
    """A length prefix."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


Format = JsonFormat | ProtobufFormat
JSON = JsonFormat()
PROTOBUF = ProtobufFormat()
