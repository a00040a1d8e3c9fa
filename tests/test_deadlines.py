import asyncio

from tidings.deadlines import Deadlines


async def test_a_wait_still_open_at_its_bound_is_expired():
    deadlines = Deadlines(resolution=0.01)
    future = asyncio.get_running_loop().create_future()
    expired = asyncio.Event()
    deadlines.add(0.05, future, expired.set)
    await asyncio.wait_for(expired.wait(), 5)


async def test_a_wait_that_ended_in_time_is_not_expired():
    deadlines = Deadlines(resolution=0.01)
    loop = asyncio.get_running_loop()
    done, late = loop.create_future(), loop.create_future()
    told: list[str] = []
    deadlines.add(0.05, done, lambda: told.append("done"))
    deadlines.add(0.05, late, lambda: told.append("late"))
    done.set_result(None)
    await asyncio.sleep(0.2)
    assert told == ["late"]


async def test_a_shorter_bound_added_later_expires_first():
    deadlines = Deadlines(resolution=0.01)
    loop = asyncio.get_running_loop()
    told: list[str] = []
    first = asyncio.Event()
    deadlines.add(5.0, loop.create_future(), lambda: told.append("long"))
    deadlines.add(0.05, loop.create_future(), lambda: (told.append("short"), first.set()))
    await asyncio.wait_for(first.wait(), 2)
    assert told == ["short"]
    deadlines.cancel()


async def test_cancel_forgets_every_wait():
    deadlines = Deadlines(resolution=0.01)
    told: list[str] = []
    deadlines.add(0.02, asyncio.get_running_loop().create_future(), lambda: told.append("x"))
    deadlines.cancel()
    await asyncio.sleep(0.1)
    assert told == []
