"""Python clients for Tidings: the server API (`ApiClient`) and the realtime native protocol
(`RealtimeClient`). Importing them loads aiohttp's client, never the gateway itself."""

from tidings.client.api import ApiClient
from tidings.client.errors import (
    ApiError, ClientClosed, ClientError, CommandError, ConnectionLost, Unreachable,
)
from tidings.client.realtime import RealtimeClient, State, Subscription
from tidings.client.reconnect import Backoff, should_reconnect
from tidings.client.types import (
    Disconnected, Health, HistoryPage, Info, Join, Leave, Member, NodeStatus, Presence,
    Published, Publication, Reset,
)

__all__ = [
    "ApiClient", "ApiError", "Backoff", "ClientClosed", "ClientError", "CommandError",
    "ConnectionLost", "Disconnected", "Health", "HistoryPage", "Info", "Join", "Leave",
    "Member", "NodeStatus", "Presence", "Published", "Publication", "RealtimeClient", "Reset",
    "State", "Subscription", "Unreachable", "should_reconnect",
]
