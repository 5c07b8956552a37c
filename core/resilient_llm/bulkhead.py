"""A bulkhead: at most ``limit`` calls in flight on a route, the rest queued in order.

A slow provider otherwise soaks up every worker thread, connection and task of the
application; with a bulkhead it holds at most ``limit`` of them and later calls wait their
turn (first come, first served) instead of piling on, within their own deadline. Callers
may be threads and tasks of any event loops at once, so waiters are woken the way each
waits: a thread by an ``Event``, a task through its loop.

A slot is handed straight from the leaving holder to the first waiter, so no newcomer
can overtake the queue between a release and the waiter's wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass

from ._forks import on_fork_in_child

__all__ = ["Bulkhead", "BulkheadSnapshot"]


class _Waiter:
    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.granted = False
        self.loop = loop
        self.future = future
        self.event = threading.Event() if loop is None else None

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()
        elif self.loop is not None and self.future is not None:
            # A closed loop raises RuntimeError: nobody waits there any more.
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
        self._held = 0
        self._waiters: deque[_Waiter] = deque()
        on_fork_in_child(self, Bulkhead._forget_inherited)

    def _forget_inherited(self) -> None:
        # In a forked child the calls holding or awaiting a slot are the parent's threads
        # and tasks, which do not exist there: the child starts with every slot free.
        self._lock = threading.Lock()
        self._held = 0
        self._waiters = deque()

    def try_enter(self) -> bool:
        """Take a slot if one is free and nobody queues; never waits."""
        with self._lock:
            return self._try_now()

    def _try_now(self) -> bool:
        # Under the lock. Queued waiters come first, even if a slot looks free.
        if self._held < self.limit and not self._waiters:
            self._held += 1
            return True
        return False

    def enter(self, timeout: float) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds; False if none came in time."""
        with self._lock:
            if self._try_now():
                return True
            waiter = _Waiter()
            self._waiters.append(waiter)
        assert waiter.event is not None
        waiter.event.wait(max(0.0, timeout))
        return self._settle(waiter)

    async def aenter(self, timeout: float) -> bool:
        """The async twin of :meth:`enter`; cancelling the task gives up its place."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._try_now():
                return True
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await asyncio.shield(waiter.future)
        except TimeoutError:
            pass
        except BaseException:
            if self._settle(waiter):
                self.leave()  # granted as we were cancelled: pass the slot on
            raise
        return self._settle(waiter)

    def _settle(self, waiter: _Waiter) -> bool:
        """Whether ``waiter`` got its slot; if not, take it out of the queue."""
        with self._lock:
            if waiter.granted:
                return True
            self._waiters.remove(waiter)
            return False

    def leave(self) -> None:
        """Give a slot back: to the first waiter if there is one."""
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.granted = True
            else:
                self._held -= 1
                return
        waiter.wake()

    def snapshot(self) -> BulkheadSnapshot:
        with self._lock:
            return BulkheadSnapshot(self.limit, self._held, len(self._waiters))

    def __repr__(self) -> str:
        return f"Bulkhead(limit={self.limit})"
