"""Log lines an operator can search: text, JSON lines or key=value, each naming the node and,
for anything about a session, its connection id and user.

A session binds itself to the task that serves it (`bind_session`), so every line logged
while that task runs (by the session, the hub, the store) carries the connection id and user
without passing them around; a line logged elsewhere about a session names it explicitly
(`session_fields`). The formatters write a fixed set of fields and the message, never a
record's other attributes: nothing a caller attaches (headers, frames, tokens) reaches a
line unless the message itself says it.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Literal, Protocol

import orjson

LogFormat = Literal["text", "json", "kv"]


class SessionIdentity(Protocol):
    """What a log line needs of a session: its connection id and (once connected) its user."""

    client: str
    user: str


current_session: ContextVar[SessionIdentity | None] = ContextVar("tidings_session", default=None)


def bind_session(session: SessionIdentity) -> None:
    """Name `session` on every line logged from now on in the current task."""
    current_session.set(session)


def session_fields(session: SessionIdentity) -> dict[str, dict[str, str]]:
    """`extra=` for a line about `session` logged outside its task (a drain, a kick)."""
    return {"extra": {"client": session.client, "user": session.user}}


class ContextFilter(logging.Filter):
    """Puts the node name and the current session (unless the line names one) on each record."""

    def __init__(self, node: str):
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        if not hasattr(record, "client"):
            session = current_session.get()
            record.client = session.client if session is not None else ""
            record.user = session.user if session is not None else ""
        return True


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, str]:
    """The whitelisted fields of one line, in their order; empty ones left out."""
    fields = {
        "time": _timestamp(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "node": getattr(record, "node", ""),
        "client": getattr(record, "client", ""),
        "user": getattr(record, "user", ""),
        "msg": record.getMessage(),
    }
    if record.exc_info:
        fields["exc"] = formatter.formatException(record.exc_info)
    return {name: value for name, value in fields.items() if value}


def _timestamp(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(_fields(record, self)).decode()


class KeyValueFormatter(logging.Formatter):
    """`key=value` pairs (logfmt): values with spaces, quotes or `=` are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{name}={_logfmt(value)}" for name, value in _fields(record, self).items())


def _logfmt(value: str) -> str:
    if value and not any(c in value for c in ' "=\\\n\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


class TextFormatter(logging.Formatter):
    """For a person at a terminal: time, level, logger, then the session if any, then the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(where)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        where = f"node={getattr(record, 'node', '')}"
        if getattr(record, "client", ""):
            where += f" client={record.client}"
        if getattr(record, "user", ""):
            where += f" user={record.user}"
        record.where = where
        return super().format(record)


FORMATTERS: dict[str, type[logging.Formatter]] = {
    "text": TextFormatter,
    "json": JsonFormatter,
    "kv": KeyValueFormatter,
}


def configure_logging(level: str, log_format: LogFormat, node: str) -> None:
    """Send every log line to stderr in `log_format`, replacing any handler set before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[log_format]())
    handler.addFilter(ContextFilter(node))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
