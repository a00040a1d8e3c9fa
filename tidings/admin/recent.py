"""The node's latest warnings and errors, kept in memory for the admin console.

A bounded ring (the newest `keep` lines) fed by a logging handler on the `tidings` logger.
It keeps the formatted message only, as the log formatters do: nothing a caller attached
to a record (headers, frames, tokens) is kept unless the message itself says it.
"""

from __future__ import annotations

import logging
from collections import deque


class RecentProblems(logging.Handler):
    def __init__(self, keep: int = 50):
        super().__init__(logging.WARNING)
        self.lines: deque[dict] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        self.lines.append({"time": int(record.created * 1000), "level": record.levelname.lower(),
                           "logger": record.name, "message": message[:500]})

    def newest_first(self) -> list[dict]:
        return list(reversed(self.lines))


def attach(logger_name: str = "tidings", keep: int = 50) -> RecentProblems:
    handler = RecentProblems(keep)
    logging.getLogger(logger_name).addHandler(handler)
    return handler


def detach(handler: RecentProblems, logger_name: str = "tidings") -> None:
    logging.getLogger(logger_name).removeHandler(handler)
