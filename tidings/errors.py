"""Error codes (in replies) and WebSocket close codes, shared by every protocol and the API.

docs/protocol.md lists each one with what the client should do about it. Close codes in the
4000s follow one rule: 4000-4499 mean "reconnect (and recover)", 4500-4999 mean "do not
reconnect without changing something".
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    INTERNAL = 100
    BAD_REQUEST = 101
    UNKNOWN_METHOD = 102
    NOT_CONNECTED = 103
    ALREADY_CONNECTED = 104
    UNAUTHORIZED = 105
    PERMISSION_DENIED = 106
    BAD_CHANNEL = 107
    NOT_SUBSCRIBED = 108
    ALREADY_SUBSCRIBED = 109
    CANNOT_RECOVER = 110
    UNAVAILABLE = 111
    LIMIT_EXCEEDED = 112
    OUTCOME_UNKNOWN = 113  # the store did not answer in time: retry with the same idempotency key
    # binary voice frames (docs/protocol.md, Voice frames); the frame is dropped
    NOT_VOICE_CHANNEL = 128
    NOT_A_MEMBER = 129
    VOICE_FRAME_TOO_LARGE = 130
    VOICE_RATE_LIMITED = 131
    RATE_LIMITED = 115
    BAD_SUBSCRIPTION_TOKEN = 116
    # the message center (120-124)
    NOT_IN_INBOX = 120
    # the admin console (140-144)
    ADMIN_OFF = 140  # no admin_token configured: /admin is not served


class CloseCode(IntEnum):
    NORMAL = 1000
    MESSAGE_TOO_BIG = 1009
    SERVER_ERROR = 1011
    # reconnect, then recover from the last offsets seen
    SLOW_CONSUMER = 4004
    NO_PONG = 4005
    SHUTDOWN = 4006
    DISCONNECTED = 4007
    GAP = 4008
    TOKEN_EXPIRED = 4009
    # do not reconnect as is
    CONNECT_TIMEOUT = 4500
    UNAUTHORIZED = 4501
    FORCE_DISCONNECTED = 4502
    TOO_MANY_ERRORS = 4503
    BAD_VOICE_FRAME = 4510
    TOO_MANY_CONNECTIONS = 4504
    TOKEN_REVOKED = 4505
    COMMAND_FLOOD = 4506


class TidingsError(Exception):
    """An error a client is told about: a code from ErrorCode and a plain message.

    With `close`, the connection is then closed with that code (after the error is sent).
    """

    def __init__(self, code: ErrorCode, message: str, *, close: CloseCode | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.close = close
