"""The client side of each server under test, as frames: what to send, how to read pushes.

Socket.IO (Node and python-socketio alike) speaks Engine.IO 4 over a raw WebSocket:
`0{...}` open, `40{auth}` connect, `42[event, data]` events, `42N[...]`/`43N[...]` acks,
`2`/`3` ping/pong. The bare server just relays text.
"""

from __future__ import annotations

import orjson


class Tidings:
    path = "/ws"

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
    def read(payload: bytes) -> tuple[str, object]:
        """("pub", data) | ("reply", id) | ("ping", answer) | ("other", None)."""
        if payload.startswith(b'{"pub"'):
            return "pub", orjson.loads(payload)["pub"]["data"]
        if payload.startswith(b'{"id"'):
            return "reply", orjson.loads(payload)["id"]
        if payload.startswith(b'{"ping"'):
            return "ping", b'{"pong":{}}'
        return "other", None


class SocketIO:
    path = "/socket.io/?EIO=4&transport=websocket"

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
    def read(payload: bytes) -> tuple[str, object]:
        if payload.startswith(b'42["pub"'):
            return "pub", orjson.loads(payload[2:])[1]
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
    path = "/"

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
    def read(payload: bytes) -> tuple[str, object]:
        if payload == b"ok":
            return "reply", None
        return "pub", orjson.loads(payload)


PROTOCOLS = {"tidings": Tidings, "socketio": SocketIO, "bare": Bare}
