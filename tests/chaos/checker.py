"""The fault suite's referee: what was published, what was acknowledged, who got what.

Every publication carries a unique token. The publisher records its outcome: acknowledged
(with its offset), refused (a documented "not stored" answer: nothing may ever deliver it),
or unknown (113, a timeout, a connection cut mid-request: it may be delivered, at most once).
Every subscriber records each publication it got, with its offset and whether it came live
or in a recovery. `verify` then proves, per subscriber and channel:

- lost = 0: every acknowledged publication was received;
- duplicated = 0: no offset (and no token) was received twice;
- order kept: offsets strictly increase;
- no phantom: nothing refused was ever received, and offsets match what was acknowledged.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

ACKED, REFUSED, UNKNOWN = "acked", "refused", "unknown"


@dataclass
class Receipt:
    offset: int
    token: str
    how: str  # "live" or "recovered"


@dataclass
class Verdict:
    published: int
    acked: int
    unknown: int
    refused: int
    lost: int
    duplicated: int
    out_of_order: int
    phantoms: int
    recovered: int  # publications that reached a subscriber through recovery
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.phantoms)


@dataclass
class Ledger:
    outcomes: dict[str, tuple[str, str, int | None]] = field(default_factory=dict)
    """token -> (channel, outcome, offset if acknowledged)"""
    receipts: dict[tuple[str, str], list[Receipt]] = field(default_factory=dict)
    """(subscriber, channel) -> what it got, in arrival order"""
    recoveries: list[float] = field(default_factory=list)
    """seconds from noticing a lost connection to every subscription recovered"""

    def published(self, token: str, channel: str, outcome: str, offset: int | None = None):
        self.outcomes[token] = (channel, outcome, offset)

    def subscribed(self, subscriber: str, channel: str) -> None:
        self.receipts.setdefault((subscriber, channel), [])

    def received(self, subscriber: str, channel: str, offset: int, token: str, how: str):
        self.receipts.setdefault((subscriber, channel), []).append(Receipt(offset, token, how))

    def missing(self) -> int:
        """Acknowledged publications some subscriber of their channel has not got yet."""
        return sum(len(self._wanted(channel) - {r.token for r in got})
                   for (_, channel), got in self.receipts.items())

    def _wanted(self, channel: str) -> set[str]:
        return {token for token, (ch, outcome, _) in self.outcomes.items()
                if ch == channel and outcome == ACKED}

    def verify(self) -> Verdict:
        problems: list[str] = []
        lost = duplicated = disorder = phantoms = recovered = 0
        for (subscriber, channel), got in self.receipts.items():
            tokens = [r.token for r in got]
            offsets = [r.offset for r in got]
            missed = self._wanted(channel) - set(tokens)
            if missed:
                lost += len(missed)
                problems.append(f"{subscriber} {channel}: lost {sorted(missed)[:5]}")
            extra = len(tokens) - len(set(tokens)) + len(offsets) - len(set(offsets))
            if extra:
                duplicated += extra
                problems.append(f"{subscriber} {channel}: {extra} duplicates")
            bad = sum(1 for a, b in zip(offsets, offsets[1:]) if b <= a)
            if bad:
                disorder += bad
                problems.append(f"{subscriber} {channel}: {bad} out of order")
            for r in got:
                outcome = self.outcomes.get(r.token)
                if outcome is None:
                    continue  # published by someone else (the suite publishes only tokens)
                if outcome[1] == REFUSED or (outcome[1] == ACKED and outcome[2] != r.offset):
                    phantoms += 1
                    problems.append(f"{subscriber} {channel}: {r.token} at {r.offset} "
                                    f"was {outcome[1]} at {outcome[2]}")
            recovered += sum(1 for r in got if r.how == "recovered")
        counts = [outcome for _, outcome, _ in self.outcomes.values()]
        return Verdict(len(counts), counts.count(ACKED), counts.count(UNKNOWN),
                       counts.count(REFUSED), lost, duplicated, disorder, phantoms, recovered,
                       problems)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]
