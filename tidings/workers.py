"""`tidings serve --workers N`: N node processes sharing one port through SO_REUSEPORT.

Each worker is a full node with its own name (`<node_name>-w<k>`), joined to its siblings by
the configured broker exactly as separate machines would be; the kernel spreads incoming
connections across them. The supervisor restarts a worker that dies and, on SIGTERM or
SIGINT, passes the signal on so every worker drains its clients before exiting.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from tidings.config import ConfigError, Settings

log = logging.getLogger("tidings.workers")

RESTART_DELAY = 1.0
EARLY_EXIT = 5.0  # a worker that dies this soon after starting has a problem a restart won't fix


def check_workers(settings: Settings, workers: int) -> None:
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if workers > 1 and settings.broker.startswith("memory:"):
        raise ConfigError(
            "--workers > 1 needs a shared broker: the in-process broker cannot join "
            "processes. Set TIDINGS_BROKER to redis://, amqp:// or nats://"
        )
    if workers > 1 and settings.store.startswith("sqlite:"):
        log.warning("workers share one SQLite file: fine for a test, use PostgreSQL in production")


def supervise(settings: Settings, workers: int, argv: list[str]) -> int:
    """Run `workers` node processes until a signal; returns the exit status."""
    stopping = False
    exit_code = 0

    def spawn(index: int) -> subprocess.Popen:
        env = {**os.environ, "TIDINGS_NODE_NAME": f"{settings.node_name}-w{index}",
               "TIDINGS_REUSE_PORT": "1"}
        return subprocess.Popen([sys.executable, "-m", "tidings", "serve", *argv], env=env)

    children = {index: spawn(index) for index in range(workers)}
    started = {index: time.monotonic() for index in children}

    def forward(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        for index, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            if stopping:
                del children[index]
            elif time.monotonic() - started[index] < EARLY_EXIT:
                log.error("worker %d exited with %s right after starting; stopping", index, code)
                forward(signal.SIGTERM, None)
                exit_code = 1
            else:
                log.error("worker %d exited with %s; restarting it", index, code)
                time.sleep(RESTART_DELAY)
                children[index], started[index] = spawn(index), time.monotonic()
        if stopping and not children:
            return exit_code
        time.sleep(0.1)
