from __future__ import annotations

import asyncio
import threading

import pytest

from resilient_llm.clock import Clock, FakeClock, SystemClock


def test_fake_clock_sleeps_advance_time_and_are_recorded() -> None:
    clock = FakeClock(start=10.0)
    clock.sleep(1.5)
    asyncio.run(clock.asleep(2.5))
    clock.sleep(-1.0)  # a negative sleep is recorded but never moves time backwards
    assert clock.now() == 14.0
    assert clock.sleeps == [1.5, 2.5, -1.0]


def test_fake_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(-1)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_system_clock_is_monotonic_and_zero_sleeps_return_at_once() -> None:
    clock = SystemClock()
    first = clock.now()
    clock.sleep(0)
    asyncio.run(clock.asleep(0))
    assert clock.now() >= first


async def test_a_fake_timeout_ends_only_when_fake_time_reaches_it() -> None:
    clock = FakeClock()
    never = asyncio.Event()

    async def cut() -> None:
        async with clock.timeout(5):
            await never.wait()

    task = asyncio.create_task(cut())
    await asyncio.sleep(0)
    assert clock.deadlines() == [5.0]
    clock.advance(4.99)
    await asyncio.sleep(0)
    assert not task.done(), "real time and a short advance do not end it"
    await asyncio.to_thread(clock.advance, 0.01)  # from another thread, as a test would
    with pytest.raises(TimeoutError):
        await task
    assert clock.deadlines() == []


async def test_a_fake_timeout_already_due_cuts_at_once_and_a_finished_block_is_untouched() -> None:
    clock = FakeClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout(0):
            await asyncio.Event().wait()
    async with clock.timeout(1):
        pass
    clock.advance(2)  # the block has ended: nothing left to cut
    await asyncio.sleep(0)
    async with clock.timeout(None):
        await asyncio.sleep(0)
    assert clock.deadlines() == []


def test_a_fake_wait_ends_when_set_or_when_fake_time_reaches_it() -> None:
    clock = FakeClock()
    event = threading.Event()
    assert not clock.wait(event, 0)
    event.set()
    assert clock.wait(event, 10)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(clock.wait(threading.Event(), 3)))
    waiter.start()
    while clock.deadlines() != [3.0]:
        threading.Event().wait(0.001)
    clock.advance_to(3.0)
    waiter.join()
    assert results == [False]
    assert clock.deadlines() == []


async def test_system_clock_timeouts_and_waits_are_the_real_ones() -> None:
    clock = SystemClock()
    assert clock.wait(threading.Event(), 0) is False
    with pytest.raises(TimeoutError):
        async with clock.timeout(0):
            await asyncio.Event().wait()
    async with clock.timeout(None):
        await asyncio.sleep(0)
