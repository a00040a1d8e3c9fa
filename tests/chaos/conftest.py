"""The fault suite's two profiles and its report.

`TIDINGS_CHAOS=full` (what `make chaos` sets) runs every fault on every broker and store
it applies to, the 5,000-client storm and the 100,000 connect/disconnect cycles; without
it, a fast subset runs inside the normal test suite. Each run's figures (reconnect to
recovered p50/p99, worst event-loop lag) are printed at the end of the session and written
to `chaos-report.json` (full profile).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FULL = os.environ.get("TIDINGS_CHAOS") == "full"
RESULTS: list[dict] = []


@pytest.fixture
def report():
    return RESULTS.append


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write(f"fault suite ({'full' if FULL else 'fast'} profile)")
    keys = ["case", "published", "acked", "unknown", "refused", "lost", "duplicated",
            "out_of_order", "recovered", "recover_p50", "recover_p99", "loop_lag_max",
            "node_cpu", "clients_cpu"]
    write(" | ".join(keys))
    for row in RESULTS:
        write(" | ".join(_cell(row.get(key)) for key in keys))
    if FULL:
        Path("chaos-report.json").write_text(json.dumps(RESULTS, indent=1))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)
