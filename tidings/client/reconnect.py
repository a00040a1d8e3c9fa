"""When and how soon a realtime client reconnects, from the close code alone.

The rule of docs/protocol.md: 4000-4499, 1006 (lost without a close frame) and 1011 mean
"reconnect, then recover"; 4500-4999 and the other codes mean "not without changing
something". Delays grow exponentially and are drawn with full jitter (uniform between 0 and
the cap of the attempt), so a thousand clients dropped by one node do not return together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LOST = 1006  # no close frame: the connection dropped or the node could not be reached
SERVER_ERROR = 1011


def should_reconnect(code: int) -> bool:
    return 4000 <= code < 4500 or code in (LOST, SERVER_ERROR)


@dataclass(slots=True, frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 32))
        return (rng or random).uniform(0, ceiling)
