"""How big each scenario runs in each profile. Every number bounds a loop.

`repeat` measured rounds per point (after one unmeasured warm-up round, so Node's JIT and
Python's caches are warm for every server alike); `deadline` caps each round in seconds.
Fan-out and direct rounds are sized from the warm-up round to last about `round_seconds`,
never more than the profile's count (publications per round, messages per user).
"""

from __future__ import annotations

MAIN = ["tidings", "socketio-node", "python-socketio", "bare-aiohttp"]
STOMP = ["tidings", "tidings-stomp", "rabbitmq-web-stomp"]
CENTRIFUGO = ["tidings", "tidings-centrifugo", "tidings-centrifugo-protobuf"]
STACK = ["bare-aiohttp", "bare-aiohttp-naive", "bare-picows", "bare-picows-naive",
         "bare-websockets", "bare-websockets-naive"]

# deliveries/s at N = 1,000 and 10,000: 10-100 publications/s to 1,000, 1-10 to 10,000
CURVE = {"points": [1000, 10_000], "rates": [10_000, 25_000, 50_000, 100_000],
         "seconds": 2.0}

PROFILES: dict[str, dict] = {
    "smoke": {  # seconds: proves the suite works (CI); Tidings and the ceiling only
        "repeat": 1, "deadline": 15, "round_seconds": 0.2,
        "targets": ["tidings", "bare-aiohttp"],
        "fanout": {"points": [(50, 50)],  # (subscribers, publications per round)
                   "latency_at": 50, "fixed_rate": 50, "latency_seconds": 0.5},
        "curve": {"points": [50], "rates": [500, 1000], "seconds": 0.3},
        "direct": {"pairs": 20, "per_user": 5},
        "idle": [200],
        "durable": {"publishers": 20, "per_publisher": {"group": 10, "single": 5},
                    "stores": ["sqlite"]},
        "recovery": [100],
        "stomp": {"targets": ["tidings", "tidings-stomp"], "points": [(50, 50)]},
        "centrifugo": {"targets": CENTRIFUGO, "points": [(50, 50)]},
        "ingest": {"systems": ["rabbitmq", "kafka", "redis", "nats"], "notifications": 300},
        "metrics": {"fanout": (50, 50), "direct": (20, 5), "every": 0.25, "rounds": 1},
    },
    "quick": {  # a few minutes: the default
        "repeat": 3, "deadline": 60, "round_seconds": 1.0,
        "targets": MAIN,
        "fanout": {"points": [(100, 5000), (1000, 1000), (10_000, 100)],
                   "latency_at": 1000, "fixed_rate": 10, "latency_seconds": 2.0},
        "direct": {"pairs": 1000, "per_user": 20},
        "idle": [10_000],
        # publishes per publisher and round: a group-commit round is ~10x faster, so it
        # gets more publishes to last about as long (rates are compared, not counts)
        "durable": {"publishers": 100, "per_publisher": {"group": 100, "single": 10},
                    "stores": ["sqlite", "postgresql", "mysql"]},
        "recovery": [100, 10_000],
        "stomp": {"targets": STOMP, "points": [(1000, 1000), (10_000, 100)]},
        "centrifugo": {"targets": CENTRIFUGO, "points": [(1000, 1000), (10_000, 100)]},
        # the full count: 10,000 notifications to 100 users, per queue system
        "ingest": {"systems": ["rabbitmq", "kafka", "redis", "nats"], "notifications": 10_000},
        # scraped 60x as often as Prometheus' default 15 s, so any cost shows
        "metrics": {"fanout": (1000, 1000), "direct": (1000, 20), "every": 0.25, "rounds": 5},
    },
    "full": {
        "repeat": 3, "deadline": 120, "round_seconds": 3.0,
        "targets": MAIN,
        "fanout": {"points": [(100, 20_000), (1000, 3000), (10_000, 300)],
                   "latency_at": 1000, "fixed_rate": 10, "latency_seconds": 5.0},
        "curve": CURVE,
        "direct": {"pairs": 1000, "per_user": 50},
        "idle": [10_000, 50_000],
        "durable": {"publishers": 100, "per_publisher": {"group": 300, "single": 30},
                    "stores": ["sqlite", "postgresql", "mysql"]},
        "recovery": [100, 10_000],
        "stomp": {"targets": STOMP, "points": [(1000, 3000), (10_000, 300)]},
        "centrifugo": {"targets": CENTRIFUGO, "points": [(1000, 3000), (10_000, 300)]},
        "ingest": {"systems": ["rabbitmq", "kafka", "redis", "nats"], "notifications": 10_000},
        "stack": {"targets": STACK, "fanout": (1000, 3000), "idle": 10_000},
        "cluster": {"fanout": (3000, 1000), "direct": (1000, 50),
                    "peers": ["socketio-node", "python-socketio"]},
        "shards": [1, 2, 3],  # Redis servers under the same three nodes
        "metrics": {"fanout": (1000, 3000), "direct": (1000, 50), "every": 0.25, "rounds": 5},
    },
    "latency": {  # `python -m bench --profile latency`: the latency curve alone
        "repeat": 3, "deadline": 60, "round_seconds": 1.0,
        "targets": MAIN, "curve": CURVE,
    },
    "cluster": {  # `python -m bench --profile cluster`: three Tidings nodes on Redis against
        # three nodes of each Socket.IO peer on its Redis adapter, members spread over them
        "repeat": 3, "deadline": 120, "round_seconds": 2.0,
        "targets": ["tidings"],
        "cluster": {"fanout": (3000, 1000), "direct": (1000, 50), "brokers": ["redis"],
                    "peers": ["socketio-node", "python-socketio"]},
    },
    "connections": {  # `--profile connections`: idle connections only, 10,000 and
        # 100,000 on one server (capped by the open-files limit where it cannot be raised)
        "repeat": 1, "deadline": 60, "round_seconds": 1.0,
        "targets": ["tidings", "socketio-node", "bare-aiohttp"],
        "idle": [10_000, 100_000],
        "idle_window": 75.0,  # held idle through three 25 s ping intervals, CPU measured
        "connect_deadline": 240,  # seconds for a point's clients to connect, else it fails
    },
    "brokers": {  # `--only cluster,shards`: every broker and 1-3 Redis shards, Tidings only,
        # at a size a shared 2-core machine carries (the full profile's cluster is 5x bigger)
        "repeat": 3, "deadline": 120, "round_seconds": 2.0,
        "targets": ["tidings"],
        "cluster": {"fanout": (600, 1000), "direct": (200, 50), "peers": []},
        "shards": [1, 2, 3],
    },
}
