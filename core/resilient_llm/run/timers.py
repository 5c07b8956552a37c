"""Timers on an engine's clock: one thread per clock runs each action at its moment.

A sync call that may be hedged arms a timer when its attempt starts and disarms it at the
attempt's first sign of life, and nearly every call disarms it: arming and disarming must
cost next to nothing, and no thread may be started per call. So every race on a clock
shares one thread, which waits on that clock (a :class:`~resilient_llm.clock.FakeClock`
lists the wait in ``deadlines()``, where tests find the moment to move time to) for the
earliest moment armed.

A timer disarmed is only marked. A real clock's thread wakes at that moment and finds
nothing due, rather than being woken at the end of every call; a fake clock's thread is
woken at once, so that ``deadlines()`` lists only moments still armed. The thread ends
after a while with nothing armed; a forked child starts its own.
"""

from __future__ import annotations

import heapq
import sys
import threading
from collections.abc import Callable

from .._forks import on_fork_in_child
from ..clock import Clock, FakeClock

__all__ = ["Timer", "arm", "disarm"]

# Real seconds an idle thread waits for a timer to be armed before it ends.
_LINGER = 10.0
# Marked timers kept in a heap before it is rebuilt without them (when they are also
# the greater part of it), so a busy clock's heap stays small.
_COMPACT = 256

_ARMED, _DISARMED, _FIRED = 0, 1, 2

_lock = threading.Lock()
_by_clock: dict[int, _Timers] = {}


class Timer:
    """An action armed for a moment of one clock."""

    __slots__ = ("_timers", "action", "moment", "state")

    def __init__(self, moment: float, action: Callable[[Timer], None], timers: _Timers) -> None:
        self.moment = moment
        self.action = action
        self.state = _ARMED
        self._timers = timers

    def __lt__(self, other: Timer) -> bool:
        return self.moment < other.moment


def arm(clock: Clock, moment: float, action: Callable[[Timer], None]) -> Timer:
    """Call ``action(timer)`` on the clock's thread once ``clock`` reaches ``moment``."""
    with _lock:
        # Keyed by id: an entry holds its clock, so the id is not reused while it lives.
        timers = _by_clock.get(id(clock))
        new = timers is None
        if timers is None:
            timers = _by_clock[id(clock)] = _Timers(clock)
        timer = Timer(moment, action, timers)
        heapq.heappush(timers.heap, timer)
        if timers.target is None or moment < timers.target:
            timers.wake.set()
    if new:
        try:
            timers.thread.start()
        except BaseException:
            with _lock:
                _by_clock.pop(id(clock), None)
            raise
    return timer


def disarm(timer: Timer) -> None:
    """The action will not be called (unless it already is being)."""
    with _lock:
        if timer.state != _ARMED:
            return
        timer.state = _DISARMED
        # Left in the heap until its moment: it must not keep its call's state alive.
        timer.action = _nothing
        timers = timer._timers
        timers.disarmed += 1
        if timers.eager and timer.moment == timers.target:
            timers.wake.set()
        elif timers.disarmed > _COMPACT and 2 * timers.disarmed > len(timers.heap):
            timers.heap = [t for t in timers.heap if t.state == _ARMED]
            heapq.heapify(timers.heap)
            timers.disarmed = 0


def _nothing(timer: Timer) -> None:
    pass


class _Timers:
    """The timers of one clock and the thread that waits for them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.heap: list[Timer] = []
        self.disarmed = 0
        self.wake = threading.Event()
        # The moment the thread waits for (None: none).
        self.target: float | None = None
        self.eager = isinstance(clock, FakeClock)
        self.thread = threading.Thread(target=self._run, name="resilient-llm-timers", daemon=True)

    def _run(self) -> None:
        clock = self.clock
        reached: float | None = None
        while True:
            due: list[Timer] = []
            with _lock:
                self.wake.clear()  # under the lock, so an arm made after the look is seen
                now = clock.now()
                # A wait the clock ended has reached its moment, whatever the rounding
                # of the clock's own arithmetic says.
                if reached is not None and reached > now:
                    now = reached
                heap = self.heap
                while heap and (heap[0].state != _ARMED or heap[0].moment <= now):
                    timer = heapq.heappop(heap)
                    if timer.state == _DISARMED:
                        self.disarmed -= 1
                    else:
                        timer.state = _FIRED
                        due.append(timer)
                target = self.target = heap[0].moment if heap else None
            reached = None
            for timer in due:
                try:
                    timer.action(timer)
                except Exception:  # one action's failure must not stop every other's
                    sys.excepthook(*sys.exc_info())
            if due:
                continue
            if target is not None:
                if not clock.wait(self.wake, target - clock.now()):
                    reached = target
            elif not self.wake.wait(_LINGER):
                with _lock:
                    if not self.heap and not self.wake.is_set():
                        if _by_clock.get(id(clock)) is self:
                            del _by_clock[id(clock)]
                        return


def _forget_inherited(module: object) -> None:
    # A forked child has none of the parent's threads, nor its calls waiting on them.
    global _lock
    _lock = threading.Lock()
    _by_clock.clear()


on_fork_in_child(sys.modules[__name__], _forget_inherited)
