"""What calls stranded on a closed event loop hold, given back.

A loop closed with calls still in flight (``loop.close()`` without cancelling its tasks, a
notebook kernel's loop torn down, a worker thread's loop dropped) never resumes them.
Their coroutines are finalised whenever the garbage collector reaches them, if ever: an
SDK's connection pool may keep them alive for good. Until then a call would keep its
bulkhead slot, its breaker permit (a half-open probe's only place) and its limiter wait,
and every later call would find the route full.

So an async call registers, under its loop, how to give back what it holds; the engine
reclaims the holdings of every closed loop before each call and each snapshot. Giving
back is idempotent (a flow closed twice, an admission finished twice change nothing), so a
late finalisation of the same call is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator

from .._forks import on_fork_in_child

__all__ = ["Stranded"]

Release = Callable[[], None]


class Stranded:
    """The holdings of async calls in flight, by event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._held: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], Release]] = {}
        on_fork_in_child(self, Stranded._forget_inherited)

    def _forget_inherited(self) -> None:
        # A forked child has none of the parent's loops or calls: their holdings are the
        # parent's to give back, and the lock may have been held at the fork.
        self._lock = threading.Lock()
        self._held = {}

    @contextlib.contextmanager
    def holding(self, release: Release) -> Iterator[None]:
        """Register ``release`` under the running loop until the block ends."""
        key = next(self._ids)
        with self._lock:
            self._held[key] = (weakref.ref(asyncio.get_running_loop()), release)
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)

    def reclaim(self) -> int:
        """Give back what calls on closed loops hold; how many calls that was."""
        with self._lock:
            dead = [key for key, (loop, _) in self._held.items() if _closed(loop())]
            releases = [self._held.pop(key)[1] for key in dead]
        for release in releases:
            # A generator the garbage collector is finalising at this very moment is
            # "already executing"; its own cleanup gives everything back.
            with contextlib.suppress(ValueError):
                release()
        return len(releases)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)


def _closed(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is None or loop.is_closed()
