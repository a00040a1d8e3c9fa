"""One repetition of each scenario against one server; every loop is bounded in count and time."""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from bench.loadgen import Generator, Job
from bench.servers import PROTOCOL, Server

SUB_WORKERS = 2


def _split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latency(results: list[dict]) -> dict:
    values = [v for r in results for v in r["latencies"]]
    return {f"p{label}_ms": (_percentile(values, q) or 0) * 1000
            for label, q in (("50", 0.5), ("99", 0.99), ("999", 0.999))}


def _generator_saturation(results: list[dict]) -> float:
    """Highest CPU share any worker used during the run: near 1.0 means it was the limit."""
    return max(r["cpu_seconds"] / max(r["wall_seconds"], 1e-6) for r in results)


def _room(proto: str, sub_urls: list[str], pub_url: str, subscribers: int,
          publications: int, rate: float, meter) -> tuple[dict, float]:
    """One room: subscribers spread over `sub_urls` (a generator process each), ten
    publishers on `pub_url`. Returns the figures and how much `meter()` grew meanwhile."""
    users = [f"s{i}" for i in range(subscribers)]
    subs = Generator([Job(proto, url, "sub", part, expect=publications, deadline=60)
                      for url, part in zip(sub_urls, _split(users, len(sub_urls)))])
    pubs = None
    try:
        subs.ready()
        pubs = Generator([Job(proto, pub_url, "pub", [f"p{i}" for i in range(10)],
                              count=publications, rate=rate)])
        pubs.ready()
        before, start = meter(), time.time()
        subs.go()
        pubs.go()
        sub_results, pub_results = subs.results(), pubs.results()
        grew = meter() - before
    finally:
        subs.close()
        if pubs:
            pubs.close()
    received = sum(r["received"] for r in sub_results)
    last = max((r["last"] for r in sub_results if r["last"]), default=start)
    return {
        "subscribers": subscribers, "publications": pub_results[0]["sent"],
        "deliveries": received, "expected": subscribers * publications,
        "deliveries_per_s": received / max(last - start, 1e-6),
        "generator_cpu_share": _generator_saturation(sub_results + pub_results),
        **_latency(sub_results),
    }, grew


def _pairs(proto: str, urls: list[str], pairs: int, per_user: int, meter) -> tuple[dict, float]:
    """`pairs` pairs of users writing to each other, `per_user` messages each; a pair's two
    users land on different `urls` when there are several."""
    users = [f"d{i}" for i in range(pairs * 2)]
    partner = {u: users[i ^ 1] for i, u in enumerate(users)}
    gen = Generator([Job(proto, url, "dm", part, expect=per_user, count=per_user * len(part),
                         partners=[partner[u] for u in part], deadline=60)
                     for url, part in zip(urls, _split(users, len(urls)))])
    try:
        gen.ready()
        before, start = meter(), time.time()
        gen.go()
        results = gen.results()
        grew = meter() - before
    finally:
        gen.close()
    received = sum(r["received"] for r in results)
    last = max((r["last"] for r in results if r["last"]), default=start)
    return {
        "pairs": pairs, "messages": received, "expected": pairs * 2 * per_user,
        "messages_per_s": received / max(last - start, 1e-6),
        "generator_cpu_share": _generator_saturation(results), **_latency(results),
    }, grew


def fanout(server: Server, subscribers: int, publications: int, rate: float) -> dict:
    """One room with `subscribers` on one server; `publications` at `rate`/s (0: flat out)."""
    figures, cpu = _room(PROTOCOL[server.target], [server.url] * SUB_WORKERS, server.url,
                         subscribers, publications, rate, server.cpu_seconds)
    return {**figures,
            "server_cpu_per_100k": cpu / max(figures["deliveries"], 1) * 100_000}


def direct(server: Server, pairs: int, per_user: int) -> dict:
    figures, cpu = _pairs(PROTOCOL[server.target], [server.url] * SUB_WORKERS, pairs,
                          per_user, server.cpu_seconds)
    return {**figures, "server_cpu_per_100k": cpu / max(figures["messages"], 1) * 100_000}


