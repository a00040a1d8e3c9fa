"""No acknowledged publication is lost or delivered twice, whatever fault hits the cluster.

Each case: real `tidings serve` nodes on one broker and store, subscribers that recover by
offset (trying the nodes in turn), a publisher streaming tokens through the server API, and
one fault done for real mid-stream (see faults.py). The checker (checker.py) then proves
lost = 0, duplicated = 0 and order kept for every subscriber and channel, and the report
gives reconnect-to-recovered p50/p99 and the worst event-loop lag of the surviving nodes.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos import faults
from tests.chaos.checker import Ledger, percentile
from tests.chaos.conftest import FULL
from tests.chaos.harness import BROKERS, STORES, Deployment, Publisher, Subscriber, converge
from tests.private import PrivateServer

FAULTS = [faults.sigkill, faults.sigstop, faults.broker_lost, faults.pg_backends_terminated,
          faults.sqlite_locked, faults.slow_commits]
FAST = [  # (fault, broker, store): one of each fault, the brokers and stores spread over them
    (faults.sigkill, "redis", "postgresql"),
    (faults.sigstop, "nats", "postgresql"),
    (faults.broker_lost, "redis", "postgresql"),
    (faults.pg_backends_terminated, "memory", "postgresql"),
    (faults.sqlite_locked, "memory", "sqlite"),
    (faults.slow_commits, "amqp", "postgresql"),
    (faults.sigkill, "kafka", "mysql"),
]
CHANNELS = ["room:chaos-a", "room:chaos-b"]


def _applies(fault, broker: str, store: str) -> bool:
    need = faults.needs(fault)
    if need.get("store", store) != store:
        return False
    if need.get("network") and broker == "memory":
        return False
    return not (need.get("private") and BROKERS[broker].private is None and broker != "amqp")


CASES = ([(f, b, s) for f in FAULTS for b in BROKERS for s in STORES if _applies(f, b, s)]
         if FULL else FAST)


@pytest.mark.parametrize("fault,broker,store", CASES,
                         ids=[f"{f.__name__}-{b}-{s}" for f, b, s in CASES])
async def test_no_acknowledged_publication_is_lost_or_duplicated(fault, broker, store,
                                                                 tmp_path, report):
    need = faults.needs(fault)
    clustered = store != "sqlite" and broker != "memory"
    size = need["size"] if clustered else 1
    server = None
    if need.get("private") and BROKERS[broker].private:
        server = PrivateServer(BROKERS[broker].private)
        await asyncio.get_running_loop().run_in_executor(None, server.start)
    dep = Deployment(broker, store, tmp_path, size=size,
                     broker_port=server.port if server else None)
    ledger = Ledger()
    subscribers = [Subscriber(f"s{i}-{dep.tag}", CHANNELS, dep.nodes, ledger, first=i)
                   for i in range(6)]
    try:
        await dep.start()
        for sub in subscribers:
            sub.start()
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subscribers)), 20)
        targets = dep.nodes if need.get("publish_everywhere") or size == 1 else dep.nodes[:-1]
        publishers = [Publisher(f"p{i}", [node], ledger) for i, node in enumerate(targets)]
        fault_over = asyncio.Event()
        after = (200 if FULL else 60) // len(publishers)
        stream = [asyncio.create_task(p.run(CHANNELS, fault_over, after=after, limit=3000))
                  for p in publishers]
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await asyncio.wait_for(fault(dep, server), 60)
        fault_seconds = time.monotonic() - started
        fault_over.set()
        await asyncio.gather(*stream)
        await converge(ledger)
        survivors = [n for n in dep.nodes if n.proc and n.proc.poll() is None]
        lag = max([(await n.metrics())["tidings_event_loop_lag_max_seconds"]
                   for n in survivors] or [0.0])
    finally:
        for sub in subscribers:
            await sub.stop()
        await dep.close()
        if server is not None:
            server.remove()
    verdict = ledger.verify()
    report({"case": f"{fault.__name__} {broker}/{store}", **{
        k: getattr(verdict, k) for k in ("published", "acked", "unknown", "refused", "lost",
                                         "duplicated", "out_of_order", "recovered")},
        "recover_p50": percentile(ledger.recoveries, 0.5),
        "recover_p99": percentile(ledger.recoveries, 0.99),
        "loop_lag_max": lag, "fault_seconds": fault_seconds})
    assert verdict.ok, verdict.problems[:10]
    assert verdict.acked >= 60, "too little got through to prove anything"
    assert not any(s.cannot_recover for s in subscribers)  # history covered every outage
