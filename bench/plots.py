"""One PNG per run: a panel per scenario, Tidings in blue, every bar a median with its
min-max spread, so the picture answers "how does Tidings compare" at a glance."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.report import HEADLINE


def _short(value: float, _pos: int) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


PANELS = ["fanout", "latency", "direct", "idle", "durable", "recovery", "stack fan-out",
          "stack idle", "cluster fan-out", "cluster direct", "metrics fan-out", "metrics direct"]


def plots(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    shown = [name for name in PANELS if results["scenarios"].get(name)]
    if not shown:
        return
    columns = min(3, len(shown))
    rows = (len(shown) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, shown):
        key, unit, higher = HEADLINE[name]
        labels, medians, low, high = [], [], [], []
        for point, targets in results["scenarios"][name].items():
            for target, runs in targets.items():
                values = [run[key] for run in runs]
                median = statistics.median(values)
                labels.append(f"{target} · {point}")
                medians.append(median)
                low.append(median - min(values))
                high.append(max(values) - median)
        colors = ["tab:blue" if label.startswith("tidings") else "tab:gray" for label in labels]
        ax.barh(range(len(labels)), medians, color=colors, xerr=[low, high], capsize=2)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{name}: {unit} ({'higher' if higher else 'lower'} is better)",
                     fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.xaxis.set_major_formatter(FuncFormatter(_short))
        ax.invert_yaxis()
    fig.suptitle(f"Tidings benchmark, profile {results['profile']}, {results['started']} "
                 "(median of rounds, bars show min-max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


COLORS = {"tidings": "tab:blue", "socketio-node": "tab:orange", "python-socketio": "tab:green",
          "bare-aiohttp": "tab:gray"}


def latency_curve(results: dict, path: Path) -> None:
    """p50, p99 and p99.9 against the offered delivery rate, a panel per N; each server's
    floor (isolated publications) at the left edge. Hollow markers: the rate was not
    sustained."""
    curve, floor = (results["scenarios"].get(name, {}) for name in ("latency curve",
                                                                     "latency floor"))
    if not curve:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from bench.report import sustained

    sizes = sorted({point.split(",")[0] for point in curve}, key=lambda n: int(n[2:]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(7 * len(sizes), 5), squeeze=False)
    for ax, size in zip(axes.flat, sizes):
        lines: dict[str, list[tuple[float, dict, bool]]] = {}
        for point, targets in curve.items():
            if point.split(",")[0] != size:
                continue
            for target, runs in targets.items():
                medians = {q: statistics.median(run[q] for run in runs)
                           for q in ("p50_ms", "p99_ms", "p999_ms")}
                lines.setdefault(target, []).append(
                    (runs[0]["offered_deliveries_per_s"], medians, sustained(runs)))
        for target, points in lines.items():
            color = COLORS.get(target, "black")
            xs = [x for x, _, _ in points]
            for q, style, label in (("p99_ms", "-", "p99"), ("p50_ms", ":", "p50"),
                                    ("p999_ms", "--", "p99.9")):
                ys = [m[q] for _, m, _ in points]
                ax.plot(xs, ys, style, color=color, linewidth=2 if q == "p99_ms" else 1,
                        label=f"{target} {label}")
                ax.scatter(xs, ys, color=[color if ok else "white" for *_, ok in points],
                           edgecolors=color, s=24 if q == "p99_ms" else 10, zorder=3)
            runs = floor.get(size, {}).get(target)
            if runs:
                ax.axhline(statistics.median(run["p99_ms"] for run in runs), color=color,
                           linewidth=0.8, alpha=0.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{size} subscribers: latency at fixed delivery rates "
                     "(thin lines: each server's floor, p99)", fontsize=9)
        ax.set_xlabel("offered deliveries/s", fontsize=8)
        ax.set_ylabel("publish-to-receive latency, ms", fontsize=8)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            axis.set_major_formatter(FuncFormatter(_short))
            axis.set_minor_formatter(NullFormatter())
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.2)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"Latency curve, {results['started']}\n(median of rounds; hollow "
                 "markers: rate not sustained)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
