"""Adaptive limits: what the provider says is left holds the route back until it refills.

Configured limits are a guess made in advance; a provider's rate-limit headers say what
is actually left (``x-ratelimit-remaining-requests`` with ``x-ratelimit-reset-requests``,
``anthropic-ratelimit-tokens-remaining`` with its reset, ...). A :class:`ProviderCap`
keeps the latest of them: no more requests (or tokens) are admitted than the provider
said remain, plus what it refills since. Providers report the time until the quota is
*fully* replenished and refill it gradually, so with the limit known the refill is taken
as linear over that time (the first slot frees long before the reset); without it, the
route waits for the reset. After the reset the route relaxes back to its configured
limits. A quota that is shared with other clients, or lower than configured, then costs
waits instead of 429s. A route configured without a limit adopts the limit the headers
state (``x-ratelimit-limit-requests``...), as requests per minute.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .._forks import renew_locks
from .hints import RateLimitHints

__all__ = ["ProviderCap"]


@dataclass
class _Left:
    amount: float  # what was left at ``since``, less what was admitted since
    since: float
    until: float  # fully replenished
    rate: float  # refill per second; 0 when the limit is unknown

    def available(self, now: float) -> float:
        return self.amount + self.rate * (now - self.since)

    def ready(self, need: float, now: float) -> float | None:
        """When ``need`` is available; None if now."""
        if now >= self.until or self.available(now) >= need:
            return None
        if self.rate <= 0:
            return self.until
        return min(self.until, now + (need - self.available(now)) / self.rate)


def _left(
    remaining: int | None, reset: float | None, limit: int | None, now: float
) -> _Left | None:
    if remaining is None or reset is None:
        return None
    rate = (limit - remaining) / reset if limit and reset > 0 and limit > remaining else 0.0
    return _Left(float(remaining), now, now + reset, rate)


class ProviderCap:
    """The provider's own account of a route's remaining quota. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        renew_locks(self, "_lock")
        self._requests: _Left | None = None
        self._tokens: _Left | None = None

    def observe(self, hints: RateLimitHints, now: float) -> None:
        """Take a response's headers, received at ``now``, as the latest word."""
        requests = _left(hints.remaining_requests, hints.reset_requests, hints.limit_requests, now)
        tokens = _left(hints.remaining_tokens, hints.reset_tokens, hints.limit_tokens, now)
        with self._lock:
            self._requests = requests or self._requests
            self._tokens = tokens or self._tokens

    def not_before(self, tokens: int, now: float) -> float | None:
        """The earliest time a request of ``tokens`` fits what is left; None: any time."""
        with self._lock:
            at = -math.inf
            for left, need in ((self._requests, 1), (self._tokens, tokens)):
                ready = None if left is None else left.ready(need, now)
                if ready is not None:
                    at = max(at, ready)
            return None if at <= now else at

    def consume(self, tokens: int, at: float) -> None:
        """A request of ``tokens`` was admitted at ``at``: it uses what is left before a reset."""
        with self._lock:
            for left, used in ((self._requests, 1), (self._tokens, tokens)):
                if left is not None and at < left.until:
                    left.amount -= used
