"""The other end of a connection, as its handshake showed it: address, headers, admission.

A protocol endpoint builds one when it accepts a socket and hands it to the session, which
needs the address for nothing but the caps, and the headers for nothing but the proxy hooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class Admission(Protocol):
    """A place taken under the connection caps, given back once (twice is harmless)."""

    def release(self) -> None: ...


@dataclass(slots=True, eq=False)
class Peer:
    address: str = ""
    """IP address of the TCP peer ("" when unknown)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """The handshake headers the proxy hooks pass on to the application's backend."""
    transport: str = "websocket"
    protocol: str = ""
    """The protocol spoken on the transport (`native`, ...), told to the proxy hooks."""
    admission: Admission | None = None
    """Released when the session ends."""

    def leave(self) -> None:
        if self.admission is not None:
            self.admission.release()
            self.admission = None
