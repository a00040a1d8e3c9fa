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
