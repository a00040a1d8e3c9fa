"""Turn a run's raw figures into the Markdown a person reads in ten seconds.

The goals come first, as ratios from this run; then one table per scenario with the median,
the spread (min-max) and the ratio to the point's reference row (Tidings, or the first
library in the stack comparison). Flags say when a figure is not what it seems: the load
generator or the whole machine was saturated, messages went missing, connections dropped.
"""

from __future__ import annotations

import statistics

HEADLINE = {  # scenario -> (figure, unit, higher is better)
    "fanout": ("deliveries_per_s", "deliveries/s", True),
    "latency": ("p99_ms", "p99 ms", False),
    "latency floor": ("p99_ms", "p99 ms", False),
    "latency curve": ("p99_ms", "p99 ms", False),
    "direct": ("messages_per_s", "messages/s", True),
    "idle": ("bytes_per_connection", "bytes/connection", False),
    "durable": ("publishes_per_s", "acked publishes/s", True),
    "recovery": ("seconds", "seconds to recover", False),
    "stomp fan-out": ("deliveries_per_s", "deliveries/s", True),
    "centrifugo fan-out": ("deliveries_per_s", "deliveries/s", True),
    "stack fan-out": ("deliveries_per_s", "deliveries/s", True),
    "stack idle": ("bytes_per_connection", "bytes/connection", False),
    "cluster fan-out": ("deliveries_per_s", "deliveries/s", True),
    "cluster direct": ("messages_per_s", "messages/s", True),
    "shards fan-out": ("deliveries_per_s", "deliveries/s", True),
    "shards direct": ("messages_per_s", "messages/s", True),
    "ingest": ("notifications_per_s", "notifications/s", True),
    "metrics fan-out": ("deliveries_per_s", "deliveries/s", True),
    "metrics direct": ("messages_per_s", "messages/s", True),
}
GENERATOR_SATURATED = 0.9  # one agent process used 90% of a core
MACHINE_FULL = 0.95  # both cores 95% busy


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def brief(scenario: str, runs: list[dict]) -> str:
    key, unit, _ = HEADLINE[scenario]
    values = [run[key] for run in runs]
    flags = "; ".join(_flags(runs))
    return (f"{fmt(statistics.median(values))} {unit} (min {fmt(min(values))}, "
            f"max {fmt(max(values))}){' ' + flags if flags else ''}")


def _flags(runs: list[dict]) -> list[str]:
    out = []
    share = max(run.get("generator_max_share", 0) for run in runs)
    if share > GENERATOR_SATURATED:
        out.append(f"**generator saturated ({share:.0%} of a core)**")
    busy = max(run.get("machine_busy", 0) for run in runs)
    if busy > MACHINE_FULL:
        out.append(f"machine full ({busy:.0%})")
    short = [run for run in runs if "expected" in run and _got(run) != run["expected"]]
    if short:
        got = _got(short[0])
        out.append(f"**incomplete: {got:,} of {short[0]['expected']:,} in a round**")
    dropped = max(run.get("dropped_connections", 0) for run in runs)
    if dropped:
        out.append(f"**{dropped} connections dropped**")
    return out


def _got(run: dict) -> int:
    for key in ("deliveries", "messages", "acknowledged", "notifications"):
        if key in run:
            return run[key]
    return 0


def _extra(scenario: str, runs: list[dict]) -> str:
    parts = []
    if scenario.startswith(("cluster", "shards")):
        key = ("broker_messages_per_publication" if scenario.endswith("fan-out")
               else "broker_messages_per_message")
        if runs[0].get("extra"):
            parts.append(f"{median_of(runs, key):.2f} broker messages read each")
        if "broker_cpu_seconds" in runs[0]:
            parts.append(f"Redis {median_of(runs, 'broker_cpu_seconds'):.2f} CPU s in all")
    if "p99_ms" in runs[0]:
        if scenario.startswith("latency"):
            parts.append(f"at {runs[0]['rate']:,.0f} publications/s")
        if "sustained" in runs[0]:
            kept = sum(run["sustained"] for run in runs)
            parts.append(f"sustained in {kept} of {len(runs)} rounds" if kept < len(runs)
                         else "sustained")
        parts += [f"p50 {median_of(runs, 'p50_ms'):.1f} ms", f"p99 {median_of(runs, 'p99_ms'):.1f} ms",
                  f"p99.9 {median_of(runs, 'p999_ms'):.1f} ms"]
    if "server_cpu_per_100k" in runs[0]:
        parts.append(f"server {median_of(runs, 'server_cpu_per_100k'):.2f} CPU s/100k")
    if "inbox_p99_ms" in runs[0]:
        parts.append(f"inbox (20 sources, 1,000 unread) p50 {median_of(runs, 'inbox_p50_ms'):.1f} ms, "
                     f"p99 {median_of(runs, 'inbox_p99_ms'):.1f} ms over "
                     f"{min(r['inbox_requests'] for r in runs):,}+ requests while ingesting "
                     f"(idle: p50 {median_of(runs, 'idle_inbox_p50_ms'):.1f} ms, "
                     f"p99 {median_of(runs, 'idle_inbox_p99_ms'):.1f} ms)")
    if "scrapes" in runs[0]:
        parts.append(f"{min(r['scrapes'] for r in runs)}+ scrapes a round, answered in "
                     f"{median_of(runs, 'scrape_p50_ms'):.1f} ms (p50), "
                     f"{runs[0]['scrape_bytes'] / 1024:.0f} KiB, "
                     f"{runs[0]['scrape_cpu_ms']:.2f} ms of server CPU each")
    if "connections_per_s" in runs[0]:
        parts.append(f"{fmt(median_of(runs, 'connections_per_s'))} connections/s set up")
    if "heartbeat_cores" in runs[0]:
        parts.append(f"heartbeat CPU {median_of(runs, 'heartbeat_cores'):.2%} of a core = "
                     f"{median_of(runs, 'heartbeat_us_per_connection'):.2f} µs per connection "
                     f"per second over {runs[0]['window_seconds']:.0f} s idle "
                     f"({median_of(runs, 'pings_per_connection'):.1f} pings answered per "
                     f"connection), {fmt(median_of(runs, 'bytes_per_connection_after_window'))} "
                     "bytes/connection after it")
    if scenario == "recovery":
        parts.append(f"recovered {min(r['recovered'] for r in runs):,} of {runs[0]['missed']:,}"
                     f"{', in order' if all(r['in_order'] for r in runs) else ', OUT OF ORDER'}")
    return ", ".join(parts + _flags(runs))


def table(scenario: str, points: dict) -> list[str]:
    key, unit, higher = HEADLINE[scenario]
    lines = [f"### {scenario}", "",
             f"| point | server | {unit} ({'higher' if higher else 'lower'} is better) | "
             "min-max | ÷ first row | details |", "|---|---|---|---|---|---|"]
    for point, targets in points.items():
        base = median_of(next(iter(targets.values())), key)
        for target, runs in targets.items():
            values = [run[key] for run in runs]
            median = statistics.median(values)
            ratio = f"{median / base:.2f}x" if base else ""
            lines.append(f"| {point} | {target} | {fmt(median)} | {fmt(min(values))}-"
                         f"{fmt(max(values))} | {ratio} | {_extra(scenario, runs)} |")
    return lines + [""]


def goals(results: dict) -> list[str]:
    """The issue's goals, as ratios measured in this run; an unmeasured goal says so."""
    out = []
    s = results["scenarios"]
    fanout = s.get("fanout", {})
    if fanout:
        point = max(fanout, key=lambda p: int(p.split("=")[1]))
        targets = fanout[point]
        if "tidings" in targets:
            mine = median_of(targets["tidings"], "deliveries_per_s")
            for peer, goal, name in (("python-socketio", 2.0, "python-socketio"),
                                     ("socketio-node", 1.0, "Socket.IO (Node)"),
                                     ("bare-aiohttp", 0.7, "the coalescing bare aiohttp relay")):
                if peer in targets:
                    ratio = mine / median_of(targets[peer], "deliveries_per_s")
                    out.append(f"- Fan-out {point}: Tidings = **{ratio:.2f}x** {name} "
                               f"(goal ≥ {goal}x): {verdict(ratio >= goal)}")
    for point, targets in s.get("stomp fan-out", {}).items():
        if "tidings-stomp" not in targets:
            continue
        mine = median_of(targets["tidings-stomp"], "deliveries_per_s")
        for peer, goal, name in (("tidings", 0.8, "Tidings' native protocol"),
                                 ("rabbitmq-web-stomp", 2.0, "RabbitMQ Web-STOMP")):
            if peer not in targets:
                continue
            theirs = median_of(targets[peer], "deliveries_per_s")
            if not theirs:
                out.append(f"- STOMP fan-out {point}: {name} delivered nothing (goal ≥ {goal}x: "
                           f"{verdict(mine > 0)})")
                continue
            ratio = mine / theirs
            out.append(f"- STOMP fan-out {point}: Tidings' STOMP = **{ratio:.2f}x** {name} "
                       f"(goal ≥ {goal}x): {verdict(ratio >= goal)}")
    for point, targets in s.get("centrifugo fan-out", {}).items():
        if "tidings" not in targets or not median_of(targets["tidings"], "deliveries_per_s"):
            continue
        native = median_of(targets["tidings"], "deliveries_per_s")
        for target, name in (("tidings-centrifugo", "JSON"),
                             ("tidings-centrifugo-protobuf", "Protobuf")):
            if target in targets:
                ratio = median_of(targets[target], "deliveries_per_s") / native
                out.append(f"- Centrifugo fan-out {point} ({name}): **{ratio:.2f}x** Tidings' "
                           f"native protocol (goal ≥ 0.9x): {verdict(ratio >= 0.9)}")
    for scenario in ("metrics fan-out", "metrics direct"):
        key = HEADLINE[scenario][0]
        for point, targets in s.get(scenario, {}).items():
            scraped = [runs for target, runs in targets.items() if target != "tidings"]
            if "tidings" not in targets or not scraped:
                continue
            quiet, loud = targets["tidings"], scraped[0]
            ratio = median_of(loud, key) / median_of(quiet, key)
            base_cpu = median_of(quiet, "server_cpu_per_100k")
            cpu = (f"**{median_of(loud, 'server_cpu_per_100k') / base_cpu:.2f}x** (goal ≤ 1.05x: "
                   f"{verdict(median_of(loud, 'server_cpu_per_100k') <= 1.05 * base_cpu)})"
                   if base_cpu else "not measured (rounds shorter than a clock tick)")
            every = loud[0]["scrape_every"]
            share = loud[0]["scrape_cpu_ms"] / 1000 / 15  # of one core, at Prometheus' 15 s
            out.append(f"- {scenario.capitalize()} {point}, `/metrics` scraped every {every:g} s "
                       f"vs not, rounds alternating: throughput **{ratio:.2f}x**, server CPU per "
                       f"message {cpu}; one scrape costs {loud[0]['scrape_cpu_ms']:.2f} ms of "
                       f"CPU, {share:.3%} of a core at a 15 s interval")
    for point, targets in s.get("idle", {}).items():
        if "tidings" in targets:
            size = median_of(targets["tidings"], "bytes_per_connection")
            out.append(f"- Memory per idle connection {point}: Tidings **{size:,.0f} bytes** "
                       f"(goal ≤ 12 KiB = 12,288): {verdict(size <= 12_288)}")
        if "tidings" in targets and "socketio-node" in targets:
            ratio = (median_of(targets["tidings"], "bytes_per_connection")
                     / median_of(targets["socketio-node"], "bytes_per_connection"))
            out.append(f"- Memory per idle connection {point}: Tidings = **{ratio:.2f}x** "
                       f"Socket.IO's (goal ≤ 1x): {verdict(ratio <= 1)}")
    durable = s.get("durable", {})
    for store in ("sqlite", "postgresql", "mysql"):
        grouped = durable.get(f"{store}, group commit", {}).get("tidings")
        single = durable.get(f"{store}, one commit per message", {}).get("tidings")
        if grouped and single:
            ratio = median_of(grouped, "publishes_per_s") / median_of(single, "publishes_per_s")
            out.append(f"- Group commit on {store}, {grouped[0]['publishers']} publishers: "
                       f"**{ratio:.1f}x** one commit per message (goal ≥ 10x): "
                       f"{verdict(ratio >= 10)}")
    for point, targets in s.get("latency", {}).items():
        if "half" in point and "tidings" in targets:
            p99 = median_of(targets["tidings"], "p99_ms")
            out.append(f"- p99 latency, {point} ({targets['tidings'][0]['rate']:,.0f}/s): "
                       f"**{p99:.1f} ms** (goal < 50 ms): {verdict(p99 < 50)}")
    out += curve_goals(s)
    for scenario, key in (("cluster fan-out", "deliveries_per_s"),
                          ("cluster direct", "messages_per_s")):
        for point, targets in s.get(scenario, {}).items():
            mine = targets.get("tidings on redis")
            for peer, name in (("socketio-node on redis", "Socket.IO (Node) on its Redis adapter"),
                               ("python-socketio on redis", "python-socketio on Redis")):
                if mine and targets.get(peer) and median_of(targets[peer], key):
                    ratio = median_of(mine, key) / median_of(targets[peer], key)
                    out.append(f"- {scenario.capitalize()}, {point}: Tidings on Redis = "
                               f"**{ratio:.2f}x** {name} (goal ≥ 3x): {verdict(ratio >= 3)}")
    for point, targets in s.get("ingest", {}).items():
        system = point.split(",")[0]
        bare = targets.get(f"bare {system} consumer")
        mine = targets.get("tidings")
        if bare and mine:
            ratio = (median_of(mine, "notifications_per_s")
                     / median_of(bare, "notifications_per_s"))
            out.append(f"- Ingest {point}, queue → durable → delivered: Tidings = "
                       f"**{ratio:.2f}x** the bare {system} consumer (goal ≥ 0.5x): "
                       f"{verdict(ratio >= 0.5)}")
            sampled = [run for run in mine if run["inbox_requests"]]
            if not sampled:
                out.append(f"- `inbox` while ingesting from {system}: not measured (the "
                           "ingest was over before the reader's first request)")
                continue
            p99 = median_of(sampled, "inbox_p99_ms")
            out.append(f"- `inbox` with 20 sources and 1,000 unread while ingesting from "
                       f"{system}: p99 **{p99:.1f} ms** (goal < 20 ms; the idle node: "
                       f"{median_of(sampled, 'idle_inbox_p99_ms'):.1f} ms): {verdict(p99 < 20)}")
    return out


