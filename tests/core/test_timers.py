"""The timers a sync hedge starts from: one thread per clock, waiting on that clock.

Each test runs on its own FakeClock, whose ``deadlines()`` lists the thread's wait: time is
moved only once the thread waits for the moment asked, so nothing here depends on how
fast the machine's threads run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Generator

import pytest

from resilient_llm.clock import FakeClock, SystemClock
from resilient_llm.flow.effects import Wait
from resilient_llm.run.drivers import Abandoned, SyncRun
from resilient_llm.run.timers import Timer, arm, disarm

from ..timing import eventually


def test_a_timer_fires_once_the_clock_reaches_its_moment() -> None:
    clock = FakeClock()
    fired: list[tuple[Timer, float]] = []
    timer = arm(clock, 2.0, lambda t: fired.append((t, clock.now())))
    assert eventually(lambda: clock.deadlines() == [2.0])
    clock.advance(1.0)
    assert fired == []
    clock.advance(1.0)
    assert eventually(lambda: fired == [(timer, 2.0)])
    assert eventually(lambda: clock.deadlines() == [])
    disarm(timer)  # after it fired: nothing to do


def test_a_disarmed_timer_never_fires_and_its_wait_ends() -> None:
    clock = FakeClock()
    fired: list[Timer] = []
    timer = arm(clock, 1.0, fired.append)
    assert eventually(lambda: clock.deadlines() == [1.0])
    disarm(timer)
    # A fake clock's thread is told at once: the wait a test would move time to is gone.
    assert eventually(lambda: clock.deadlines() == [])
    clock.advance(5.0)
    kept = arm(clock, 6.0, fired.append)
    assert eventually(lambda: clock.deadlines() == [6.0])
    clock.advance(1.0)
    assert eventually(lambda: fired == [kept])


def test_an_earlier_timer_is_waited_for_first() -> None:
    clock = FakeClock()
    fired: list[str] = []
    arm(clock, 5.0, lambda _: fired.append("late"))
    assert eventually(lambda: clock.deadlines() == [5.0])
    arm(clock, 1.0, lambda _: fired.append("early"))
    assert eventually(lambda: clock.deadlines() == [1.0])
    clock.advance(1.0)
    assert eventually(lambda: fired == ["early"])
    assert eventually(lambda: clock.deadlines() == [5.0])
    clock.advance(4.0)
    assert eventually(lambda: fired == ["early", "late"])


def test_timers_at_the_same_moment_all_fire() -> None:
    clock = FakeClock()
    fired: list[int] = []
    for i in range(3):
        arm(clock, 1.0, functools.partial(lambda i, _: fired.append(i), i))
    assert eventually(lambda: clock.deadlines() == [1.0])
    clock.advance(1.0)
    assert eventually(lambda: sorted(fired) == [0, 1, 2])


def test_each_clock_has_its_own_time() -> None:
    first, second = FakeClock(), FakeClock()
    fired: list[str] = []
    arm(first, 1.0, lambda _: fired.append("first"))
    arm(second, 1.0, lambda _: fired.append("second"))
    assert eventually(lambda: first.deadlines() == [1.0] and second.deadlines() == [1.0])
    second.advance(1.0)
    assert eventually(lambda: fired == ["second"])
    assert first.deadlines() == [1.0]
    first.advance(1.0)
    assert eventually(lambda: fired == ["second", "first"])


def test_a_failing_action_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    seen: list[BaseException] = []
    monkeypatch.setattr("sys.excepthook", lambda kind, error, trace: seen.append(error))
    fired: list[str] = []

    def fail(_: Timer) -> None:
        raise RuntimeError("broken action")

    arm(clock, 1.0, fail)
    arm(clock, 2.0, lambda _: fired.append("after"))
    assert eventually(lambda: clock.deadlines() == [1.0])
    clock.advance(1.0)
    assert eventually(lambda: len(seen) == 1 and clock.deadlines() == [2.0])
    clock.advance(1.0)
    assert eventually(lambda: fired == ["after"])


def test_an_abandoned_run_stops_sleeping_at_once() -> None:
    """A raced primary runs on the caller's thread: a real-clock sleep between its attempts
    (a backoff, a limiter's wait) ends when the hedge wins, not an hour later."""

    sleeping = threading.Event()

    def flow() -> Generator[Wait, float, None]:
        sleeping.set()
        yield Wait(3600.0, "backoff", "route")
        # The next effect is never acted on: the abandoned run stops before it.
        yield Wait(3600.0, "backoff", "route")

    run: SyncRun[None] = SyncRun(flow(), SystemClock())  # type: ignore[arg-type]
    raised: list[BaseException] = []

    def drive() -> None:
        try:
            run.start(lambda call: (None, None, None))
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=drive)
    thread.start()
    assert sleeping.wait(timeout=30.0)
    run.abandon()
    thread.join(timeout=30.0)  # only tells "never" from "slow"; the sleep is an hour
    assert not thread.is_alive()
    assert [type(e) for e in raised] == [Abandoned]
