"""The client side of each server under test, as frames: what to send, how to read pushes.

Socket.IO (Node and python-socketio alike) speaks Engine.IO 4 over a raw WebSocket:
`0{...}` open, `40{auth}` connect, `42[event, data]` events, `42N[...]`/`43N[...]` acks,
`2`/`3` ping/pong. The bare relay just forwards text and answers its sender "ok".
"""

from __future__ import annotations

import base64
import time

import orjson


class Tidings:
    path = pub_path = "/ws"
    acknowledges = True  # connect, subscribe and publish each get a reply

    @staticmethod
    def connect(user: str, n: int) -> bytes | None:
        return orjson.dumps({"id": n, "connect": {"user": user}})

    @staticmethod
    def join(room: str, n: int) -> bytes:
        return orjson.dumps({"id": n, "subscribe": {"channel": room}})

    @staticmethod
    def publish(room: str, data: dict, n: int) -> bytes:
        return orjson.dumps({"id": n, "publish": {"channel": room, "data": data}})

    @staticmethod
    def send(user: str, data: dict, n: int) -> bytes:
        return orjson.dumps({"id": n, "send": {"user": user, "data": data}})

    @staticmethod
    def data(payload: bytes) -> dict:
        """A publication's data, parsed only for the frames whose latency is sampled."""
        return orjson.loads(payload)["pub"]["data"]

    @staticmethod
    def read(payload: bytes) -> tuple[str, object]:
        """("pub", None) | ("reply", id) | ("ping", answer) | ("other", None); cheap for
        pushes, which are most frames: a prefix test, no JSON parsing."""
        if payload.startswith(b'{"pub"'):
            return "pub", None
        if payload.startswith(b'{"id"'):
            return "reply", orjson.loads(payload)["id"]
        if payload.startswith(b'{"ping"'):
            return "ping", b'{"pong":{}}'
        return "other", None


class SocketIO:
    path = pub_path = "/socket.io/?EIO=4&transport=websocket"
    acknowledges = True  # "40" answers the connect; acks (43N) answer joins and emits

    @staticmethod
    def connect(user: str, n: int) -> bytes | None:
        return None  # sent when the server's open packet arrives

    @staticmethod
    def open_reply(user: str) -> bytes:
        return b"40" + orjson.dumps({"user": user})

    @staticmethod
    def join(room: str, n: int) -> bytes:
        return f"42{n}".encode() + orjson.dumps(["join", room])

    @staticmethod
    def publish(room: str, data: dict, n: int) -> bytes:
        return f"42{n}".encode() + orjson.dumps(["publish", {"room": room, "data": data}])

    @staticmethod
    def send(user: str, data: dict, n: int) -> bytes:
        return f"42{n}".encode() + orjson.dumps(["send", {"to": user, "data": data}])

    @staticmethod
    def data(payload: bytes) -> dict:
        return orjson.loads(payload[2:])[1]

    @staticmethod
    def read(payload: bytes) -> tuple[str, object]:
        if payload.startswith(b'42["pub"'):
            return "pub", None
        if payload.startswith(b"43"):
            return "reply", int(payload[2:payload.index(b"[")])
        if payload.startswith(b"40"):
            return "reply", 0
        if payload == b"2":
            return "ping", b"3"
        if payload.startswith(b"0{"):
            return "open", None
        return "other", None


class Bare:
    path = "/"  # a client here receives every relayed frame
    pub_path = "/pub"  # publishers: relayed to others, get "ok" back, receive nothing else
    acknowledges = False

    @staticmethod
    def connect(user: str, n: int) -> bytes | None:
        return None

    @staticmethod
    def join(room: str, n: int) -> bytes | None:
        return None

    @staticmethod
    def publish(room: str, data: dict, n: int) -> bytes:
        return orjson.dumps(data)

    send = None

    @staticmethod
    def data(payload: bytes) -> dict:
        return orjson.loads(payload)

    @staticmethod
    def read(payload: bytes) -> tuple[str, object]:
        if payload == b"ok":
            return "reply", None
        return "pub", None


