"""What a node tells load balancers and orchestrators: alive, ready, and what is degraded.

Three questions, three answers (docs/api.md):

- live: the process answers at all (its event loop runs). A failed liveness check means
  "restart me"; nothing else is looked at, so a store or broker outage never gets a
  healthy node killed.
- ready: send me clients and publishes. Not while draining, not while the store fails a
  read or has commits stuck past `resilience.store_stalled_after`: every publish would wait
  out its bound and then fail.
- degraded: ready, with a problem worth a page: the broker connection is being
  re-established (this node's clients still get everything, through the store, but
  cross-node delivery lags), or the latest store commit failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tidings.channels import BROADCAST
from tidings.node import Node
from tidings.store.base import StoreError

STORE_PROBE_TIMEOUT = 2.0


@dataclass(slots=True)
class Readiness:
    status: str  # "ok", "degraded", "unavailable" or "draining"
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.status in ("ok", "degraded")


async def readiness(node: Node) -> Readiness:
    if node.draining:
        return Readiness("draining", ["node shutting down"])
    blocking: list[str] = []
    stalled = node.store.stalled_for()
    if stalled > node.settings.resilience.store_stalled_after:
        blocking.append(f"store commits stalled for {stalled:.1f} s")
    try:
        await asyncio.wait_for(node.store.positions([BROADCAST]), STORE_PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        blocking.append(f"store did not answer a read within {STORE_PROBE_TIMEOUT:g} s")
    except StoreError as exc:
        blocking.append(f"store read failed: {exc}")
    if blocking:
        return Readiness("unavailable", blocking)
    problems = []
    if not node.broker.connected:
        problems.append("broker connection lost: reconnecting")
    if node.store.last_failure is not None:
        problems.append(f"latest store commit failed: {node.store.last_failure}")
    return Readiness("degraded" if problems else "ok", problems)
