"""Fake time for tests that drive real servers: moved exactly when the engine waits."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from resilient_llm import FakeClock

__all__ = ["cutting"]


@contextlib.contextmanager
def cutting(clock: FakeClock, arrivals: Callable[[], int]) -> Iterator[list[float]]:
    """While the block runs, each time ``arrivals()`` grows (one more request the test
    means to cut has reached the chaos server), move ``clock`` to the earliest deadline
    the engine armed (an attempt's timeout, a stream's stall limit, a hedge's delay).

    A hang is then cut exactly once it is known to hang, never by real time racing a busy
    machine. The list yielded gets each moment the clock was moved to.
    """
    stop = threading.Event()
    moved: list[float] = []

    def run() -> None:
        while not stop.is_set():
            deadlines = clock.deadlines()
            if arrivals() > len(moved) and deadlines:
                moved.append(deadlines[0])
                clock.advance_to(deadlines[0])
            else:
                stop.wait(0.002)

    thread = threading.Thread(target=run, name="fake-clock-cutter", daemon=True)
    thread.start()
    try:
        yield moved
    finally:
        stop.set()
        thread.join()
