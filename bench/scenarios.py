"""The scenarios: each one sets up clients on a server (or cluster) and measures rounds.

Every loop is bounded: a round ends when every expected message arrived or at its
deadline, whichever comes first, and each client sends a fixed count. A round that missed
messages is reported as such (`deliveries` < `expected`), never padded.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import aiohttp

from bench.limits import fd_budget, source_addresses
from bench.loadgen import Generator, Round, Setup
from bench.procstat import MachineMeter

SUB_AGENTS = 2  # subscriber processes per server: the generator spreads over both cores
IDLE_AGENTS = 4  # connecting processes: a handshake costs the client side too
PUBLISHERS = 10


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(results: list[dict]) -> dict:
    values = [v for r in results for v in r["latencies"]]
    return {f"p{label}_ms": percentile(values, q) * 1000
            for label, q in (("50", 0.5), ("99", 0.99), ("999", 0.999))}


class Rounds:
    """Agents connected once; `run` measures one round on them.

    `cpu` reads the server's CPU seconds (summed over a cluster's nodes); `extra` reads any
    other counter whose growth during the round is reported (a cluster's broker messages).
    """

    def __init__(self, setups: list[Setup], cpu: Callable[[], float],
                 extra: Callable[[], float] | None = None, connect_deadline: float = 300):
        self.setups, self.cpu, self.extra = setups, cpu, extra
        self.connect_deadline = connect_deadline
        self.number = 0

    def __enter__(self) -> "Rounds":
        self.gen = Generator(self.setups).__enter__()
        try:
            self.connected = self.gen.ready(self.connect_deadline)
        except BaseException:
            self.gen.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.gen.__exit__()

    def run(self, make: Callable[[int, Setup], Round]) -> tuple[list[dict], dict]:
        """One round; `make(number, setup)` gives each agent its part."""
        self.number += 1
        rounds = [make(self.number, setup) for setup in self.setups]
        self.gen.arm(rounds)
        machine = MachineMeter()
        cpu0, extra0 = self.cpu(), self.extra() if self.extra else 0.0
        machine.start()
        start = time.time()
        self.gen.go()
        results = self.gen.results(max(r.deadline for r in rounds))
        wall = time.time() - start
        server_cpu = self.cpu() - cpu0
        last = max((r["last"] for r in results if r["last"]), default=start)
        shares = [r["cpu_seconds"] / max(r["wall_seconds"], 1e-6) for r in results]
        common = {
            "seconds": max(last - start, 1e-6),
            "server_cpu_seconds": server_cpu,
            "server_cores": server_cpu / max(wall, 1e-6),
            "generator_max_share": max(shares),  # one agent near 1.0: it was the limit
            "generator_cores": sum(r["cpu_seconds"] for r in results) / max(wall, 1e-6),
            "machine_busy": machine.stop(),  # near 1.0: both cores were full
            "extra": (self.extra() - extra0) if self.extra else 0.0,
            "dropped_connections": sum(r["dropped"] for r in results),
        }
        return results, common


def room_setups(proto: str, sub_urls: list[str], pub_url: str, subscribers: int,
                room: str = "room:bench") -> list[Setup]:
    """Subscribers spread over one agent per URL, then one agent with the publishers."""
    users = [f"s{i}" for i in range(subscribers)]
    subs = [Setup(proto, url, part, room=room)
            for url, part in zip(sub_urls, split(users, len(sub_urls)))]
    return subs + [Setup(proto, pub_url, [f"p{i}" for i in range(PUBLISHERS)], publisher=True)]


def room_round(rounds: Rounds, publications: int, rate: float, deadline: float) -> dict:
    """Publishers send `publications` in all (at `rate`/s, 0 = flat out); every subscriber
    should get each one."""
    per_publisher = max(1, publications // PUBLISHERS)
    total = per_publisher * PUBLISHERS

    def make(number: int, setup: Setup) -> Round:
        if setup.publisher:
            return Round(number, count=per_publisher, rate=rate, deadline=deadline)
        return Round(number, expect=total, deadline=deadline)

    results, common = rounds.run(make)
    subs = [r for setup, r in zip(rounds.setups, results) if not setup.publisher]
    pub = results[-1]
    received = sum(r["received"] for r in subs)
    return {
        "subscribers": sum(len(s.users) for s in rounds.setups if not s.publisher),
        "rate": rate, "publications": pub["sent"], "failed_publishes": pub["failed_sends"],
        "deliveries": received, "expected": sum(r["expected"] for r in subs),
        "deliveries_per_s": received / common["seconds"],
        "publications_per_s": pub["sent"] / max(pub["send_seconds"], 1e-6),
        "server_cpu_per_100k": common["server_cpu_seconds"] / max(received, 1) * 100_000,
        **latency(subs), **common,
    }


def pair_setups(proto: str, urls: list[str], pairs: int) -> tuple[list[Setup], dict]:
    """2 x `pairs` users over one agent per URL; partners always sit on different agents."""
    users = [f"d{i}" for i in range(pairs * 2)]
    partner = {u: users[i ^ 1] for i, u in enumerate(users)}
    return [Setup(proto, url, part) for url, part in zip(urls, split(users, len(urls)))], partner


def pair_round(rounds: Rounds, partner: dict, per_user: int, deadline: float) -> dict:
    """Every user sends `per_user` direct messages to its partner, as fast as acks allow."""

    def make(number: int, setup: Setup) -> Round:
        return Round(number, expect=per_user, count=per_user, deadline=deadline,
                     partners=[partner[u] for u in setup.users])

    results, common = rounds.run(make)
    received = sum(r["received"] for r in results)
    return {
        "pairs": len(partner) // 2, "messages": received,
        "expected": sum(r["expected"] for r in results),
        "failed_sends": sum(r["failed_sends"] for r in results),
        "messages_per_s": received / common["seconds"],
        "server_cpu_per_100k": common["server_cpu_seconds"] / max(received, 1) * 100_000,
        **latency(results), **common,
    }


def idle(server, connections: int, window: float = 0.0,
         connect_deadline: float = 300) -> dict:
    """Connect `connections` clients (authenticated where the protocol has it) and hold
    them: server RSS growth per connection, and connections set up per second. With a
    `window` (seconds), also what keeping them costs while nothing else happens: the
    server's CPU for pings, pongs and timers (its "heartbeat CPU"), the clients answering
    every ping as real clients do."""
    time.sleep(0.5)
    rss0 = server.rss_bytes()
    users = [f"i{i}" for i in range(connections)]
    agents = max(IDLE_AGENTS, math.ceil(connections / fd_budget()))
    sources = source_addresses(connections)
    setups = [Setup(server.proto, server.url, part, sources=sources)
              for part in split(users, agents)]
    with Rounds(setups, server.cpu_seconds, connect_deadline=connect_deadline) as rounds:
        ready = rounds.connected
        time.sleep(1.0)  # let the server settle (allocations after the last handshake)
        rss1 = server.rss_bytes()
        held = sum(r["clients"] for r in ready)
        figures = {"connections": held, "bytes_per_connection": (rss1 - rss0) / max(held, 1),
                   "connections_per_s": held / max(max(r["connect_seconds"] for r in ready),
                                                   1e-6),
                   "generator_max_share": max(r["connect_cpu_seconds"]
                                              / max(r["connect_seconds"], 1e-6) for r in ready),
                   "agents": len(setups), "source_addresses": len(sources)}
        if window:
            figures |= heartbeat(rounds, window, held)
            figures["bytes_per_connection_after_window"] = (
                (server.rss_bytes() - rss0) / max(held, 1))
    return figures


def heartbeat(rounds: Rounds, window: float, held: int) -> dict:
    """`window` seconds of idle clients: the server's CPU share, per connection too."""
    results, common = rounds.run(lambda number, setup: Round(number, deadline=window,
                                                             idle=True))
    return {"window_seconds": window, "heartbeat_cores": common["server_cores"],
            "heartbeat_us_per_connection": common["server_cores"] / max(held, 1) * 1e6,
            "pings_per_connection": sum(r["pings"] for r in results) / max(held, 1),
            "machine_busy": common["machine_busy"],
            "dropped_connections": common["dropped_connections"]}


def durable_round(rounds: Rounds, per_publisher: int, deadline: float) -> dict:
    """Every publisher publishes `per_publisher` times to a stored room, one at a time,
    each waiting for its acknowledgement (given once the publication is durable)."""

    def make(number: int, setup: Setup) -> Round:
        return Round(number, count=per_publisher, room="room:durable", deadline=deadline)

    results, common = rounds.run(make)
    sent = sum(r["sent"] for r in results)
    return {"publishers": sum(len(s.users) for s in rounds.setups), "acknowledged": sent,
            "expected": per_publisher * sum(len(s.users) for s in rounds.setups),
            "publishes_per_s": sent / max(max(r["send_seconds"] for r in results), 1e-6),
            **common}


def recovery(server, missed: int, number: int) -> dict:
    """A client that missed `missed` publications reconnects and resubscribes with its
    offset: seconds from opening the new socket to the reply carrying all of them."""
    return asyncio.run(_recovery(server, missed, f"room:recover{missed}x{number}"))


async def _recovery(server, missed: int, room: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.url}/ws", max_msg_size=0) as ws:
            await ws.send_json({"id": 1, "connect": {"user": "r"}})
            await ws.receive()
            await ws.send_json({"id": 2, "subscribe": {"channel": room}})
            position = (await ws.receive_json(timeout=30))["subscribe"]
        sem = asyncio.Semaphore(50)

        async def publish(n: int) -> None:
            async with sem, http.post(f"{server.url}/api/publish",
                                      json={"channel": room, "data": {"n": n}}) as resp:
                await resp.read()

        await asyncio.wait_for(asyncio.gather(*(publish(n) for n in range(missed))), 120)
        started = time.perf_counter()
        async with http.ws_connect(f"{server.url}/ws", max_msg_size=0) as ws:
            await ws.send_json({"id": 1, "connect": {"user": "r"}})
            await ws.receive(timeout=30)
            await ws.send_json({"id": 2, "subscribe": {
                "channel": room, "offset": position["offset"], "epoch": position["epoch"]}})
            reply = await ws.receive_json(timeout=60)
        seconds = time.perf_counter() - started
    body = reply.get("subscribe", {})
    publications = body.get("publications", [])
    first = position["offset"] + 1
    in_order = [p.get("offset") for p in publications] == list(range(first, first + missed))
    return {"missed": missed, "recovered": len(publications), "in_order": in_order,
            "recovered_flag": body.get("recovered"), "seconds": seconds,
            "error": reply.get("error")}
