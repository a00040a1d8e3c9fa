"""The supervisor: failures logged, counted, restarted with backoff or handed to the owner."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace

from tidings import supervision
from tidings.logs import current_session
from tidings.supervision import Supervisor, cancel_and_wait


async def test_a_failing_task_is_counted_and_restarted_with_growing_pauses(monkeypatch, caplog):
    monkeypatch.setattr(supervision, "FIRST_DELAY", 0.05)
    runs: list[float] = []
    done = asyncio.Event()

    async def job() -> None:
        runs.append(time.monotonic())
        if len(runs) < 4:
            raise RuntimeError(f"failure {len(runs)}")
        done.set()

    supervisor = Supervisor()
    supervisor.spawn("job", job)
    await asyncio.wait_for(done.wait(), 5)
    assert supervisor.restarts == {"job": 3}
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert expected <= gap < expected + 0.1
    assert "background task job failed" in caplog.text and "failure 3" in caplog.text


async def test_a_task_with_an_owner_is_handed_back_not_restarted():
    handed: list[BaseException] = []
    runs = 0

    async def reader() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("bad reply")

    supervisor = Supervisor()
    task = supervisor.spawn("reader", reader, on_failure=handed.append)
    await asyncio.wait_for(task, 2)
    assert runs == 1 and [str(e) for e in handed] == ["bad reply"]
    assert supervisor.restarts == {"reader": 1}


async def test_a_task_that_returns_or_is_cancelled_is_not_a_failure():
    supervisor = Supervisor()

    async def quick() -> None:
        return

    await supervisor.spawn("quick", quick)
    forever = supervisor.spawn("forever", lambda: asyncio.sleep(3600))
    await asyncio.sleep(0)
    await supervisor.stop()
    assert forever.cancelled() and supervisor.restarts == {}


async def test_stopping_cancels_again_a_task_that_swallowed_its_cancellation():
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while cancels < 3:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels += 1  # as a library retry loop that lost the cancellation would

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], timeout=2)
    assert cancels == 3


async def test_stopping_gives_up_on_a_task_that_never_ends(caplog):
    released = asyncio.Event()

    async def immortal() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()

    task = asyncio.create_task(immortal())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert not await cancel_and_wait([task], timeout=0.3)
    assert time.monotonic() - started < 0.6 and "still running" in caplog.text
    released.set()
    await task


async def test_a_task_a_session_started_is_not_that_sessions():
    """Its log lines must not name the session, and it must not keep the session alive."""
    supervisor = Supervisor()
    seen = []

    async def background() -> None:
        seen.append(current_session.get())

    token = current_session.set(SimpleNamespace(client="c1", user="ann"))
    try:
        await supervisor.spawn("background", background)
    finally:
        current_session.reset(token)
    assert seen == [None]
