"""Time, injected.

Every decision in the engine takes ``now`` as an argument; only the drivers read a clock
or wait, and every wait they make goes through the clock: sleeps, an attempt's timeout, a
stream's first-chunk and idle limits, a bulkhead queue, a hedge's delay. Tests hand the
engine a :class:`FakeClock`: its sleeps advance time at once, and its timeouts and waits
end only when fake time reaches them, so no test waits on the wall clock and no outcome
depends on how busy the machine is.

What the clock cannot cut: a blocking SDK read (``chat``, ``stream``) waits in real
seconds, bounded by the attempt's time left as the clock reads it (see
:mod:`resilient_llm._watch`); a fake clock that stands still never cuts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock that can also wait.

    ``now()`` is in seconds on an arbitrary origin; only differences are meaningful.
    ``wait(event, timeout)`` blocks until ``event`` is set or ``timeout`` seconds of this
    clock pass, and says whether the event was set. ``timeout(seconds)`` is an async
    context manager that cuts its block with ``TimeoutError`` after ``seconds`` of this
    clock (None: no limit), as ``asyncio.timeout`` does on the loop's clock.
    """

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool: ...

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]: ...


class SystemClock:
    """The real clock: ``time.monotonic``, the real sleeps and ``asyncio.timeout``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        # Always yield to the loop, even for zero, so a tight retry loop stays cancellable.
        await asyncio.sleep(max(seconds, 0.0))

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(None if timeout is None else max(timeout, 0.0))

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(None if seconds is None else max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


# How often a thread waiting on a FakeClock looks whether fake time has reached its
# deadline. Only the moment it notices depends on this, never the outcome.
_POLL = 0.002


class FakeClock:
    """A clock for tests: sleeping advances time instantly and is recorded; timeouts and
    waits end when fake time reaches them, whoever moves it.

    ``sleeps`` lists every requested sleep in order, so a test can assert the exact
    schedule (backoff delays, limiter waits) without measuring anything. ``deadlines()``
    lists the timeouts and waits armed now, so a test can move time to the next one
    exactly when the engine is waiting on it. ``advance`` may be called from any thread.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self.sleeps: list[float] = []
        self._guard = threading.Lock()
        self._timers: list[_FakeTimeout] = []
        self._waits: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"FakeClock cannot go backwards (advance by {seconds!r})")
        with self._guard:
            self._now += seconds
            due = [t for t in self._timers if t.deadline <= self._now]
            self._timers = [t for t in self._timers if t.deadline > self._now]
        for timer in due:
            timer.fire()

    def advance_to(self, moment: float) -> None:
        """Move time forward to ``moment`` (no-op if already there)."""
        self.advance(max(0.0, moment - self._now))

    def deadlines(self) -> list[float]:
        """When each timeout and wait armed now would end, earliest first."""
        with self._guard:
            return sorted([t.deadline for t in self._timers] + self._waits)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
        # Still a real suspension point, so cancellation and task interleaving behave
        # as they would with a real sleep.
        await asyncio.sleep(0)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if timeout is None:
            return event.wait()
        deadline = self._now + max(timeout, 0.0)
        with self._guard:
            self._waits.append(deadline)
        try:
            while not event.is_set():
                if self._now >= deadline:
                    return False
                event.wait(_POLL)
            return True
        finally:
            with self._guard:
                self._waits.remove(deadline)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return _FakeTimeout(self, seconds)

    def _arm(self, timer: _FakeTimeout) -> bool:
        """Register ``timer``; False if it is already due."""
        with self._guard:
            if timer.deadline <= self._now:
                return False
            self._timers.append(timer)
            return True

    def _disarm(self, timer: _FakeTimeout) -> None:
        with self._guard, contextlib.suppress(ValueError):
            self._timers.remove(timer)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"


class _FakeTimeout:
    """``asyncio.timeout`` whose expiry is decided by a :class:`FakeClock`: the real
    timeout is armed with no deadline and rescheduled to "now" when fake time is up."""

    def __init__(self, clock: FakeClock, seconds: float | None) -> None:
        self._clock = clock
        self._seconds = seconds
        self.deadline = 0.0
        self._inner = asyncio.timeout(None)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> _FakeTimeout:
        await self._inner.__aenter__()
        if self._seconds is not None:
            self._loop = asyncio.get_running_loop()
            self.deadline = self._clock.now() + max(self._seconds, 0.0)
            if not self._clock._arm(self):
                self._inner.reschedule(self._loop.time())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._clock._disarm(self)
        await self._inner.__aexit__(kind, error, traceback)

    def fire(self) -> None:
        """Expire from any thread; a loop already closed has nobody left to cut."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._expire)

    def _expire(self) -> None:
        assert self._loop is not None
        # RuntimeError: the block already ended (the timeout is no longer entered).
        with contextlib.suppress(RuntimeError):
            if not self._inner.expired():
                self._inner.reschedule(self._loop.time())
