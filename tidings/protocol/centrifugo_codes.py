"""Centrifugo's own error and disconnect codes, and how Tidings' codes map onto them.

Centrifugo's SDKs act on these numbers alone: an error code says whether to retry or refresh
a token, a close code whether to reconnect (3000-3499 and 4000-4499) or stop (3500-3999,
4500-4999). Tidings' codes stay in tidings.errors; this module only translates them at the
edge of the Centrifugo endpoint, so the table in docs/centrifugo.md is this file. Nothing
but that endpoint and its server API may use these numbers.
"""

from __future__ import annotations

from enum import IntEnum

from tidings.errors import CloseCode, ErrorCode


class CentrifugoError(IntEnum):
    INTERNAL = 100  # temporary: the SDK retries
    UNAUTHORIZED = 101
    UNKNOWN_CHANNEL = 102
    PERMISSION_DENIED = 103
    METHOD_NOT_FOUND = 104
    ALREADY_SUBSCRIBED = 105
    LIMIT_EXCEEDED = 106
    BAD_REQUEST = 107
    NOT_AVAILABLE = 108
    TOKEN_EXPIRED = 109  # the SDK asks its getToken callback for a fresh token
    EXPIRED = 110
    TOO_MANY_REQUESTS = 111  # temporary
    UNRECOVERABLE_POSITION = 112
    TOKEN_REVOKED = 113


class CentrifugoDisconnect(IntEnum):
    # the SDK reconnects
    SHUTDOWN = 3001
    SERVER_ERROR = 3004
    EXPIRED = 3005
    SLOW = 3008
    INSUFFICIENT_STATE = 3010
    FORCE_RECONNECT = 3011
    NO_PONG = 3012
    # the SDK stops
    INVALID_TOKEN = 3500
    BAD_REQUEST = 3501
    STALE = 3502
    FORCE_DISCONNECT = 3503
    CONNECTION_LIMIT = 3504
    NOT_AVAILABLE = 3508


TEMPORARY = frozenset({CentrifugoError.INTERNAL, CentrifugoError.TOO_MANY_REQUESTS})

ERRORS: dict[int, CentrifugoError] = {
    ErrorCode.INTERNAL: CentrifugoError.INTERNAL,
    ErrorCode.BAD_REQUEST: CentrifugoError.BAD_REQUEST,
    ErrorCode.UNKNOWN_METHOD: CentrifugoError.METHOD_NOT_FOUND,
    ErrorCode.NOT_CONNECTED: CentrifugoError.BAD_REQUEST,
    ErrorCode.ALREADY_CONNECTED: CentrifugoError.BAD_REQUEST,
    ErrorCode.UNAUTHORIZED: CentrifugoError.UNAUTHORIZED,
    ErrorCode.PERMISSION_DENIED: CentrifugoError.PERMISSION_DENIED,
    ErrorCode.BAD_CHANNEL: CentrifugoError.UNKNOWN_CHANNEL,
    ErrorCode.NOT_SUBSCRIBED: CentrifugoError.PERMISSION_DENIED,
    ErrorCode.ALREADY_SUBSCRIBED: CentrifugoError.ALREADY_SUBSCRIBED,
    ErrorCode.CANNOT_RECOVER: CentrifugoError.UNRECOVERABLE_POSITION,
    ErrorCode.UNAVAILABLE: CentrifugoError.INTERNAL,
    ErrorCode.LIMIT_EXCEEDED: CentrifugoError.LIMIT_EXCEEDED,
    ErrorCode.OUTCOME_UNKNOWN: CentrifugoError.INTERNAL,
    ErrorCode.RATE_LIMITED: CentrifugoError.TOO_MANY_REQUESTS,
    ErrorCode.BAD_SUBSCRIPTION_TOKEN: CentrifugoError.PERMISSION_DENIED,
}

DISCONNECTS: dict[int, int] = {
    CloseCode.NORMAL: CloseCode.NORMAL,
    CloseCode.MESSAGE_TOO_BIG: CloseCode.MESSAGE_TOO_BIG,  # the SDK stops: message size limit
    CloseCode.SERVER_ERROR: CentrifugoDisconnect.SERVER_ERROR,
    CloseCode.SLOW_CONSUMER: CentrifugoDisconnect.SLOW,
    CloseCode.NO_PONG: CentrifugoDisconnect.NO_PONG,
    CloseCode.SHUTDOWN: CentrifugoDisconnect.SHUTDOWN,
    CloseCode.DISCONNECTED: CentrifugoDisconnect.FORCE_RECONNECT,
    CloseCode.GAP: CentrifugoDisconnect.INSUFFICIENT_STATE,
    CloseCode.TOKEN_EXPIRED: CentrifugoDisconnect.EXPIRED,
    CloseCode.CONNECT_TIMEOUT: CentrifugoDisconnect.STALE,
    CloseCode.UNAUTHORIZED: CentrifugoDisconnect.INVALID_TOKEN,
    CloseCode.FORCE_DISCONNECTED: CentrifugoDisconnect.FORCE_DISCONNECT,
    CloseCode.TOO_MANY_ERRORS: CentrifugoDisconnect.BAD_REQUEST,
    CloseCode.TOO_MANY_CONNECTIONS: CentrifugoDisconnect.CONNECTION_LIMIT,
    CloseCode.TOKEN_REVOKED: CentrifugoDisconnect.INVALID_TOKEN,
    CloseCode.COMMAND_FLOOD: CentrifugoDisconnect.BAD_REQUEST,
    CloseCode.BAD_VOICE_FRAME: CentrifugoDisconnect.BAD_REQUEST,
}


def error_for(code: int, message: str) -> CentrifugoError:
    """The Centrifugo error a Tidings error code (and, for credentials, its message) means."""
    if code in (ErrorCode.UNAUTHORIZED, ErrorCode.BAD_SUBSCRIPTION_TOKEN):
        # tidings.auth says "... expired" / "... revoked"; the SDKs refresh on 109 and 113
        if message.endswith("expired"):
            return CentrifugoError.TOKEN_EXPIRED
        if message.endswith("revoked"):
            return CentrifugoError.TOKEN_REVOKED
    return ERRORS.get(code, CentrifugoError.INTERNAL)


def disconnect_for(code: int) -> int:
    """The close code a Centrifugo client is sent when Tidings closes with `code`."""
    if 3000 <= code < 4000:  # already one of Centrifugo's
        return code
    return DISCONNECTS.get(code, CentrifugoDisconnect.SERVER_ERROR)
