"""Fake time for tests that drive real servers: moved exactly when the engine waits."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from resilient_llm import FakeClock

__all__ = ["aeventually", "cutting", "eventually"]


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


def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Wait for a state other threads or the server reach (a hung request logged once its
    client leaves, calls queued behind a bulkhead). Polls; the timeout only tells a state
    never reached from a slow one, and is never an assertion on elapsed time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


async def aeventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """:func:`eventually` on an event loop: polls without blocking it, so the tasks whose
    state is awaited keep running."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
