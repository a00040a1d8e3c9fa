"""How much one node, one address, one user and one connection may take.

`ConnectionCaps` counts connections from the handshake on: a WebSocket or SockJS endpoint
asks `admit` before it upgrades (so a flood from one address never gets as far as a
session) and the session gives its place back when it ends. Loopback peers are not capped
per address: they are local processes or a reverse proxy on the same host, behind which
every client would share one address. The per-user cap is asked at `connect`, once the user
is known. `CommandBucket` is a token bucket per connection that every protocol handler
asks once per inbound command.

Nothing here raises on its own account past the caller: refusals are values (`Refusal`)
that each protocol turns into its own answer (an HTTP status before the upgrade, an error
and a close code after it).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from tidings.config import Security


@dataclass(slots=True, frozen=True)
class Refusal(Exception):
    """A connection turned away before its upgrade: `status` is the HTTP answer."""

    reason: str  # the metric label: the setting that tripped
    status: int
    message: str


class _Place:
    __slots__ = ("_caps", "_address")

    def __init__(self, caps: "ConnectionCaps", address: str | None):
        self._caps, self._address = caps, address

    def release(self) -> None:
        if self._caps is not None:
            self._caps._leave(self._address)
            self._caps = None


class ConnectionCaps:
    def __init__(self, security: Security):
        self.max_total = security.max_connections
        self.max_per_address = security.max_connections_per_address
        self.max_per_user = security.max_connections_per_user
        self.total = 0
        self.by_address: dict[str, int] = {}

    def admit(self, address: str) -> _Place:
        """Take a place for a new connection from `address`, or raise Refusal."""
        if self.max_total and self.total >= self.max_total:
            raise Refusal("max_connections", 503,
                          f"node full: {self.max_total} connections; try another node")
        counted = None if _is_loopback(address) else address
        if counted is not None and self.max_per_address:
            if self.by_address.get(counted, 0) >= self.max_per_address:
                raise Refusal("max_connections_per_address", 429,
                              f"at most {self.max_per_address} connections per address")
        self.total += 1
        if counted is not None:
            self.by_address[counted] = self.by_address.get(counted, 0) + 1
        return _Place(self, counted)

    def user_full(self, connections: int) -> str | None:
        """Why a user who already holds `connections` on this node may not add one, if so."""
        if self.max_per_user and connections >= self.max_per_user:
            return f"at most {self.max_per_user} connections per user on a node"
        return None

    def _leave(self, address: str | None) -> None:
        self.total -= 1
        if address is not None:
            left = self.by_address[address] - 1
            if left:
                self.by_address[address] = left
            else:
                del self.by_address[address]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # unknown peers are capped together under ""


class CommandBucket:
    """A token bucket: `burst` commands at once, `rate` a second after that.

    A command refused for want of a token still costs one: a client that keeps sending while
    refused sinks into debt, and once it owes a whole burst it is `flooding`. A client that
    waits as told (`retry_after`) never gets there.
    """

    __slots__ = ("rate", "burst", "tokens", "_at", "_clock")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        self.tokens -= 1
        return self.tokens > -1e-9  # a client that waited exactly retry_after() gets in

    @property
    def flooding(self) -> bool:
        return self.tokens <= -self.burst

    def retry_after(self) -> float:
        """Seconds until the next command would be taken."""
        return max(0.0, 1 - self.tokens) / self.rate

    def repaid_after(self) -> float:
        """Seconds until the token a refused command cost is paid back (for pacing)."""
        return max(0.0, -self.tokens) / self.rate
