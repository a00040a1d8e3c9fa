"""STOMP destinations and the Tidings channels they stand for, both ways.

The names are Spring's (`SimpMessagingTemplate`, `@MessageMapping`), so a client written
for a Spring broker keeps its destinations:

| destination | means |
|---|---|
| `/topic/<room>` | the channel `room:<room>` |
| `/topic/broadcast` | the channel `broadcast` |
| `/topic/<namespace>:<name>` | the channel `<namespace>:<name>` of another configured namespace |
| `/user/queue/<name>` | SUBSCRIBE: the subscriber's own direct messages (channel `user:<me>`) |
| `/user/<id>/queue/<name>` | SEND: a direct message to user `<id>` |
| `/app/<method>` | SEND: a native method (`history`, `presence`, ...), answered on `/user/queue/<method>` |
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from tidings.channels import BROADCAST, valid_user_id

TOPIC, USER, QUEUE, APP = "/topic/", "/user/", "/queue/", "/app/"
OWN_QUEUE = "/user/queue/"
MAX_NAME = 200
AUTOMATIC_NAMESPACES = ("user", BROADCAST)  # reached through /user/queue/ and /topic/broadcast


class DestinationError(ValueError):
    """A destination that names nothing Tidings has; the message says what would."""


@dataclass(slots=True, frozen=True)
class Topic:
    channel: str


@dataclass(slots=True, frozen=True)
class OwnQueue:
    name: str

    @property
    def destination(self) -> str:
        return OWN_QUEUE + self.name


@dataclass(slots=True, frozen=True)
class UserQueue:
    user: str
    name: str


@dataclass(slots=True, frozen=True)
class App:
    method: str


Destination = Topic | OwnQueue | UserQueue | App


def parse(destination: str, namespaces: Container[str]) -> Destination:
    """What `destination` stands for; `namespaces` are the configured channel namespaces."""
    if destination.startswith(TOPIC):
        return Topic(_topic_channel(destination[len(TOPIC):], namespaces))
    if destination.startswith(OWN_QUEUE):
        return OwnQueue(_name(destination[len(OWN_QUEUE):], destination))
    if destination.startswith(USER):
        rest = destination[len(USER):]
        cut = rest.find(QUEUE, 1)
        if cut < 0:
            raise DestinationError(
                f"{destination!r}: use /user/queue/<name> or /user/<id>/queue/<name>")
        user = rest[:cut]
        if not valid_user_id(user):
            raise DestinationError(f"{destination!r}: {user!r} is not a valid user id")
        return UserQueue(user, _name(rest[cut + len(QUEUE):], destination))
    if destination.startswith(APP):
        return App(_name(destination[len(APP):], destination))
    raise DestinationError(
        f"unknown destination {destination[:80]!r}: use /topic/<room>, /topic/broadcast, "
        "/user/queue/<name>, /user/<id>/queue/<name> or /app/<method>")


def _topic_channel(rest: str, namespaces: Container[str]) -> str:
    if rest == BROADCAST:
        return BROADCAST
    namespace, colon, _ = rest.partition(":")
    if colon and namespace in namespaces:
        if namespace in AUTOMATIC_NAMESPACES:
            raise DestinationError(
                f"/topic/{rest[:80]}: a {namespace} channel is /user/queue/<name> or "
                "/topic/broadcast")
        return rest
    if not rest:
        raise DestinationError("/topic/ needs a room name")
    return f"room:{rest}"


def _name(name: str, destination: str) -> str:
    if not name or len(name) > MAX_NAME or not name.isprintable() or " " in name:
        raise DestinationError(
            f"{destination[:80]!r}: the name must be 1 to {MAX_NAME} printable characters "
            "without spaces")
    return name


def topic_destination(channel: str, namespaces: Container[str]) -> str:
    """The `/topic/...` destination of a channel (the inverse of `parse`)."""
    if channel == BROADCAST:
        return TOPIC + BROADCAST
    namespace, _, name = channel.partition(":")
    if namespace == "room":
        inner, colon, _ = name.partition(":")
        if not (colon and inner in namespaces) and name != BROADCAST:
            return TOPIC + name
    return TOPIC + channel
