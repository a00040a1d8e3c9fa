"""`python -m bench.flame FILE.raw [--top N]`: where a py-spy recording spent its time.

`python -m bench --py-spy` records every Tidings server with `py-spy record --format raw`
(collapsed stacks: `frame;frame;... count`). This prints the share of samples per function,
inclusive (on the stack) and self (the frame running), so "where does the time go" has a
short answer without a flame-graph viewer. Idle samples (the event loop waiting in
select/epoll) are counted apart so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once|run_forever)\b.*\(.*(selectors|uvloop)")


def _frame(raw: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`: lines merged per function."""
    match = re.match(r"(.*?) \((.*?):\d+\)$", raw)
    if not match:
        return raw
    name, path = match.groups()
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def summarize(path: Path, top: int = 25, thread: str | None = None) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if thread and thread not in frames[0]:
            continue
        n = int(count)
        leaf = frames[-1]
        if len(frames) <= 2 or IDLE.search(leaf):
            idle += n
            continue
        busy += n
        own[_frame(leaf)] += n
        for name in {_frame(f) for f in frames[1:]}:
            inclusive[name] += n
    out = [f"{path.name}: {busy} busy samples, {idle} idle (loop waiting)", "",
           "inclusive  self   function"]
    for name, n in inclusive.most_common(top):
        out.append(f"{n / max(busy, 1):8.1%} {own[name] / max(busy, 1):6.1%}  {name}")
    out += ["", "self only:"]
    for name, n in own.most_common(top):
        out.append(f"{n / max(busy, 1):8.1%}  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flame")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", help="only stacks whose thread label contains this")
    args = parser.parse_args()
    for path in args.files:
        print(summarize(path, args.top, args.thread))
        print()


if __name__ == "__main__":
    main()
