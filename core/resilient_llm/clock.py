"""Time, injected.

Every decision in the engine takes ``now`` as an argument; only the drivers read a clock
or sleep. Tests hand the drivers a :class:`FakeClock`, whose sleeps advance time at once,
so no test waits on the wall clock and every timing assertion is exact.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock that can also wait.

    ``now()`` is in seconds on an arbitrary origin; only differences are meaningful.
    """

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic`` and the real sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        # Always yield to the loop, even for zero, so a tight retry loop stays cancellable.
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock for tests: sleeping advances time instantly and is recorded.

    ``sleeps`` lists every requested sleep in order, so a test can assert the exact
    schedule (backoff delays, limiter waits) without measuring anything.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"FakeClock cannot go backwards (advance by {seconds!r})")
        self._now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
        # Still a real suspension point, so cancellation and task interleaving behave
        # as they would with a real sleep.
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
