"""The native JSON protocol, sans-I/O: a text frame in, a typed command out; values in, bytes out.

A command is one JSON object `{"id": N, "<method>": {...}}`; the reply carries the same id.
Pushes carry no id. docs/protocol.md is the reference; this module is its parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tidings.channels import valid_user_id
from tidings.errors import ErrorCode, TidingsError
from tidings.model import Publication

MAX_ID = 2**53 - 1
MAX_HISTORY_LIMIT = 1000
MAX_IDEMPOTENCY_KEY = 100
MAX_SOURCE = 100
MAX_INBOX_LIMIT = 100


@dataclass(slots=True, frozen=True)
class Position:
    offset: int
    epoch: str


@dataclass(slots=True, frozen=True)
class Connect:
    token: str | None
    user: str | None
    recover: dict[str, Position]


@dataclass(slots=True, frozen=True)
class Subscribe:
    channel: str
    position: Position | None
    token: str | None = None  # a subscription token, for namespaces that need one


@dataclass(slots=True, frozen=True)
class Unsubscribe:
    channel: str


@dataclass(slots=True, frozen=True)
class Publish:
    channel: str
    data: bytes  # raw JSON
    idempotency_key: str | None = None


@dataclass(slots=True, frozen=True)
class Send:
    user: str
    data: bytes
    idempotency_key: str | None = None


@dataclass(slots=True, frozen=True)
class History:
    channel: str
    limit: int
    since: int | None
    reverse: bool


@dataclass(slots=True, frozen=True)
class Presence:
    channel: str


@dataclass(slots=True, frozen=True)
class Pong:
    pass


@dataclass(slots=True, frozen=True)
class InboxQuery:
    source: str | None  # None: every source; else one source's page
    before: int | None
    limit: int


@dataclass(slots=True, frozen=True)
class Read:
    offset: int | None
    source: str | None
    upto: int | None
    everything: bool
    shared: bool = False


@dataclass(slots=True, frozen=True)
class Unread:
    offset: int


@dataclass(slots=True, frozen=True)
class Seen:
    source: str | None


@dataclass(slots=True, frozen=True)
class Archive:
    offset: int


Params = (Connect | Subscribe | Unsubscribe | Publish | Send | History | Presence | Pong
          | InboxQuery | Read | Unread | Seen | Archive)


@dataclass(slots=True, frozen=True)
class Command:
    id: int | None  # None only for pong
    method: str
    params: Params


class ProtocolError(TidingsError):
    """A frame that is not a valid command; `id` is the command's id when it could be read."""

    def __init__(self, code: ErrorCode, message: str, id: int | None = None):
        super().__init__(code, message)
        self.id = id


def _bad(message: str, id: int | None) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, id)


class Fields:
    """Typed access to a params object; each wrong field becomes a BAD_REQUEST naming it."""

    def __init__(self, method: str, raw: Any, id: int | None):
        if not isinstance(raw, dict):
            raise _bad(f"{method}: params must be an object", id)
        self.method, self.raw, self.id = method, raw, id

    def _get(self, name: str, kind: type, kind_name: str, required: bool):
        value = self.raw.get(name)
        if value is None:
            if required:
                raise _bad(f"{self.method}: '{name}' is required", self.id)
            return None
        # bool is a subclass of int in Python, but `true` is no offset
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise _bad(f"{self.method}: '{name}' must be {kind_name}", self.id)
        return value

    def str(self, name: str, required: bool = True) -> str | None:
        return self._get(name, str, "a string", required)

    def int(self, name: str, required: bool = True, low: int = 0, high: int = MAX_ID):
        value = self._get(name, int, "an integer", required)
        if value is not None and not low <= value <= high:
            raise _bad(f"{self.method}: '{name}' must be between {low} and {high}", self.id)
        return value

    def bool(self, name: str, default: bool) -> bool:
        value = self._get(name, bool, "true or false", False)
        return default if value is None else value

    def user(self, name: str = "user") -> str:
        value = self.str(name)
        if not valid_user_id(value):
            raise _bad(f"{self.method}: '{name}' is not a valid user id", self.id)
        return value

    def idempotency_key(self) -> str | None:
        value = self.str("idempotency_key", required=False)
        if value is not None and not (0 < len(value) <= MAX_IDEMPOTENCY_KEY
                                      and value.isprintable()):
            raise _bad(f"{self.method}: 'idempotency_key' must be 1 to {MAX_IDEMPOTENCY_KEY} "
                       "printable characters", self.id)
        return value

    def source(self, required: bool = False) -> str | None:
        value = self.str("source", required=required)
        if value is not None and not 0 < len(value) <= MAX_SOURCE:
            raise _bad(f"{self.method}: 'source' must be 1 to {MAX_SOURCE} characters", self.id)
        return value

    def data(self) -> bytes:
        if "data" not in self.raw:
            raise _bad(f"{self.method}: 'data' is required", self.id)
        try:
            return orjson.dumps(self.raw["data"])
        except orjson.JSONEncodeError as exc:  # e.g. nested deeper than 254 levels
            raise _bad(f"{self.method}: 'data' cannot be stored: {exc}", self.id) from None

    def position(self) -> Position | None:
        offset = self.int("offset", required=False)
        epoch = self.str("epoch", required=False)
        if offset is None and epoch is None:
            return None
        if offset is None or epoch is None:
            raise _bad(f"{self.method}: 'offset' and 'epoch' go together", self.id)
        return Position(offset, epoch)


