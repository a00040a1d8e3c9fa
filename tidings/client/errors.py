"""What can go wrong talking to a node, as exceptions a caller can tell apart."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error the Tidings clients raise."""


class ApiError(ClientError):
    """The server API answered with an error: HTTP `status`, protocol `code` and a message."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(f"{status} (code {code}): {message}")
        self.status = status
        self.code = code
        self.message = message


class Unreachable(ClientError):
    """The node did not answer at all (refused, timed out, not a Tidings node)."""


class CommandError(ClientError):
    """A native-protocol command got an error reply (codes in docs/protocol.md)."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(ClientError):
    """The connection dropped while a command was in flight: its outcome is unknown."""


class ClientClosed(ClientError):
    """The client stopped for good: closed by the application or by a close code that says
    not to reconnect (4500-4999 and the like); `code` and `reason` say which."""

    def __init__(self, code: int, reason: str):
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason
