"""Turn a run's raw figures into the table and plots a person reads in ten seconds."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

HEADLINE = {  # scenario -> (figure, unit, higher is better)
    "fanout": ("deliveries_per_s", "deliveries/s", True),
    "latency": ("p99_ms", "p99 ms", False),
    "direct": ("messages_per_s", "messages/s", True),
    "idle": ("bytes_per_connection", "bytes/connection", False),
    "durable": ("publishes_per_s", "acked publishes/s", True),
    "recovery": ("seconds", "seconds to recover", False),
    "stack fan-out": ("deliveries_per_s", "deliveries/s", True),
    "cluster fan-out": ("deliveries_per_s", "deliveries/s", True),
    "cluster direct": ("messages_per_s", "messages/s", True),
    "stack idle": ("bytes_per_connection", "bytes/connection", False),
}


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)




def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def brief(name: str, runs: list[dict]) -> str:
    key, unit, _ = HEADLINE[name]
    values = [run[key] for run in runs]
    return f"{_fmt(statistics.median(values))} {unit} (min {_fmt(min(values))}, max {_fmt(max(values))})"


def markdown(results: dict) -> str:
    lines = [f"# Benchmark: profile {results['profile']}, {results['started']}", "",
             f"Machine: {results['machine']['cores']} cores, Python "
             f"{results['machine']['python']}. Medians of each point's runs, spread as "
             "min-max; ratios against the first row of each point (Tidings), from the same run.", ""]
    for name, points in results["scenarios"].items():
        key, unit, higher = HEADLINE[name]
        lines += [f"## {name}", "", f"| point | server | {unit} | min-max | vs first | "
                  "extra |", "|---|---|---|---|---|---|"]
        for point, targets in points.items():
            first = next(iter(targets))  # Tidings, or the stack's first library
            base = median_of(targets[first], key)
            for target, runs in targets.items():
                values = [run[key] for run in runs]
                median = statistics.median(values)
                ratio = f"{median / base:.2f}x" if base else ""
                lines.append(f"| {point} | {target} | {_fmt(median)} | {_fmt(min(values))}-"
                             f"{_fmt(max(values))} | {ratio} | {_extra(name, runs)} |")
        lines.append("")
    lines += goals(results)
    return "\n".join(lines) + "\n"


def _extra(name: str, runs: list[dict]) -> str:
    if name == "cluster fan-out":
        return (f"{median_of(runs, 'broker_messages_per_publication'):.2f} broker messages per "
                f"publication, p99 {median_of(runs, 'p99_ms'):.1f} ms")
    if name == "cluster direct":
        return (f"{median_of(runs, 'broker_messages_per_message'):.2f} broker messages per "
                f"message, p99 {median_of(runs, 'p99_ms'):.1f} ms")
    if name in ("fanout", "latency", "direct", "stack fan-out"):
        parts = [f"at {runs[0]['rate']}/s"] if "rate" in runs[0] else []
        parts += [f"p50 {median_of(runs, 'p50_ms'):.1f} ms", f"p99 {median_of(runs, 'p99_ms'):.1f} ms",
                 f"p99.9 {median_of(runs, 'p999_ms'):.1f} ms",
                 f"server CPU {median_of(runs, 'server_cpu_per_100k'):.2f} s/100k"]
        share = max(run["generator_cpu_share"] for run in runs)
        if share > 0.9:
            parts.append(f"**load generator saturated ({share:.0%} CPU)**")
        return ", ".join(parts)
    if name in ("idle", "stack idle"):
        return f"{_fmt(median_of(runs, 'connections_per_s'))} connections/s set up"
    if name == "recovery":
        return f"recovered {runs[0]['recovered']} of {runs[0]['missed']}"
    return ""


def goals(results: dict) -> list[str]:
    """The issue's goals, as ratios measured in this run."""
    out = ["## Goals", ""]
    scenarios = results["scenarios"]
    fanout = scenarios.get("fanout", {})
    if fanout:
        point = list(fanout)[-1]
        targets = fanout[point]
        mine = median_of(targets["tidings"], "deliveries_per_s")
        for peer, goal in (("python-socketio", 2.0), ("socketio-node", 1.0),
                           ("bare-aiohttp", 0.6)):
            if peer in targets:
                ratio = mine / median_of(targets[peer], "deliveries_per_s")
                out.append(f"- fan-out {point}: Tidings / {peer} = {ratio:.2f} (goal >= {goal}) "
                           f"{'met' if ratio >= goal else 'NOT met'}")
    idle = scenarios.get("idle", {})
    for point, targets in idle.items():
        if "socketio-node" in targets:
            ratio = (median_of(targets["tidings"], "bytes_per_connection")
                     / median_of(targets["socketio-node"], "bytes_per_connection"))
            out.append(f"- idle memory {point}: Tidings / Socket.IO = {ratio:.2f} (goal <= 1) "
                       f"{'met' if ratio <= 1 else 'NOT met'}")
    durable = scenarios.get("durable", {})
    for store in ("sqlite", "postgresql"):
        grouped = durable.get(f"{store}, group commit", {}).get("tidings")
        single = durable.get(f"{store}, one commit per message", {}).get("tidings")
        if grouped and single:
            ratio = median_of(grouped, "publishes_per_s") / median_of(single, "publishes_per_s")
            out.append(f"- group commit on {store}: {ratio:.1f}x one commit per message "
                       f"(goal >= 10) {'met' if ratio >= 10 else 'NOT met'}")
    for point, targets in scenarios.get("latency", {}).items():
        p99 = median_of(targets["tidings"], "p99_ms")
        out.append(f"- p99 latency {point}: {p99:.1f} ms (goal < 50) "
                   f"{'met' if p99 < 50 else 'NOT met'}")
    return out + [""]


def problems(results: dict) -> list[str]:
    """Anything that says the run itself went wrong (lost deliveries, failed recovery)."""
    found = []
    for name in ("fanout", "latency", "direct"):
        for point, targets in results["scenarios"].get(name, {}).items():
            for run in targets.get("tidings", []):
                got = run.get("deliveries", run.get("messages"))
                if got != run["expected"]:
                    found.append(f"{name} {point}: Tidings delivered {got} of {run['expected']}")
    for point, targets in results["scenarios"].get("recovery", {}).items():
        for run in targets["tidings"]:
            if run["recovered"] != run["missed"]:
                found.append(f"recovery {point}: {run['recovered']} of {run['missed']}")
    return found


def plots(results: dict, stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [n for n in ("fanout", "direct", "idle", "durable") if n in results["scenarios"]]
    if not shown:
        return
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4), squeeze=False)
    for ax, name in zip(axes[0], shown):
        key, unit, _ = HEADLINE[name]
        labels, medians, errors = [], [], []
        for point, targets in results["scenarios"][name].items():
            for target, runs in targets.items():
                values = [run[key] for run in runs]
                median = statistics.median(values)
                labels.append(f"{target}\n{point}")
                medians.append(median)
                errors.append([[median - min(values)], [max(values) - median]])
        colors = ["tab:blue" if "tidings" in label else "tab:gray" for label in labels]
        ax.barh(range(len(labels)), medians, color=colors,
                xerr=[[e[0][0] for e in errors], [e[1][0] for e in errors]])
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{name}: {unit}")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(f"{stem}.png", dpi=110)
    plt.close(fig)


def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    asyncio.run(drop())
