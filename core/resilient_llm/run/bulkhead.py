"""A bulkhead: at most ``limit`` calls in flight on a route, the rest queued in order.

A slow provider otherwise soaks up every worker thread, connection and task of the
application; with a bulkhead it holds at most ``limit`` of them and later calls wait their
turn (first come, first served) instead of piling on, within their own deadline. Callers
may be threads and tasks of any event loops at once, so waiters are woken the way each
waits: a thread by an ``Event``, a task through its loop.

A slot is handed straight from the leaving holder to the first waiter, so no newcomer
can overtake the queue between a release and the waiter's wake-up. Whatever ends a wait
(its timeout, a cancelled task, an exception raised into a waiting thread such as
``KeyboardInterrupt`` or a signal handler's timeout, a coroutine closed with its loop), the
waiter leaves the queue, and a slot handed to it meanwhile passes on: no slot is lost.

Waits are measured on the caller's :class:`~resilient_llm.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass

from .._forks import on_fork_in_child
from ..clock import Clock, SystemClock

__all__ = ["Bulkhead", "BulkheadSnapshot"]

_SYSTEM = SystemClock()


class _Waiter:
    """One queued caller. ``state``: queued, granted (a slot is handed over but the caller
    has not taken it yet), taken, or dropped (gone without a slot)."""

    __slots__ = ("event", "future", "loop", "state")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.state = "queued"
        self.loop = loop
        self.future = future
        self.event = threading.Event() if loop is None else None

    @property
    def stranded(self) -> bool:
        """A task whose loop was closed: it will never take what it waits for."""
        return self.loop is not None and self.loop.is_closed()

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()
        elif self.loop is not None and self.future is not None:
            # A closed loop raises RuntimeError: the slot is reclaimed by the next prune.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True)
class BulkheadSnapshot:
    limit: int
    in_flight: int
    queued: int


class Bulkhead:
    """At most ``limit`` holders; FIFO for threads and tasks alike."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._held = 0  # slots taken or handed over
        self._waiters: deque[_Waiter] = deque()
        self._granted: list[_Waiter] = []  # handed over, not yet taken
        on_fork_in_child(self, Bulkhead._forget_inherited)

    def _forget_inherited(self) -> None:
        # In a forked child the calls holding or awaiting a slot are the parent's threads
        # and tasks, which do not exist there: the child starts with every slot free.
        self._lock = threading.Lock()
        self._held = 0
        self._waiters = deque()
        self._granted = []

    def try_enter(self) -> bool:
        """Take a slot if one is free and nobody queues; never waits."""
        with self._lock:
            woken = self._prune()
            entered = self._try_now()
        _wake(woken)
        return entered

    def _try_now(self) -> bool:
        # Under the lock. Queued waiters come first, even if a slot looks free.
        if self._held < self.limit and not self._waiters:
            self._held += 1
            return True
        return False

    def enter(self, timeout: float, clock: Clock = _SYSTEM) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds; False if none came in time."""
        with self._lock:
            if self._try_now():
                return True
            waiter = _Waiter()
            self._waiters.append(waiter)
        assert waiter.event is not None
        try:
            clock.wait(waiter.event, max(0.0, timeout))
        except BaseException:
            self._abandon(waiter)
            raise
        return self._settle(waiter)

    async def aenter(self, timeout: float, clock: Clock = _SYSTEM) -> bool:
        """The async twin of :meth:`enter`; cancelling the task gives up its place."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._try_now():
                return True
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            async with clock.timeout(max(0.0, timeout)):
                await asyncio.shield(waiter.future)
        except TimeoutError:
            pass
        except BaseException:
            self._abandon(waiter)
            raise
        return self._settle(waiter)

    def _abandon(self, waiter: _Waiter) -> None:
        """The waiter was interrupted: leave the queue, or pass on a slot granted meanwhile."""
        if self._settle(waiter):
            self.leave()

    def _settle(self, waiter: _Waiter) -> bool:
        """Whether ``waiter`` got its slot (now taken); if not, it leaves the queue."""
        with self._lock:
            if waiter.state == "granted":
                waiter.state = "taken"
                self._granted.remove(waiter)
                return True
            if waiter.state == "queued":
                self._waiters.remove(waiter)
            waiter.state = "dropped"
            return False

    def leave(self) -> None:
        """Give a slot back: to the first waiter if there is one."""
        with self._lock:
            woken = self._pass_on()
        _wake(woken)

    def _pass_on(self) -> list[_Waiter]:
        """Under the lock: a freed slot goes to the first live waiter, or back to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.stranded:
                waiter.state = "dropped"
                continue
            waiter.state = "granted"
            self._granted.append(waiter)
            return [waiter]
        self._held -= 1
        return []

    def _prune(self) -> list[_Waiter]:
        """Under the lock: forget tasks of closed loops, queued or handed a slot they can
        never take (their slots pass on); the waiters to wake."""
        woken: list[_Waiter] = []
        for waiter in [w for w in self._waiters if w.stranded]:
            self._waiters.remove(waiter)
            waiter.state = "dropped"
        for waiter in [w for w in self._granted if w.stranded]:
            self._granted.remove(waiter)
            waiter.state = "dropped"
            woken += self._pass_on()
        return woken

    def snapshot(self) -> BulkheadSnapshot:
        with self._lock:
            woken = self._prune()
            snapshot = BulkheadSnapshot(self.limit, self._held, len(self._waiters))
        _wake(woken)
        return snapshot

    def __repr__(self) -> str:
        return f"Bulkhead(limit={self.limit})"


def _wake(waiters: list[_Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()
