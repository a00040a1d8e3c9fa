"""The notification a backend puts on a queue, sans-I/O: message bytes in, a Notification
or a Poison (with the dead-letter reason) out.

```json
{"id": "inv-1001", "source": "billing", "to": {"user": "alice"}, "data": {"title": "..."}}
```

`to` names exactly one kind of recipient: `{"user": id}`, `{"users": [ids]}`,
`{"channel": "room:ops"}` or `{"everyone": true}`. This module only checks the shape; which
channels exist is decided by the intake, which knows the namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from tidings.channels import valid_user_id

MAX_ID = 200
MAX_SOURCE = 100
RECIPIENT_KINDS = ("user", "users", "channel", "everyone")

# Dead-letter reasons: the first word of every reason a poison message carries.
TOO_LARGE = "too_large"
NOT_JSON = "not_json"
BAD_NOTIFICATION = "bad_notification"
UNKNOWN_RECIPIENT = "unknown_recipient"
UNROUTABLE_CHANNEL = "unroutable_channel"
REASONS = (TOO_LARGE, NOT_JSON, BAD_NOTIFICATION, UNKNOWN_RECIPIENT, UNROUTABLE_CHANNEL)


class Poison(Exception):
    """A message that can never be delivered; it goes to the dead letter with `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True, frozen=True)
class Notification:
    id: str
    source: str
    kind: str  # one of RECIPIENT_KINDS
    recipients: tuple[str, ...]  # user ids, one channel name, or () for everyone
    data: bytes  # raw JSON, forwarded as sent


def parse_notification(body: bytes | None, *, max_bytes: int,
                       max_recipients: int) -> Notification:
    """One queued message -> Notification, or Poison saying why it can never be one."""
    if body is None:
        raise Poison(BAD_NOTIFICATION, "the message carries no notification")
    if len(body) > max_bytes:
        raise Poison(TOO_LARGE, f"{len(body)} bytes, more than {max_bytes}")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Poison(NOT_JSON, str(exc)) from None
    if not isinstance(raw, dict):
        raise Poison(BAD_NOTIFICATION, "a notification is a JSON object")
    id = _text(raw, "id", MAX_ID)
    source = _text(raw, "source", MAX_SOURCE)
    if "data" not in raw:
        raise Poison(BAD_NOTIFICATION, "'data' is required")
    kind, recipients = _recipients(raw.get("to"), max_recipients)
    try:
        data = orjson.dumps(raw["data"])
    except orjson.JSONEncodeError as exc:  # e.g. nested deeper than 254 levels
        raise Poison(BAD_NOTIFICATION, f"'data' cannot be stored: {exc}") from None
    return Notification(id, source, kind, recipients, data)


def _text(raw: dict, name: str, longest: int) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= longest or not value.isprintable():
        raise Poison(BAD_NOTIFICATION,
                     f"'{name}' must be a string of 1 to {longest} printable characters")
    return value


def _recipients(to: object, max_recipients: int) -> tuple[str, tuple[str, ...]]:
    if not isinstance(to, dict) or len(to) != 1:
        raise Poison(BAD_NOTIFICATION, "'to' must be an object with exactly one of "
                                       + ", ".join(RECIPIENT_KINDS))
    ((kind, value),) = to.items()
    if kind not in RECIPIENT_KINDS:
        raise Poison(UNKNOWN_RECIPIENT, f"unknown recipient kind {kind!r}: use one of "
                                        + ", ".join(RECIPIENT_KINDS))
    if kind == "user":
        if not valid_user_id(value):
            raise Poison(BAD_NOTIFICATION, "'to.user' is not a valid user id")
        return kind, (value,)
    if kind == "users":
        if not isinstance(value, list) or not value:
            raise Poison(BAD_NOTIFICATION, "'to.users' must be a non-empty list of user ids")
        if len(value) > max_recipients:
            raise Poison(BAD_NOTIFICATION,
                         f"{len(value)} users, more than {max_recipients} per notification")
        if not all(valid_user_id(user) for user in value):
            raise Poison(BAD_NOTIFICATION, "'to.users' holds an invalid user id")
        return kind, tuple(dict.fromkeys(value))  # each user once, in the given order
    if kind == "channel":
        if not isinstance(value, str):
            raise Poison(UNROUTABLE_CHANNEL, "'to.channel' must be a channel name")
        return kind, (value,)
    if value is not True:
        raise Poison(BAD_NOTIFICATION, "'to.everyone' must be true")
    return kind, ()
