from __future__ import annotations

import asyncio

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
