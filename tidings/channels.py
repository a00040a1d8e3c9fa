"""Channel names: what is valid, which namespace a channel is in, whose personal channel it is.

A channel is `<namespace>:<name>` (`room:lobby`, `user:alice`) or the single channel
`broadcast`. Names are printable ASCII without white space or the characters brokers use as
wildcards (`*`, `>`, `#`), at most 255 characters, so every broker can carry them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tidings.config import Namespace, Settings

BROADCAST = "broadcast"
MAX_CHANNEL_LENGTH = 255
# printable ASCII without space and without '#' (0x23), '*' (0x2A) and '>' (0x3E): one
# pattern, as every direct message's recipient is checked with it
_ALLOWED = r"[!-\"$-)+-=?-~]"
_VALID = re.compile(_ALLOWED + "+")
_USER_ID = re.compile(_ALLOWED + "{1,200}")


class ChannelError(ValueError):
    """A channel name that is malformed or names no configured namespace."""


@dataclass(slots=True, frozen=True)
class Channel:
    name: str
    namespace: str
    options: Namespace

    @property
    def owner(self) -> str | None:
        """The user a personal channel belongs to (`user:<id>`), else None."""
        if self.namespace == "user":
            return self.name[len("user:"):]
        return None


def user_channel(user: str) -> str:
    return f"user:{user}"


def valid_user_id(user: object) -> bool:
    return isinstance(user, str) and _USER_ID.fullmatch(user) is not None


def parse_channel(name: object, settings: Settings) -> Channel:
    """The channel `name` refers to, or ChannelError saying what is wrong with it."""
    if not isinstance(name, str):
        raise ChannelError("channel must be a string")
    if not name or len(name) > MAX_CHANNEL_LENGTH:
        raise ChannelError(f"channel must be 1 to {MAX_CHANNEL_LENGTH} characters")
    if _VALID.fullmatch(name) is None:
        raise ChannelError(
            "channel may hold printable ASCII only, without spaces, '*', '>' or '#'"
        )
    if name == BROADCAST:
        namespace = BROADCAST
    else:
        namespace, sep, rest = name.partition(":")
        if not sep or not rest:
            raise ChannelError(f"channel {name!r} must look like <namespace>:<name>")
        if namespace == BROADCAST:
            raise ChannelError("the broadcast channel is just 'broadcast'")
    options = settings.namespaces.get(namespace)
    if options is None:
        raise ChannelError(f"unknown namespace {namespace!r}")
    return Channel(name, namespace, options)
