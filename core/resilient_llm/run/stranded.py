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


class _Loop:
    """The holdings of the calls in flight on one loop."""

    __slots__ = ("calls", "ref")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ref = weakref.ref(loop)
        self.calls: dict[int, Release] = {}


class Stranded:
    """The holdings of async calls in flight, by event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        # By the loop's id: reclaiming looks at each loop once, not at each call. An id
        # whose loop is gone may be reused by a new loop: the old one's calls are stranded.
        self._loops: dict[int, _Loop] = {}
        self._orphans: list[Release] = []
        on_fork_in_child(self, Stranded._forget_inherited)

    def _forget_inherited(self) -> None:
        # A forked child has none of the parent's loops or calls: their holdings are the
        # parent's to give back, and the lock may have been held at the fork.
        self._lock = threading.Lock()
        self._loops = {}
        self._orphans = []

    @contextlib.contextmanager
    def holding(self, release: Release) -> Iterator[None]:
        """Register ``release`` under the running loop until the block ends."""
        key = next(self._ids)
        ident, held = self._register(key, release)
        try:
            yield
        finally:
            with self._lock:
                held.calls.pop(key, None)
                if not held.calls and self._loops.get(ident) is held:
                    del self._loops[ident]

    def _register(self, key: int, release: Release) -> tuple[int, _Loop]:
        # Apart, so that the call's frame keeps no reference to its loop.
        loop = asyncio.get_running_loop()
        ident = id(loop)
        with self._lock:
            held = self._loops.get(ident)
            if held is None or held.ref() is not loop:
                if held is not None:
                    self._orphans.extend(held.calls.values())
                held = self._loops[ident] = _Loop(loop)
            held.calls[key] = release
        return ident, held

    def reclaim(self) -> int:
        """Give back what calls on closed loops hold; how many calls that was."""
        with self._lock:
            releases, self._orphans = self._orphans, []
            for key, held in list(self._loops.items()):
                if _closed(held.ref()):
                    del self._loops[key]
                    releases.extend(held.calls.values())
                    held.calls.clear()
        for release in releases:
            # A generator the garbage collector is finalising at this very moment is
            # "already executing"; its own cleanup gives everything back.
            with contextlib.suppress(ValueError):
                release()
        return len(releases)

    def __len__(self) -> int:
        with self._lock:
            return len(self._orphans) + sum(len(held.calls) for held in self._loops.values())


def _closed(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is None or loop.is_closed()
