"""Background tasks that must never die silently: each failure is logged, counted, recovered.

A node runs work nobody awaits: heartbeats, the resync, expiry and pings; every broker's
reader, health check and reconnect loop; the store's writer. An exception ending one of
them would otherwise show only as "Task exception was never retrieved" at exit, long after
the node stopped doing that job (a Redis reader that died this way once left a node with no
live traffic and no word in the log). A Supervisor runs each such task, and when one raises
it logs the traceback, counts the failure under the task's name (read by `/metrics` as
`tidings_background_restarts_total{task=...}`), and then either starts the task again after
a backoff (0.1 s doubling to 5 s, back to 0.1 s once a run lasted a minute) or, when running
it again in place would be wrong (a reader bound to a connection that is now suspect), hands
the failure to its owner, which recovers its own way (a broker reconnects).

A task that returns has done its job and is not restarted; cancellation is never a failure.
Stopping is bounded: a task that swallows its cancellation (some client libraries do, inside
their own retry loops) is cancelled again until it ends or the deadline passes.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("tidings.supervision")

FIRST_DELAY = 0.1
MAX_DELAY = 5.0
HEALTHY_RUN = 60.0  # seconds a run must last for the backoff to start again from FIRST_DELAY
STOP_TIMEOUT = 3.0

FailureHandler = Callable[[BaseException], None]


class Supervisor:
    """Runs named background tasks; one Supervisor per owner (node, broker, store)."""

    def __init__(self) -> None:
        self.restarts: dict[str, int] = {}
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, name: str, run: Callable[[], Awaitable[None]], *,
              on_failure: FailureHandler | None = None) -> asyncio.Task:
        """Start `run()` as task `name`: restarted after a failure, or `on_failure` called.

        The returned task ends when `run()` returns, when it is cancelled, or (with
        `on_failure`) after its first failure.
        """
        # a fresh context: a task a session's call happened to start is not that session's
        # (its log lines would name it, and it would keep the session alive)
        task = asyncio.get_running_loop().create_task(
            self._supervise(name, run, on_failure), name=f"tidings-{name}",
            context=contextvars.Context(),
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def failed(self, name: str, exc: BaseException) -> None:
        """Count and log a failure that a library caught on our behalf (a message callback)."""
        self.restarts[name] = self.restarts.get(name, 0) + 1
        log.error("background task %s failed", name, exc_info=exc)

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]],
                         on_failure: FailureHandler | None) -> None:
        delay = FIRST_DELAY
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed(name, exc)
                if on_failure is not None:
                    on_failure(exc)
                    return
            if time.monotonic() - started >= HEALTHY_RUN:
                delay = FIRST_DELAY
            log.warning("restarting background task %s in %.1f s", name, delay)
            await asyncio.sleep(delay)
            delay = min(MAX_DELAY, delay * 2)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Cancel every task and wait for them, `timeout` seconds at most."""
        await cancel_and_wait(list(self._tasks), timeout)


async def cancel_and_wait(tasks: list[asyncio.Task], timeout: float = STOP_TIMEOUT) -> bool:
    """Cancel `tasks` and wait until they end; True if they all did within `timeout`.

    Cancels again every 0.1 s: a task whose cancellation was swallowed (asyncio.wait_for on
    Python 3.11 loses one that arrives just as the awaited call fails) gets another.
    """
    pending = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + timeout
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.warning("background tasks still running after %.1f s: %s", timeout,
                        sorted(task.get_name() for task in pending))
            return False
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.1, remaining))
    return True