def curve_goals(s: dict) -> list[str]:
    """At every rate Socket.IO sustains, Tidings' p99 no higher than Socket.IO's; at
    100,000 deliveries/s and N = 10,000, Tidings' p99 under 100 ms; and the floor beside."""
    def p99(runs: list[dict]) -> float:
        return median_of(runs, "p99_ms")

    out = []
    for point, targets in s.get("latency curve", {}).items():
        mine, theirs = targets.get("tidings"), targets.get("socketio-node")
        if mine and theirs and sustained(theirs):
            ok = sustained(mine) and p99(mine) <= p99(theirs)
            out.append(f"- Latency curve {point}: Tidings p99 **{p99(mine):.1f} ms**"
                       f"{'' if sustained(mine) else ' (not sustained)'} vs Socket.IO's "
                       f"{p99(theirs):.1f} ms (goal ≤ Socket.IO's): {verdict(ok)}")
        if point == "N=10000, 100,000/s" and mine:
            ok = sustained(mine) and p99(mine) < 100
            out.append(f"- Latency curve {point}: Tidings p99 **{p99(mine):.1f} ms**"
                       f"{'' if sustained(mine) else ' (not sustained)'} (goal < 100 ms): "
                       f"{verdict(ok)}")
    for point, targets in s.get("latency floor", {}).items():
        floor = ", ".join(f"{target} {p99(runs):.1f} ms" for target, runs in targets.items())
        out.append(f"- Floor {point} (p99 of isolated publications, 2/s): {floor}")
    if not s.get("latency curve") and s.get("latency floor"):
        out.append("- Latency curve: no rate measured")
    return out


def sustained(runs: list[dict]) -> bool:
    """A rate counts as sustained when most of its rounds were."""
    return sum(run["sustained"] for run in runs) * 2 > len(runs)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"# Benchmark, profile `{results['profile']}`, {results['started']}", "",
             f"{m['cores']} cores, {m.get('memory_gib', '?')} GiB, {m['platform']}; "
             f"took {results.get('seconds', 0):.0f} s. Every point is the median of "
             f"{results['repeat']} measured rounds (after a warm-up round) with the min-max "
             "spread; all servers measured in this same run. Versions: "
             + ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items()) + ".", ""]
    found = goals(results)
    if found:
        lines += ["## Goals", ""] + found + [""]
    if results.get("errors") or results.get("skipped"):
        lines += ["## Not measured", ""]
        lines += [f"- error: {e}" for e in results.get("errors", [])]
        lines += [f"- skipped: {e}" for e in results.get("skipped", [])]
        lines.append("")
    lines += ["## Figures", ""]
    for scenario, points in results["scenarios"].items():
        lines += table(scenario, points)
    return "\n".join(lines) + "\n"


def problems(results: dict) -> list[str]:
    """What says the run itself went wrong for Tidings: errors, lost messages, failed
    recovery. `python -m bench` exits non-zero when there is any."""
    found = [f"error: {e}" for e in results.get("errors", []) if "tidings" in e
             or not any(p in e for p in ("socketio", "bare"))]
    for scenario, points in results["scenarios"].items():
        for point, targets in points.items():
            for target, runs in targets.items():
                if not target.startswith("tidings"):
                    continue
                for run in runs:
                    got = run.get("deliveries", run.get("messages", run.get(
                        "acknowledged", run.get("notifications"))))
                    if "expected" in run and got != run["expected"]:
                        found.append(f"{scenario} {point}: Tidings got {got} of {run['expected']}")
                    if run.get("dropped_connections"):
                        found.append(f"{scenario} {point}: Tidings dropped "
                                     f"{run['dropped_connections']} connections")
                    if scenario == "recovery" and (run["recovered"] != run["missed"]
                                                   or not run["in_order"]):
                        found.append(f"recovery {point}: {run['recovered']} of {run['missed']} "
                                     f"(in order: {run['in_order']}; error: {run['error']})")
    return found
