"""`python -m bench.memory [--connections N] [--protocol P]`: what an idle connection is made of.

The `idle` scenario says how many bytes of RSS a connection costs; this says where they go.
It starts Tidings (from the project's venv, as the benchmark does) under tracemalloc,
connects N idle clients the same way (native by default; `--protocol stomp` or
`centrifugo` for those endpoints), and compares the server's allocations before and
after: the top allocation sites, in bytes per connection. Python objects only: memory the
kernel and C libraries hold for a socket (buffers, uvloop's handles) shows in RSS, not here.
Run it on a quiet machine; tracemalloc slows the server several times over.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import bootstrap
from bench.loadgen import Generator, Setup
from bench.scenarios import SUB_AGENTS, split
from bench.servers import Server

# Runs inside the Tidings process: dump a tracemalloc snapshot when asked, then serve.
# Asked by a trigger file, watched by a thread: a Python signal handler runs only once the
# main thread executes bytecode again, and an idle uvloop server sits in C (epoll) until a
# socket wakes it, so a SIGUSR1 snapshot of an idle server never arrived.
WRAPPER = """
import os, sys, threading, time, tracemalloc
tracemalloc.start(8)
def watch(base):
    n = 0
    while True:
        trigger = f"{base}.{n}.want"
        if os.path.exists(trigger):
            import gc; gc.collect()
            tracemalloc.take_snapshot().dump(f"{base}.{n}.tmp")
            os.rename(f"{base}.{n}.tmp", f"{base}.{n}")
            os.remove(trigger)
            n += 1
        time.sleep(0.2)
threading.Thread(target=watch, args=(sys.argv[1],), daemon=True).start()
from tidings.cli import main
sys.argv = ["tidings", "serve", "--log-level", "warning"]
sys.exit(main())
"""


class TracedServer(Server):
    def __init__(self, snapshot: Path):
        super().__init__("tidings")
        self.snapshot = snapshot

    def command(self) -> list[str]:
        python = bootstrap.tidings_command()[0]
        return [python, "-c", WRAPPER, str(self.snapshot)]

    def take(self, n: int) -> tracemalloc.Snapshot:
        Path(f"{self.snapshot}.{n}.want").touch()
        path = Path(f"{self.snapshot}.{n}")  # renamed into place once fully written
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if path.exists():
                return tracemalloc.Snapshot.load(str(path))
            time.sleep(0.5)
        raise TimeoutError("no snapshot from the server")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--protocol", choices=("tidings", "stomp", "centrifugo"),
                        default="tidings", help="the endpoint the idle clients connect to")
    args = parser.parse_args()
    if not bootstrap.in_venv():
        os.execve(str(bootstrap.PYTHON), [str(bootstrap.PYTHON), "-m", "bench.memory",
                                          *sys.argv[1:]],
                  {**os.environ, "PYTHONPATH": str(bootstrap.ROOT)})
    snapshot = Path(tempfile.mkdtemp(prefix="tidings-mem-")) / "snap"
    with TracedServer(snapshot) as server:
        time.sleep(1.0)
        rss0, before = server.rss_bytes(), server.take(0)
        users = [f"i{i}" for i in range(args.connections)]
        setups = [Setup(args.protocol, server.url, part) for part in split(users, SUB_AGENTS)]
        with Generator(setups) as gen:
            gen.ready(timeout=600)
            time.sleep(1.0)
            rss1, after = server.rss_bytes(), server.take(1)
    n = args.connections
    stats = after.compare_to(before, "lineno")
    traced = sum(s.size_diff for s in stats)
    print(f"{n} idle {args.protocol} connections: RSS +{(rss1 - rss0) / n:,.0f} B each, "
          "of which Python "
          f"objects traced +{traced / n:,.0f} B each (the rest: kernel socket state is not in "
          "RSS; C-level buffers of uvloop/aiohttp and allocator slack are)\n")
    print(f"{'B/conn':>8} {'objs/conn':>9}  allocation site")
    for stat in stats[:args.top]:
        frame = stat.traceback[0]
        where = "/".join(Path(frame.filename).parts[-2:])
        print(f"{stat.size_diff / n:8,.0f} {stat.count_diff / n:9.2f}  {where}:{frame.lineno}")


if __name__ == "__main__":
    main()
