"""`python -m bench.ticks [--sessions N] [--seconds S]`: what the node's tick costs.

The `idle` scenario measures a whole idle server's CPU; this isolates the node's tick, the
once-a-second look at sessions (pings, pong deadlines, token expiry): N connected, idle
native sessions on a real node in this process, whose clients were last heard from at
times spread over one ping interval and answer every ping within the second. Over S
simulated seconds it times two passes, each on sessions of its own: one over every
session (what the tick did before tidings/wheel.py) and the node's tick over the wheel
(only the sessions due). The socket under each session takes the frames and drops them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable

from tidings.config import load_settings
from tidings.node import Node
from tidings.server.native import CODEC
from tidings.session import Session


class Socket:
    def write(self, frame: bytes) -> None:
        pass

    def writelines(self, frames: list[bytes]) -> None:
        pass

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        pass


def idle_node(count: int, start: float, directory: str) -> tuple[Node, list[Session]]:
    """A node with `count` connected sessions, each filed on the wheel for its next ping."""
    node = Node(load_settings(None, store=f"sqlite:///{directory}/ticks.db"))
    interval = node.settings.ping_interval
    sessions = [Session(node, Socket(), CODEC) for _ in range(count)]
    for n, session in enumerate(sessions):
        session.connected = True
        session.last_seen = start - interval * n / count
    for session in node.wheel.pop_due(start + 1):  # their first look, as after connecting
        node.wheel.file(session, session.tick(start))
    return node, sessions


def every_session(node: Node, now: float) -> None:
    for session in list(node.sessions.values()):
        session.tick(now)


def wheel(node: Node, now: float) -> None:
    for session in node.wheel.pop_due(now):
        then = session.tick(now)
        if then is not None:
            node.wheel.file(session, then)


async def timed(count: int, seconds: int, one_pass: Callable[[Node, float], None]
                ) -> list[float]:
    """Seconds each simulated second's pass took."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        node, sessions = idle_node(count, start, directory)
        took = []
        for second in range(1, seconds + 1):
            now = start + second
            began = time.perf_counter()
            one_pass(node, now)
            took.append(time.perf_counter() - began)
            for session in sessions:  # every client answers its ping within the second
                if session._pinged_at is not None:
                    session.last_seen, session._pinged_at = now + 0.05, None
            await asyncio.sleep(0)  # the outbox writes the pings
        return took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=50, help="simulated; 2 ping intervals")
    args = parser.parse_args()
    for label, one_pass in (("every session (before)", every_session),
                            ("the sessions due (wheel)", wheel)):
        took = await timed(args.sessions, args.seconds, one_pass)
        print(f"{args.sessions:,} idle sessions, {label}: median "
              f"{statistics.median(took) * 1e3:.2f} ms per tick, max {max(took) * 1e3:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
