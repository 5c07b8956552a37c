"""A route: one provider endpoint with the state every call to it shares.

A route couples its limiter (requests/tokens per minute), its circuit breaker, the pause
a provider imposed with a 429's retry-after, whether a 401/403/404 showed it to be
misconfigured, and the quota the provider last reported in its rate-limit headers. All
calls share one route object, so a pause or an open breaker learnt by one call steers
every other call at once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .breaker import BreakerSnapshot, CircuitBreaker
from .hints import RateLimitHints
from .limiter import Limiter, LimiterSnapshot

__all__ = ["Route", "RouteSnapshot"]


@dataclass(frozen=True)
class RouteSnapshot:
    name: str
    limiter: LimiterSnapshot
    breaker: BreakerSnapshot
    paused_for: float
    disabled: str | None
    provider_quota: RateLimitHints | None = None


class Route:
    """Shared state of one provider endpoint. Methods take ``now``; none waits."""

    def __init__(
        self,
        name: str,
        limiter: Limiter,
        breaker: CircuitBreaker,
        *,
        attempt_timeout: float | None = None,
    ) -> None:
        self.name = name
        self.limiter = limiter
        self.breaker = breaker
        self.attempt_timeout = attempt_timeout
        self._lock = threading.Lock()
        self._paused_until = -math.inf
        self._disabled: str | None = None
        self._quota: RateLimitHints | None = None

    def paused_until(self) -> float:
        return self._paused_until

    def pause_until(self, until: float) -> None:
        # Concurrent 429s may report different retry-afters; the latest end wins, so
        # no caller shortens a pause another caller was told about.
        with self._lock:
            self._paused_until = max(self._paused_until, until)

    def observe(self, hints: RateLimitHints) -> None:
        """Remember what the provider last said about its quota (shown in snapshots)."""
        if not hints.empty:
            self._quota = hints

    @property
    def disabled(self) -> str | None:
        """Why the route is out of service for good (bad key, unknown model), or None."""
        return self._disabled

    def disable(self, reason: str) -> None:
        with self._lock:
            self._disabled = reason

    def enable(self) -> None:
        """Put a disabled route back in service, e.g. after its key was fixed."""
        with self._lock:
            self._disabled = None

    def snapshot(self, now: float) -> RouteSnapshot:
        return RouteSnapshot(
            name=self.name,
            limiter=self.limiter.snapshot(now),
            breaker=self.breaker.snapshot(now),
            paused_for=max(0.0, self._paused_until - now),
            disabled=self._disabled,
            provider_quota=self._quota,
        )

    def __repr__(self) -> str:
        return f"Route({self.name!r})"