def idle(server: Server, connections: int) -> dict:
    """Memory per idle, connected client and how fast connections are set up."""
    proto = PROTOCOL[server.target]
    time.sleep(0.5)
    rss0 = server.rss_bytes()
    users = [f"i{i}" for i in range(connections)]
    gen = Generator([Job(proto, server.url, "idle", part) for part in _split(users, SUB_WORKERS)])
    try:
        connect_seconds = max(gen.ready(timeout=300))
        time.sleep(1.0)
        rss1 = server.rss_bytes()
        gen.go()
        gen.release()
        gen.results()
    finally:
        gen.close()
    return {"connections": connections, "bytes_per_connection": (rss1 - rss0) / connections,
            "connections_per_s": connections / max(connect_seconds, 1e-6)}


def durable(server: Server, publishers: int, per_publisher: int) -> dict:
    """Acknowledged publishes/s to a stored channel from `publishers` concurrent clients."""
    names = [f"w{i}" for i in range(publishers)]
    gen = Generator([Job("tidings", server.url, "pub", part, room="user:sink",
                         count=len(part) * per_publisher)
                     for part in _split(names, SUB_WORKERS)])
    try:
        gen.ready()
        gen.go()
        results = gen.results()
    finally:
        gen.close()
    sent = sum(r["sent"] for r in results)
    seconds = max(r["send_seconds"] for r in results)
    return {"publishers": publishers, "acknowledged": sent,
            "publishes_per_s": sent / max(seconds, 1e-6),
            "generator_cpu_share": _generator_saturation(results)}


def recovery(server: Server, missed: int) -> dict:
    """A client that missed `missed` publications reconnects: seconds until it has them all."""
    return asyncio.run(_recovery(server, missed))


async def _recovery(server: Server, missed: int) -> dict:
    room = f"room:recover{missed}"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.url}/ws", max_msg_size=0) as ws:
            await ws.send_json({"id": 1, "connect": {"user": "r"}})
            await ws.receive()
            await ws.send_json({"id": 2, "subscribe": {"channel": room}})
            position = (await ws.receive_json())["subscribe"]
        sem = asyncio.Semaphore(50)

        async def publish(n: int) -> None:
            async with sem, http.post(f"{server.url}/api/publish",
                                      json={"channel": room, "data": {"n": n}}) as resp:
                await resp.read()

        await asyncio.gather(*(publish(n) for n in range(missed)))
        started = time.perf_counter()
        async with http.ws_connect(f"{server.url}/ws", max_msg_size=0) as ws:
            await ws.send_json({"id": 1, "connect": {"user": "r"}})
            await ws.receive()
            await ws.send_json({"id": 2, "subscribe": {"channel": room, **position}})
            reply = (await ws.receive_json())["subscribe"]
        seconds = time.perf_counter() - started
    got = len(reply.get("publications", []))
    return {"missed": missed, "recovered": got, "seconds": seconds}


def summarize(runs: list[dict], key: str) -> dict:
    values = [run[key] for run in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def cluster_fanout(cluster, subscribers: int, publications: int) -> dict:
    """One room whose members are spread over every node; publishers on the first node."""
    figures, broker = _room("tidings", [n.url for n in cluster.nodes], cluster.nodes[0].url,
                            subscribers, publications, 0, cluster.broker_received)
    return {**figures,
            "broker_messages_per_publication": broker / max(figures["publications"], 1)}


def cluster_direct(cluster, pairs: int, per_user: int) -> dict:
    """Pairs whose two users sit on different nodes; broker messages each message cost."""
    figures, broker = _pairs("tidings", [n.url for n in cluster.nodes], pairs, per_user,
                             cluster.broker_received)
    return {**figures, "broker_messages_per_message": broker / max(figures["messages"], 1)}
