"""A route: one provider endpoint with the state every call to it shares.

A route couples its limiter (requests/tokens per minute), its circuit breaker, the pause
a provider imposed with a 429's retry-after, whether a 401/403/404 showed it to be
misconfigured, and the quota the provider last reported in its rate-limit headers. All
calls share one route object, so a pause or an open breaker learnt by one call steers
every other call at once.

The decision core reads and changes a route only through effects that drivers perform
with the methods below, each of which is one decision: :meth:`Route.look` (may a call go,
and after what wait), :meth:`Route.admit` (take a slot and, if it is due now, a breaker
permit), and one way per end of an attempt (:meth:`Route.finish`). That is the seam of
the state backends: this class keeps the state in memory (``remote = False``: a driver
performs its operations inline, even on an event loop), and the Redis backend runs each
as one atomic script, awaited on the async path, so many processes share one quota, one
breaker and one pause at one round trip per decision.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Any

from .._forks import renew_locks
from ..errors import RequestTooLarge
from ..flow.ops import FinishHow, Look, OpName, Slot, Ticket
from ..policies.adaptive import ProviderCap
from ..policies.breaker import BreakerListener, BreakerSnapshot, CircuitBreaker, Permit
from ..policies.hints import RateLimitHints
from ..policies.limiter import Limiter, LimiterSnapshot, RateLimit, Reservation
from ..run.bulkhead import Bulkhead, BulkheadSnapshot

__all__ = ["Look", "Route", "RouteSnapshot", "Slot", "Ticket"]


@dataclass(frozen=True)
class RouteSnapshot:
    name: str
    limiter: LimiterSnapshot
    breaker: BreakerSnapshot
    paused_for: float
    disabled: str | None
    provider_quota: RateLimitHints | None = None
    bulkhead: BulkheadSnapshot | None = None


class Route:
    """Shared state of one provider endpoint, kept in memory. Methods take ``now``; none waits."""

    remote = False

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
        renew_locks(self, "_lock")
        self._paused_until = -math.inf
        self._disabled: str | None = None
        self._quota: RateLimitHints | None = None
        # Calls in flight are this process's resource whatever the backend, so the engine
        # sets a bulkhead here rather than a backend keeping it.
        self.bulkhead: Bulkhead | None = None
        # What the provider's headers say is left; None when adaptive limits are off.
        self.provider_cap: ProviderCap | None = None
        # False for providers that charge prompt + max_tokens when a request arrives
        # (OpenAI): settling to a smaller real usage would undercount their window.
        self.settles_below_estimate = True
        # False for providers whose input-token limits leave prompt-cache reads out.
        self.cache_reads_count = True

    @property
    def rate_limit(self) -> RateLimit:
        return self.limiter.limit

    @property
    def has_bulkhead(self) -> bool:
        return self.bulkhead is not None

    # -- the flow's effects ---------------------------------------------------------

    def perform(
        self,
        name: OpName,
        args: tuple[Any, ...],
        *,
        budget: float | None = None,
        local: bool = False,
    ) -> tuple[Any, bool]:
        """Carry out the flow's ``Op(name, args)``: in memory, at once, whatever the budget."""
        return getattr(self, name)(*args), False

    async def aperform(
        self,
        name: OpName,
        args: tuple[Any, ...],
        *,
        budget: float | None = None,
        local: bool = False,
    ) -> tuple[Any, bool]:
        return self.perform(name, args)

    def finish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        """Carry out the flow's ``Finish``: what the state learns from one attempt."""
        if how == "succeed":
            assert now is not None, "a success is recorded at a time"
            self.succeed(slot, permit, now, tokens)
        elif how == "fail":
            assert now is not None, "a failure is recorded at a time"
            self.fail(slot, permit, now)
        elif how == "release":
            self.release(permit)
        else:
            self.withdraw(slot, permit)

    async def afinish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        self.finish(how, slot, permit, now, tokens)

    def check_fits(self, tokens: int) -> None:
        """Raise :class:`RequestTooLarge` if ``tokens`` can never fit a token limit."""
        reason = self.limiter.too_large(tokens)
        if reason is not None:
            raise RequestTooLarge(f"{self.name!r}: {reason}", provider=self.name)

    # -- decisions --------------------------------------------------------------------

    def look(self, tokens: int, now: float) -> Look:
        wait = self.limiter.peek(tokens, now, self._not_before(tokens, now))
        return Look(self.breaker.ready_at(now), self._paused_until, wait)

    def admit(self, tokens: int, now: float) -> Ticket:
        reservation = self.limiter.reserve(tokens, now, self._not_before(tokens, now))
        self._consumed(tokens, reservation.at)
        if reservation.wait > 0:
            return Ticket(reservation, None)
        # Not self.acquire: a store-backed route falls back to this very method, and its
        # own acquire would ask the store it is falling back from.
        permit = Route.acquire(self, now)
        if permit is None:
            reservation.cancel()
            return Ticket(None, None)
        return Ticket(reservation, permit)

    def _not_before(self, tokens: int, now: float) -> float | None:
        return None if self.provider_cap is None else self.provider_cap.not_before(tokens, now)

    def _consumed(self, tokens: int, at: float) -> None:
        if self.provider_cap is not None:
            self.provider_cap.consume(tokens, at)

    def acquire(self, now: float) -> Permit | None:
        """A breaker permit for a call due now, or None if the breaker or a pause forbids,
        or if the requests due by now pass a limit (they took longer to reach the provider
        than allowed for when this one queued): it then queues again."""
        if self.limiter.overdrawn(now):
            return None
        permit = self.breaker.acquire(now)
        if permit is not None and self._paused_until > now:
            self.breaker.release(permit)
            return None
        return permit

    def ready_at(self, now: float) -> float:
        return self.breaker.ready_at(now)

    # -- outcomes ---------------------------------------------------------------------

    def succeed(self, slot: Slot, permit: Permit, now: float, usage_tokens: int | None) -> None:
        self.breaker.record_success(permit, now)
        reservation = _memory(slot)
        reservation.answered(now)
        if usage_tokens is not None:
            reservation.settle(usage_tokens, cached_counts=self.cache_reads_count)

    def fail(self, slot: Slot, permit: Permit, now: float) -> None:
        self.breaker.record_failure(permit, now)
        if isinstance(slot, Reservation):
            slot.answered(now)

    def release(self, permit: Permit) -> None:
        self.breaker.release(permit)

    def cancel(self, slot: Slot) -> None:
        _memory(slot).cancel()

    def withdraw(self, slot: Slot, permit: Permit) -> None:
        self.cancel(slot)
        self.release(permit)

    # -- pauses, health, observation -------------------------------------------------

    def paused_until(self) -> float:
        return self._paused_until

    def pause(self, now: float, seconds: float) -> None:
        # Concurrent 429s may report different retry-afters; the latest end wins, so
        # no caller shortens a pause another caller was told about.
        with self._lock:
            self._paused_until = max(self._paused_until, now + seconds)

    def observe(self, hints: RateLimitHints, now: float) -> None:
        """Take what the provider said about its quota: shown in snapshots and, with
        adaptive limits, holding the route back to what is left."""
        if hints.empty:
            return
        self._quota = hints
        if self.provider_cap is None:
            return
        self.provider_cap.observe(hints, now)
        learnt = RateLimit(
            hints.limit_requests or None,
            hints.limit_tokens or None,
            input_tokens_per_minute=hints.limit_input_tokens or None,
            output_tokens_per_minute=hints.limit_output_tokens or None,
        )
        if learnt.windows[0].limited:
            self.learn(learnt)
        for what, seconds, limit in hints.exhausted:
            self.limiter.exhausted(what, seconds, limit, now, hints.retry_after)

    def learn(self, limit: RateLimit) -> None:
        """Adopt ``limit`` for each dimension configured unlimited."""
        self.limiter.learn(limit)

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

    def add_breaker_listener(self, listener: BreakerListener) -> None:
        self.breaker.add_listener(listener)

    def snapshot(self, now: float) -> RouteSnapshot:
        """The route's state: what the backend shares (limiter, breaker, pause) from
        :meth:`shared_snapshot`, and what stays in this process (bulkhead, last reported
        quota) added here, so no backend can leave the process's part out."""
        return dataclasses.replace(
            self.shared_snapshot(now),
            provider_quota=self._quota,
            bulkhead=None if self.bulkhead is None else self.bulkhead.snapshot(),
        )

    def shared_snapshot(self, now: float) -> RouteSnapshot:
        """The backend's part of :meth:`snapshot`; backends override this, not that."""
        return RouteSnapshot(
            name=self.name,
            limiter=self.limiter.snapshot(now),
            breaker=self.breaker.snapshot(now),
            paused_for=max(0.0, self._paused_until - now),
            disabled=self.disabled,
        )

    def close(self) -> None:
        """Free what the state holds outside the process; memory holds nothing."""

    def __repr__(self) -> str:
        return f"Route({self.name!r})"


def _memory(slot: Slot) -> Reservation:
    if not isinstance(slot, Reservation):
        raise TypeError(f"a memory route cannot finish {slot!r}, granted by another backend")
    return slot
