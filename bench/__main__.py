"""`python -m bench [--profile smoke|quick|full] [--only ...]`: run the suite, write the report.

First makes sure bench/.peers/venv exists and re-runs itself there (see bootstrap.py), so
it works from any Python 3.11+, the project's venv included. Results go to
bench/results/<date>-<profile>.json (raw), .md (the table) and .png (the plots). Exits 1
when Tidings failed anywhere in the run (lost messages, failed recovery, a crash).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench import bootstrap

RESULTS = bootstrap.BENCH / "results"
SCENARIOS = ["fanout", "curve", "direct", "idle", "durable", "recovery", "ingest", "stomp",
             "stack", "cluster", "shards", "centrifugo", "metrics"]


def parse(argv: list[str]) -> argparse.Namespace:
    from bench.profiles import PROFILES

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="quick",
                        help="smoke: seconds (CI); quick (default): a few minutes; full: longer")
    parser.add_argument("--only", help="comma-separated scenarios out of " + ",".join(SCENARIOS)
                        + " (fanout includes the latency points)")
    parser.add_argument("--targets", help="comma-separated servers (default: the profile's)")
    parser.add_argument("--py-spy", action="store_true",
                        help="record every Tidings server with py-spy; collapsed stacks go to "
                             "bench/results/pyspy-<profile>/ (summarize with python -m "
                             "bench.flame FILE)")
    return parser.parse_args(argv)


def machine() -> dict:
    memory = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) // (1024 * 1024)
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return {"cores": os.cpu_count(), "memory_gib": memory, "cpu": model,
            "platform": platform.platform(terse=True), "python": platform.python_version()}


def main(argv: list[str]) -> int:
    args = parse(argv)
    if not bootstrap.in_venv():
        bootstrap.reexec(argv)  # does not return
    from bench import plots, report
    from bench.profiles import PROFILES
    from bench.runner import Runner
    from bench.limits import raise_nofile

    raise_nofile()
    profile = PROFILES[args.profile]
    only = set(args.only.split(",")) if args.only else {s for s in SCENARIOS if s in profile}
    targets = args.targets.split(",") if args.targets else list(profile["targets"])
    if args.targets and "cluster" in profile:  # --targets picks the cluster's peers too
        profile = {**profile, "cluster": {**profile["cluster"], "peers": [
            p for p in profile["cluster"].get("peers", []) if p in targets]}}
    results: dict = {"profile": args.profile, "repeat": profile["repeat"],
                     "started": datetime.datetime.now().isoformat(timespec="seconds"),
                     "machine": machine(), "skipped": [], "errors": [], "scenarios": {}}
    needs_node = "socketio-node" in targets or (
        "cluster" in only and "socketio-node" in profile.get("cluster", {}).get("peers", []))
    if needs_node:
        why = bootstrap.install_node_peer()
        if why:
            targets = [t for t in targets if t != "socketio-node"]
            results["skipped"].append(f"socketio-node: {why}")
    results["versions"] = bootstrap.versions()
    spy_dir = None
    if args.py_spy:
        spy_dir = RESULTS / f"pyspy-{args.profile}"
        spy_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(profile, results, spy_dir)
    started = time.monotonic()
    if "fanout" in only and "fanout" in profile:
        runner.fanout(targets)
    if "curve" in only and "curve" in profile:
        runner.curve(targets)
    if "direct" in only and "direct" in profile:
        runner.direct(targets)
    if "idle" in only and "idle" in profile:
        runner.idle(targets, profile["idle"])
    if "durable" in only and "durable" in profile and "tidings" in targets:
        runner.durable()
    if "recovery" in only and "recovery" in profile and "tidings" in targets:
        runner.recovery()
    if "stomp" in only and "stomp" in profile:
        runner.stomp()
    if "centrifugo" in only and "centrifugo" in profile:
        runner.centrifugo()
    if "ingest" in only and "ingest" in profile and "tidings" in targets:
        runner.ingest()
    if "stack" in only and "stack" in profile:
        runner.stack()
    if "cluster" in only and "cluster" in profile:
        if any(s.startswith("socketio-node") for s in results["skipped"]):
            runner.profile = {**profile, "cluster": {**profile["cluster"], "peers": [
                p for p in profile["cluster"]["peers"] if p != "socketio-node"]}}
        runner.cluster()
    if "shards" in only and "shards" in profile:
        runner.shards()
    if "metrics" in only and "metrics" in profile and "tidings" in targets:
        runner.metrics()
    results["seconds"] = time.monotonic() - started

    RESULTS.mkdir(exist_ok=True)
    # a partial or profiled run never overwrites a whole run's results
    suffix = "-pyspy" if args.py_spy else "-partial" if args.only or args.targets else ""
    stem = RESULTS / f"{datetime.date.today().isoformat()}-{args.profile}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1))
    text = report.markdown(results)
    stem.with_suffix(".md").write_text(text)
    plots.plots(results, stem.with_suffix(".png"))
    plots.latency_curve(results, stem.with_name(stem.name + "-curve.png"))
    print(text)
    print(f"wrote {stem}.json, .md, .png")
    found = report.problems(results)
    for problem in found:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
