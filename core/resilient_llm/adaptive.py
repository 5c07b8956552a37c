"""Adaptive limits: what the provider says is left holds the route back until its reset.

Configured limits are a guess made in advance; a provider's rate-limit headers say what
is actually left (``x-ratelimit-remaining-requests`` with ``x-ratelimit-reset-requests``,
``anthropic-ratelimit-tokens-remaining`` with its reset, ...). A :class:`ProviderCap`
keeps the latest of them: until a reset passes, no more requests (or tokens) are admitted
than the provider said remain, after which the route relaxes back to its configured
limits. A quota that is shared with other clients, or lower than configured, then costs
waits instead of 429s. A route configured without a limit adopts the limit the headers
state (``x-ratelimit-limit-requests``...), as requests per minute.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .hints import RateLimitHints

__all__ = ["ProviderCap"]


@dataclass
class _Left:
    amount: float
    until: float


class ProviderCap:
    """The provider's own account of a route's remaining quota. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: _Left | None = None
        self._tokens: _Left | None = None

    def observe(self, hints: RateLimitHints, now: float) -> None:
        """Take a response's headers, received at ``now``, as the latest word."""
        with self._lock:
            if hints.remaining_requests is not None and hints.reset_requests is not None:
                self._requests = _Left(hints.remaining_requests, now + hints.reset_requests)
            if hints.remaining_tokens is not None and hints.reset_tokens is not None:
                self._tokens = _Left(hints.remaining_tokens, now + hints.reset_tokens)

    def not_before(self, tokens: int, now: float) -> float | None:
        """The earliest time a request of ``tokens`` fits what is left; None: any time."""
        with self._lock:
            at = -math.inf
            left = self._live(self._requests, now)
            if left is not None and left.amount < 1:
                at = max(at, left.until)
            left = self._live(self._tokens, now)
            if left is not None and left.amount < tokens:
                at = max(at, left.until)
            return None if at <= now else at

    def consume(self, tokens: int, at: float) -> None:
        """A request of ``tokens`` was admitted at ``at``: it uses what is left before a reset."""
        with self._lock:
            if self._requests is not None and at < self._requests.until:
                self._requests.amount -= 1
            if self._tokens is not None and at < self._tokens.until:
                self._tokens.amount -= tokens

    @staticmethod
    def _live(left: _Left | None, now: float) -> _Left | None:
        return left if left is not None and now < left.until else None
