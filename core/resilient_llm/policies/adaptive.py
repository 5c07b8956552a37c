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
from .quota import split

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
        # requests, total tokens, input tokens, output tokens (Anthropic counts them apart)
        self._left: list[_Left | None] = [None, None, None, None]

    def observe(self, hints: RateLimitHints, now: float) -> None:
        """Take a response's headers, received at ``now``, as the latest word."""
        h = hints
        said = [
            _left(h.remaining_requests, h.reset_requests, h.limit_requests, now),
            _left(h.remaining_tokens, h.reset_tokens, h.limit_tokens, now),
            _left(h.remaining_input_tokens, h.reset_input_tokens, h.limit_input_tokens, now),
            _left(h.remaining_output_tokens, h.reset_output_tokens, h.limit_output_tokens, now),
        ]
        with self._lock:
            self._left = [new or old for new, old in zip(said, self._left, strict=True)]

    @staticmethod
    def _needs(tokens: int) -> list[int]:
        inp, out = split(tokens)
        return [1, int(tokens), inp, out]

    def not_before(self, tokens: int, now: float) -> float | None:
        """The earliest time a request of ``tokens`` fits what is left; None: any time."""
        with self._lock:
            at = -math.inf
            for left, need in zip(self._left, self._needs(tokens), strict=True):
                ready = None if left is None else left.ready(need, now)
                if ready is not None:
                    at = max(at, ready)
            return None if at <= now else at

    def consume(self, tokens: int, at: float) -> None:
        """A request of ``tokens`` was admitted at ``at``: it uses what is left before a reset."""
        with self._lock:
            for left, used in zip(self._left, self._needs(tokens), strict=True):
                if left is not None and at < left.until:
                    left.amount -= used
