"""Who may do what: the checks a session runs on every command, whatever its protocol.

- `identify` (connect): a JWT (tidings.auth); with no token and a connect hook configured,
  the application's backend (tidings.proxy); then the per-user connection cap.
- `check_subscribe` (subscribe, and so recovery, which is a subscribe with a position): the
  namespace's `subscribe` rule. `token`: a subscription token for this channel and user
  (and connection, if it names one). `proxy`: a subscription token, or else the backend's
  yes.
- `check_publish`: the namespace's `publish` rule; `proxy` asks the backend.
- `check_read` (history, presence): another user's `user:` channel is closed; in `token`
  and `proxy` namespaces only a connection subscribed to the channel may read it, since
  subscribing is where it proved it may.

The automatic channels (`user:<me>`, `broadcast`) are authorized by the connection itself.
Every refusal is a TidingsError with the code the client acts on (docs/security.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from tidings.auth import AuthError, Authenticator, Grant, Identity
from tidings.channels import Channel, valid_user_id
from tidings.errors import CloseCode, ErrorCode, TidingsError
from tidings.limits import ConnectionCaps
from tidings.metrics import Metrics
from tidings.peer import Peer
from tidings.proxy import ProxyDenied, ProxyFailed, ProxyHooks

PRIVATE = ("token", "proxy")


class Asker(Protocol):
    """The session asking, as the checks see it."""

    client: str
    user: str
    peer: Peer
    subscriptions: set[str]


class AccessControl:
    def __init__(self, auth: Authenticator, caps: ConnectionCaps, proxy: ProxyHooks,
                 metrics: Metrics, connections_of: Callable[[str], int]):
        self.auth = auth
        self.caps = caps
        self.proxy = proxy
        self.metrics = metrics
        self._connections_of = connections_of

    async def identify(self, credentials: dict, asker: Asker) -> Identity:
        """Who is connecting; TidingsError 105 (closing with 4501), 111 or 112 (4504)."""
        try:
            if credentials.get("token") is None and self.proxy.settings.connect_url:
                identity = await self._identify_by_backend(asker)
            else:
                identity = self.auth.authenticate(credentials)
        except (AuthError, ProxyDenied) as exc:
            raise TidingsError(ErrorCode.UNAUTHORIZED, str(exc),
                               close=CloseCode.UNAUTHORIZED) from None
        except ProxyFailed as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, str(exc)) from None
        full = self.caps.user_full(self._connections_of(identity.user))
        if full is not None:
            self.metrics.count(self.metrics.refused, "max_connections_per_user")
            raise TidingsError(ErrorCode.LIMIT_EXCEEDED, full,
                               close=CloseCode.TOO_MANY_CONNECTIONS)
        return identity

    async def _identify_by_backend(self, asker: Asker) -> Identity:
        result = await self.proxy.connect(asker.client, asker.peer)
        user, expires, info = result.get("user"), result.get("expire_at"), result.get("info")
        if not valid_user_id(user):
            raise ProxyFailed("the connect hook named no valid user")
        if expires is not None:
            if not isinstance(expires, int) or isinstance(expires, bool):
                raise ProxyFailed("the connect hook gave an 'expire_at' that is no integer")
            if expires <= time.time():
                raise ProxyDenied("the session the backend gave has expired")
        return Identity(user, expires, info if isinstance(info, dict) else {})

    async def check_subscribe(self, asker: Asker, channel: Channel,
                              token: str | None) -> Grant | None:
        """Raise unless `asker` may subscribe; a subscription token's grant, if one was used."""
        rule = channel.options.subscribe
        self._check_owner(asker, channel)
        if rule == "server":
            raise TidingsError(ErrorCode.PERMISSION_DENIED,
                               f"{channel.namespace} channels are subscribed automatically")
        if rule == "token" or (rule == "proxy" and token is not None):
            try:
                return self.auth.verify_subscription(token, user=asker.user,
                                                     client=asker.client, channel=channel.name)
            except AuthError as exc:
                raise TidingsError(ErrorCode.BAD_SUBSCRIPTION_TOKEN, str(exc)) from None
        if rule == "proxy":
            await self._ask(self.proxy.subscribe(asker.client, asker.user, channel.name,
                                                 asker.peer))
        return None

    async def check_publish(self, asker: Asker, channel: Channel, data: bytes) -> None:
        rule = channel.options.publish
        if rule == "server":
            raise TidingsError(ErrorCode.PERMISSION_DENIED,
                               f"only the server API publishes to {channel.namespace} channels")
        if rule == "members" and channel.name not in asker.subscriptions:
            raise TidingsError(ErrorCode.PERMISSION_DENIED,
                               f"subscribe to {channel.name} to publish")
        if rule == "proxy":
            await self._ask(self.proxy.publish(asker.client, asker.user, channel.name, data,
                                               asker.peer))

    def check_read(self, asker: Asker, channel: Channel) -> None:
        """History and presence."""
        self._check_owner(asker, channel)
        if channel.options.subscribe in PRIVATE and channel.name not in asker.subscriptions:
            raise TidingsError(ErrorCode.PERMISSION_DENIED,
                               f"{channel.name} is private: subscribe to it first")

    @staticmethod
    def _check_owner(asker: Asker, channel: Channel) -> None:
        if channel.options.subscribe == "owner" and channel.owner != asker.user:
            raise TidingsError(ErrorCode.PERMISSION_DENIED,
                               f"{channel.name} belongs to another user")

    @staticmethod
    async def _ask(decision) -> None:
        try:
            await decision
        except ProxyDenied as exc:
            raise TidingsError(ErrorCode.PERMISSION_DENIED, str(exc)) from None
        except ProxyFailed as exc:
            raise TidingsError(ErrorCode.UNAVAILABLE, str(exc)) from None
