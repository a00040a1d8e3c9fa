"""How big each scenario runs in each profile. Every number bounds a loop."""

PROFILES = {
    "smoke": {  # seconds: proves the suite works (CI)
        "repeat": 1,
        "fanout": [(50, 50)],  # (subscribers, publications)
        "latency": [(50, 40, 200)],  # (subscribers, publications, rate/s)
        "direct": [(20, 5)],  # (pairs, messages per user)
        "idle": [200],
        "durable": {"publishers": 20, "per_publisher": 5, "stores": ["sqlite"]},
        "recovery": [100],
        "targets": ["tidings", "bare-aiohttp"],
    },
    "quick": {  # a few minutes
        "repeat": 3,
        "stack": {"fanout": (1000, 200), "idle": 5000,
                  "targets": ["bare-aiohttp", "bare-picows", "bare-websockets"]},
        "fanout": [(100, 400), (1000, 200)],
        "latency": [(1000, 200, 100)],
        "direct": [(1000, 5)],
        "idle": [5000],
        "durable": {"publishers": 100, "per_publisher": 20, "stores": ["sqlite", "postgresql"]},
        "recovery": [100, 10_000],
        "cluster": {"fanout": (600, 100), "direct": (300, 5)},
        "targets": ["tidings", "socketio-node", "python-socketio", "bare-aiohttp"],
    },
    "full": {
        "repeat": 3,
        "stack": {"fanout": (1000, 500), "idle": 10_000,
                  "targets": ["bare-aiohttp", "bare-picows", "bare-websockets"]},
        "fanout": [(100, 1000), (1000, 500), (10_000, 100)],
        "latency": [(1000, 500, 100)],
        "direct": [(1000, 20)],
        "idle": [10_000, 50_000],
        "durable": {"publishers": 100, "per_publisher": 50, "stores": ["sqlite", "postgresql"]},
        "recovery": [100, 10_000],
        "cluster": {"fanout": (3000, 200), "direct": (1000, 10)},
        "targets": ["tidings", "socketio-node", "python-socketio", "bare-aiohttp"],
    },
}
