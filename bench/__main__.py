"""`python -m bench [--profile smoke|quick|full]`: run every scenario, write the report.

Results go to bench/results/<date>-<profile>.json, a Markdown table beside it and PNG plots.
Each point is run `repeat` times; the report gives the median and the spread (min-max).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import uuid
from pathlib import Path

from bench import report, scenarios
from bench.profiles import PROFILES
from bench.servers import Cluster, Server, install_peers

RESULTS = Path(__file__).resolve().parent / "results"
PG = "postgresql://postgres@127.0.0.1:5432/test"
BROKERS = {"redis": "redis://127.0.0.1:6379/0?prefix=bench",
           "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/?exchange=bench",
           "nats": "nats://127.0.0.1:4222?prefix=bench"}


def _repeat(target: str, times: int, run, env: dict | None = None) -> list[dict]:
    """Each repetition against a fresh server process."""
    out = []
    for _ in range(times):
        with Server(target, env) as server:
            out.append(run(server))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--only", help="comma-separated scenarios: fanout,latency,direct,idle,"
                                       "durable,recovery,stack,cluster")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    only = set(args.only.split(",")) if args.only else None
    targets = profile["targets"]
    if "socketio-node" in targets:
        install_peers()
    times = profile["repeat"]
    results: dict = {
        "profile": args.profile,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "scenarios": {},
    }

    def wanted(name: str) -> bool:
        return only is None or name in only

    def record(name: str, point: str, target: str, runs: list[dict]) -> None:
        results["scenarios"].setdefault(name, {}).setdefault(point, {})[target] = runs
        print(f"{name} {point} {target}: " + report.brief(name, runs), flush=True)

    if wanted("fanout"):
        for subscribers, publications in profile["fanout"]:
            for target in targets:
                record("fanout", f"N={subscribers}", target, _repeat(
                    target, times, lambda s: scenarios.fanout(s, subscribers, publications, 0)))
    if wanted("latency"):
        for subscribers, publications, fallback_rate in profile["latency"]:
            for target in targets:
                # half the rate this server sustained in the fan-out scenario, as the issue asks
                measured = results["scenarios"].get("fanout", {}).get(f"N={subscribers}", {})
                rate = (round(report.median_of(measured[target], "deliveries_per_s")
                              / subscribers / 2) if target in measured else fallback_rate)
                record("latency", f"N={subscribers} at half the sustained rate", target,
                       [dict(run, rate=rate) for run in _repeat(
                           target, times,
                           lambda s: scenarios.fanout(s, subscribers, publications, rate))])
    if wanted("direct"):
        for pairs, per_user in profile["direct"]:
            for target in (t for t in targets if t != "bare-aiohttp"):
                record("direct", f"M={pairs}", target, _repeat(
                    target, times, lambda s: scenarios.direct(s, pairs, per_user)))
    if wanted("idle"):
        for connections in profile["idle"]:
            for target in targets:
                record("idle", f"N={connections}", target, _repeat(
                    target, times, lambda s: scenarios.idle(s, connections)))
    if wanted("durable"):
        spec = profile["durable"]
        for store in spec["stores"]:
            for grouped in (True, False):
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                env = {"TIDINGS_GROUP_COMMIT": str(grouped).lower()}
                if store == "postgresql":
                    env["TIDINGS_STORE"] = f"{PG}?schema={schema}"
                label = "group commit" if grouped else "one commit per message"
                record("durable", f"{store}, {label}", "tidings", _repeat(
                    "tidings", times,
                    lambda s: scenarios.durable(s, spec["publishers"], spec["per_publisher"]),
                    env))
                if store == "postgresql":
                    report.drop_schema(PG, schema)
    if wanted("stack") and "stack" in profile:  # input to the choice of WebSocket library
        spec = profile["stack"]
        subscribers, publications = spec["fanout"]
        for target in spec["targets"]:
            record("stack fan-out", f"N={subscribers}", target, _repeat(
                target, times, lambda s: scenarios.fanout(s, subscribers, publications, 0)))
            record("stack idle", f"N={spec['idle']}", target, _repeat(
                target, times, lambda s: scenarios.idle(s, spec["idle"])))
    if wanted("recovery"):
        for missed in profile["recovery"]:
            keep = {"TIDINGS_NAMESPACES__ROOM__HISTORY_SIZE": str(max(missed, 1000))}
            record("recovery", f"K={missed}", "tidings",
                   _repeat("tidings", times, lambda s: scenarios.recovery(s, missed), keep))

    if wanted("cluster") and "cluster" in profile:
        spec = profile["cluster"]
        for kind, url in BROKERS.items():
            for _ in range(times):
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                with Cluster(url, f"{PG}?schema={schema}") as cluster:
                    fan = scenarios.cluster_fanout(cluster, *spec["fanout"])
                    dm = scenarios.cluster_direct(cluster, *spec["direct"])
                report.drop_schema(PG, schema)
                for name, run in (("cluster fan-out", fan), ("cluster direct", dm)):
                    results["scenarios"].setdefault(name, {}).setdefault(
                        "3 nodes", {}).setdefault(f"tidings on {kind}", []).append(run)
            for name in ("cluster fan-out", "cluster direct"):
                runs = results["scenarios"][name]["3 nodes"][f"tidings on {kind}"]
                print(f"{name} 3 nodes {kind}: " + report.brief(name, runs), flush=True)

    RESULTS.mkdir(exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-{args.profile}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1))
    table = report.markdown(results)
    (RESULTS / f"{stem}.md").write_text(table)
    report.plots(results, RESULTS / stem)
    print(table)
    problems = report.problems(results)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
