"""CPU time and memory from /proc: of one process, and of the whole machine.

A server's CPU seconds per delivery come from its own /proc/<pid>/stat, so the load
generator's work is never billed to it. The machine-wide figure says whether the two cores
were full during a point, in which case server and generator competed for them and the
absolute numbers say more about the machine than about the server.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def available_bytes() -> int:
    """MemAvailable: what the machine can still allocate without swapping."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot; diff two readings for a share."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / TICK, total / TICK


class MachineMeter:
    """How full the machine's cores were between start() and stop()."""

    def start(self) -> None:
        self._busy, self._total = machine_busy()

    def stop(self) -> float:
        busy, total = machine_busy()
        return (busy - self._busy) / max(total - self._total, 1e-9)