def _connect(f: Fields) -> Connect:
    recover_raw = f.raw.get("recover")
    if recover_raw is None:
        recover_raw = {}
    if not isinstance(recover_raw, dict):
        raise _bad("connect: 'recover' must be an object of channel -> {offset, epoch}", f.id)
    recover = {}
    for channel, raw in recover_raw.items():
        position = Fields(f"connect.recover[{channel}]", raw, f.id).position()
        if position is None:
            raise _bad(f"connect: recover[{channel!r}] needs 'offset' and 'epoch'", f.id)
        recover[channel] = position
    return Connect(f.str("token", False), f.str("user", False), recover)


def _history(f: Fields) -> History:
    return History(
        f.str("channel"),
        f.int("limit", required=False, low=1, high=MAX_HISTORY_LIMIT) or 100,
        f.int("since", required=False),
        f.bool("reverse", False),
    )


def _inbox(f: Fields) -> InboxQuery:
    source = f.source()
    before = f.int("before", required=False)
    if before is not None and source is None:
        raise _bad("inbox: 'before' pages within one 'source'", f.id)
    return InboxQuery(source, before,
                      f.int("limit", required=False, low=1, high=MAX_INBOX_LIMIT) or 10)


def _read(f: Fields) -> Read:
    return Read(f.int("offset", required=False), f.source(), f.int("upto", required=False),
                f.bool("all", False), f.bool("shared", False))


_PARSERS = {
    "connect": _connect,
    "subscribe": lambda f: Subscribe(f.str("channel"), f.position(), f.str("token", False)),
    "unsubscribe": lambda f: Unsubscribe(f.str("channel")),
    "publish": lambda f: Publish(f.str("channel"), f.data(), f.idempotency_key()),
    "send": lambda f: Send(f.user(), f.data(), f.idempotency_key()),
    "history": _history,
    "presence": lambda f: Presence(f.str("channel")),
    "pong": lambda f: Pong(),
    "inbox": _inbox,
    "read": _read,
    "unread": lambda f: Unread(f.int("offset")),
    "seen": lambda f: Seen(f.source()),
    "archive": lambda f: Archive(f.int("offset")),
}

METHODS = frozenset(_PARSERS)


def parse_command(frame: str | bytes) -> Command:
    """One text frame -> Command, or ProtocolError with the code and message to reply."""
    try:
        raw = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"frame is not valid JSON: {exc}", None) from None
    if not isinstance(raw, dict):
        raise _bad("frame must be a JSON object", None)
    id = raw.get("id")
    if id is not None and (not isinstance(id, int) or isinstance(id, bool) or not 0 < id <= MAX_ID):
        raise _bad(f"'id' must be an integer from 1 to {MAX_ID}", None)
    methods = [key for key in raw if key != "id"]
    if len(methods) != 1:
        raise _bad("a command holds 'id' and exactly one method", id)
    method = methods[0]
    parser = _PARSERS.get(method)
    if parser is None:
        raise ProtocolError(ErrorCode.UNKNOWN_METHOD, f"unknown method {method!r}", id)
    if id is None and method != "pong":
        raise _bad(f"{method}: 'id' is required", None)
    return Command(id, method, parser(Fields(method, raw[method], id)))


# ---- encoding ------------------------------------------------------------------------


def encode_reply(id: int, method: str, result: dict) -> bytes:
    return orjson.dumps({"id": id, method: result})


def encode_error(id: int | None, code: int, message: str) -> bytes:
    error = {"code": int(code), "message": message}
    return orjson.dumps({"id": id, "error": error} if id is not None else {"error": error})


def encode_push(kind: str, body: dict) -> bytes:
    return orjson.dumps({kind: body})


def encode_pub(pub: Publication) -> bytes:
    return orjson.dumps({"pub": pub.to_dict()})


PING = orjson.dumps({"ping": {}})
