"""A retry budget per route: retries may add only a fraction to the requests sent.

Per-call retry limits bound one call, not a fleet: when a provider is down, every call
retries it, and the load on the sick provider is multiplied by ``1 + max_retries`` just
when it can least take it. As in Envoy, retries to a route are allowed only while the
retries of the last ``window`` seconds stay under ``ratio`` of its first attempts (and
always up to ``minimum``, so a quiet route can still retry). A call denied a retry fails
over instead.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from .._forks import renew_locks
from .backoff import _count, _real

__all__ = ["RetryBudget", "RetryLedger"]


@dataclass(frozen=True, init=False)
class RetryBudget:
    """Retries per route within ``window`` seconds: at most ``max(minimum, ratio * requests)``."""

    ratio: float
    minimum: int
    window: float

    def __init__(
        self, *, ratio: float = 0.2, minimum: int = 3, window: float | timedelta = 10.0
    ) -> None:
        object.__setattr__(
            self,
            "ratio",
            _real("RetryBudget.ratio", ratio, ">= 0", lambda v: v >= 0, duration=False),
        )
        object.__setattr__(self, "minimum", _count("RetryBudget.minimum", minimum, 0))
        object.__setattr__(
            self,
            "window",
            _real("RetryBudget.window", window, "> 0", lambda v: v > 0, duration=True),
        )


class RetryLedger:
    """One route's recent first attempts and retries, against a :class:`RetryBudget`."""

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        renew_locks(self, "_lock")
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def note_request(self, now: float) -> None:
        with self._lock:
            self._prune(now)
            self._requests.append(now)

    def allow_retry(self, now: float) -> bool:
        """Take one retry from the budget if there is one left."""
        with self._lock:
            self._prune(now)
            allowed = max(self.budget.minimum, self.budget.ratio * len(self._requests))
            if len(self._retries) + 1 > allowed:
                return False
            self._retries.append(now)
            return True

    def counts(self, now: float) -> tuple[int, int]:
        """(first attempts, retries) within the window at ``now``."""
        with self._lock:
            self._prune(now)
            return len(self._requests), len(self._retries)

    def _prune(self, now: float) -> None:
        horizon = now - self.budget.window
        for times in (self._requests, self._retries):
            while times and times[0] <= horizon:
                times.popleft()