class Stomp:
    """STOMP 1.2 over a WebSocket, as Tidings serves it at /stomp: receipts are the replies."""

    path = pub_path = "/stomp"
    acknowledges = True  # CONNECTED answers CONNECT, RECEIPT every SUBSCRIBE and SEND
    credentials: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def frame(command: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
        head = "".join(f"{name}:{value}\n" for name, value in headers)
        if body:
            head += f"content-length:{len(body)}\n"
        return f"{command}\n{head}\n".encode() + body + b"\0"

    @staticmethod
    def destination(room: str) -> str:
        return "/topic/" + room.removeprefix("room:")

    @classmethod
    def connect(cls, user: str, n: int) -> bytes | None:
        login = cls.credentials or (("login", user),)
        return cls.frame("CONNECT", [("accept-version", "1.2"), ("heart-beat", "0,0"), *login])

    @classmethod
    def join(cls, room: str, n: int) -> bytes:
        return cls.frame("SUBSCRIBE", [("id", "sub-0"), ("destination", cls.destination(room)),
                                       ("receipt", str(n))])

    @classmethod
    def publish(cls, room: str, data: dict, n: int) -> bytes:
        return cls.frame("SEND", [("destination", cls.destination(room)),
                                  ("content-type", "application/json"), ("receipt", str(n))],
                         orjson.dumps(data))

    send = None

    @staticmethod
    def data(payload: bytes) -> dict:
        return orjson.loads(payload[payload.index(b"\n\n") + 2:payload.rindex(b"\0")])

    @staticmethod
    def read(payload: bytes) -> tuple[str, object]:
        if payload.startswith(b"MESSAGE"):
            return "pub", None
        if payload.startswith(b"RECEIPT") or payload.startswith(b"CONNECTED"):
            return "reply", None
        return "other", None  # heart-beats; an ERROR shows up as a missed delivery


class WebStomp(Stomp):
    """RabbitMQ's Web-STOMP plugin: the same frames at /ws, as the guest user."""

    path = pub_path = "/ws"
    credentials = (("login", "guest"), ("passcode", "guest"))


class Centrifugo(Tidings):
    """Centrifugo's client protocol in JSON, as Tidings serves it at /connection/websocket:
    `subscribe` and `publish` are written as for the native protocol."""

    path = pub_path = "/connection/websocket"
    acknowledges = True
    binary = False

    @staticmethod
    def token(user: str) -> str:
        """A JWT for `user`: the benchmark's node runs without auth, so its `sub` is read
        and its signature never checked (and this venv needs no JWT library)."""
        def part(value: dict) -> str:
            return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()
        claims = {"sub": user, "exp": int(time.time()) + 86_400}
        return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"

    @classmethod
    def connect(cls, user: str, n: int) -> bytes | None:
        return orjson.dumps({"id": n, "connect": {"token": cls.token(user)}})

    send = None

    @staticmethod
    def data(payload: bytes) -> dict:
        return orjson.loads(payload)["push"]["pub"]["data"]

    @staticmethod
    def read(payload: bytes) -> tuple[str, object]:
        if payload.startswith(b'{"push":{"pub"'):
            return "pub", None
        if payload.startswith(b'{"id"'):
            return "reply", orjson.loads(payload)["id"]
        if payload == b"{}":
            return "ping", b"{}"
        return "other", None


class CentrifugoProtobuf(Centrifugo):
    """The same commands as length-delimited Protobuf in binary frames (`?format=protobuf`).

    The few messages the benchmark needs are written and read by hand (field numbers from
    tidings/protocol/centrifugo.proto), so the load generator's venv needs no protobuf."""

    path = pub_path = "/connection/websocket?format=protobuf"
    binary = True

    @staticmethod
    def command(n: int, field: int, body: bytes) -> bytes:
        message = b"\x08" + _varint(n) + _bytes_field(field, body)
        return _varint(len(message)) + message

    @classmethod
    def connect(cls, user: str, n: int) -> bytes | None:
        return cls.command(n, 4, _bytes_field(1, cls.token(user).encode()))

    @classmethod
    def join(cls, room: str, n: int) -> bytes:
        return cls.command(n, 5, _bytes_field(1, room.encode()))

    @classmethod
    def publish(cls, room: str, data: dict, n: int) -> bytes:
        return cls.command(n, 7, _bytes_field(1, room.encode())
                           + _bytes_field(2, orjson.dumps(data)))

    @staticmethod
    def data(payload: bytes) -> dict:
        """Publication.data of a pub push, walked to by its tags (fields come in number
        order: Reply.push, Push.channel, Push.pub, Publication.data)."""
        _, pos = _read_varint(payload, 0)  # the frame's length prefix
        _, pos = _read_varint(payload, pos + 1)  # Reply.push's length
        if payload[pos] == 0x12:  # Push.channel
            size, pos = _read_varint(payload, pos + 1)
            pos += size
        _, pos = _read_varint(payload, pos + 1)  # Push.pub's length
        size, pos = _read_varint(payload, pos + 1)  # Publication.data's length
        return orjson.loads(payload[pos:pos + size])

    @classmethod
    def read(cls, payload: bytes) -> tuple[str, object]:
        """As cheap for pushes as the JSON prefix test: one tag byte, no parsing. The
        benchmark's rooms have no join/leave (TIDINGS_ENV), so every push is a `pub`."""
        if payload == b"\x00":
            return "ping", b"\x00"
        start = 1 if payload[0] < 0x80 else 2  # past the length prefix (frames < 16 KiB)
        tag = payload[start]
        if tag == 0x22:  # Reply.push
            return "pub", None
        if tag == 0x08:  # Reply.id: a reply
            return "reply", _read_varint(payload, start + 1)[0]
        return "other", None


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(number: int, body: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


PROTOCOLS = {"tidings": Tidings, "socketio": SocketIO, "bare": Bare, "stomp": Stomp,
             "webstomp": WebStomp, "centrifugo": Centrifugo,
             "centrifugo-protobuf": CentrifugoProtobuf}
