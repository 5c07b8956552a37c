"""Requests-per-minute and tokens-per-minute for one route, by reservation.

The promise: never more than the limit in *any* window ``[s, s + window)``, which is how
several providers count. A GCRA or token bucket with burst ``b`` can admit ``b + limit`` in
one window (a full bucket, then a full refill), so it cannot keep that promise without
giving up bursts entirely. A sliding-window log keeps it exactly, at the cost of remembering
each admission of the last window: at most ``requests_per_minute`` entries plus the queue.

Each :meth:`Limiter.reserve` admits the request at the earliest time ``at`` such that

* ``at >= now`` and ``at >=`` every admission already in the log (FIFO: a later caller is
  never served before an earlier one);
* fewer than ``requests_per_minute`` live entries have ``a + window > at`` (that is
  ``at >=`` the admission ``requests_per_minute`` places back, plus ``window``);
* the tokens of the entries with ``a + window > at``, plus this request's, fit
  ``tokens_per_minute``.

An entry admitted at ``a`` counts until exactly ``a + window``. Nothing here reads a clock,
sleeps or polls: every method takes ``now`` (monotonic seconds) and callers do the waiting,
so the same limiter serves sync and async drivers and tests run on a fake clock.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
from dataclasses import dataclass
from datetime import timedelta

from resilient_llm._forks import renew_locks
from resilient_llm.errors import ConfigurationError, RequestTooLarge

__all__ = ["Limiter", "LimiterSnapshot", "RateLimit", "Reservation", "settled_tokens"]


def _positive_int_or_none(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"RateLimit.{name} must be a positive int or None, got {value!r}")


@dataclass(frozen=True, init=False)
class RateLimit:
    """One route's limits per ``window`` seconds (60 by default, hence the field names).

    ``None`` means unlimited. ``window`` also accepts a :class:`~datetime.timedelta` and is
    stored as float seconds.
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    window: float = 60.0

    # Written by hand (not __post_init__) so the field stays typed ``float`` for readers
    # while callers may still pass a timedelta.
    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        window: float | timedelta = 60.0,
    ) -> None:
        _positive_int_or_none("requests_per_minute", requests_per_minute)
        _positive_int_or_none("tokens_per_minute", tokens_per_minute)
        seconds: object = window.total_seconds() if isinstance(window, timedelta) else window
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(float(seconds) if abs(seconds) < 1e300 else math.inf)
            or seconds <= 0
        ):
            raise ConfigurationError(
                "RateLimit.window must be a finite positive number of seconds or a timedelta, "
                f"got {window!r}"
            )
        object.__setattr__(self, "requests_per_minute", requests_per_minute)
        object.__setattr__(self, "tokens_per_minute", tokens_per_minute)
        object.__setattr__(self, "window", float(seconds))


class Reservation:
    """A slot granted by :meth:`Limiter.reserve`: send the request at ``at``.

    ``tokens`` is what the log currently charges for it: the estimate, then the actual
    usage once :meth:`settle` is called. All mutation goes through the limiter's lock.
    """

    __slots__ = ("_at", "_cancelled", "_limiter", "_settled", "_tokens", "_wait")

    def __init__(self, limiter: Limiter, tokens: int, at: float, wait: float) -> None:
        self._limiter = limiter
        self._tokens = tokens
        self._at = at
        self._wait = wait
        self._cancelled = False
        self._settled = False

    @property
    def tokens(self) -> int:
        return self._tokens

    @property
    def at(self) -> float:
        """Admission time, on the same timeline as the ``now`` given to ``reserve``."""
        return self._at

    @property
    def wait(self) -> float:
        """``at - now`` for the ``now`` given to ``reserve``; never negative."""
        return self._wait

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def delay(self, now: float) -> float:
        """Seconds still to wait at ``now`` before sending."""
        return max(0.0, self._at - now)

    def cancel(self) -> None:
        """The request was never sent: give back its request and tokens.

        Idempotent; a no-op after :meth:`settle` (a settled request was sent). Reservations
        granted after this one keep their times: moving them earlier is never needed for
        safety and would break the wait their callers were already told.
        """
        with self._limiter._lock:
            if self._cancelled or self._settled:
                return
            self._cancelled = True
            # Reservation has identity equality, so this removes exactly this entry; it is
            # already gone if it was pruned.
            with contextlib.suppress(ValueError):
                self._limiter._log.remove(self)

    def settle(self, actual_tokens: int) -> None:
        """Charge the provider-reported usage instead of the estimate (higher or lower).

        Negative values count as 0; a second call replaces the first; no-op after cancel.
        """
        if isinstance(actual_tokens, bool) or not isinstance(actual_tokens, int):
            raise ConfigurationError(f"actual_tokens must be an int, got {actual_tokens!r}")
        with self._limiter._lock:
            if self._cancelled:
                return
            self._settled = True
            self._tokens = max(0, actual_tokens)

    def __repr__(self) -> str:
        state = " cancelled" if self._cancelled else ""
        return f"<Reservation tokens={self._tokens} at={self._at!r} wait={self._wait!r}{state}>"


def settled_tokens(
    reported: int, estimate: int, ceiling: int | None, *, below_estimate: bool = True
) -> int:
    """What a request is charged once its reply reports ``reported`` tokens.

    The provider's figure, bounded by ``ceiling`` (what the request could have cost, see
    :func:`~resilient_llm.policies.tokens.usage_ceiling`) so a false claim cannot fill the
    window for everyone sharing it, and by 0 below. With ``below_estimate=False`` (a provider that
    charges the reserved output up front, as OpenAI does) never below ``estimate``.
    Memory and Redis state both settle to this figure.
    """
    charged = max(0, reported)
    if ceiling is not None:
        charged = min(charged, max(ceiling, estimate))
    if not below_estimate:
        charged = max(charged, estimate)
    return charged


@dataclass(frozen=True)
class LimiterSnapshot:
    """The limiter's state at one moment, for events, dashboards and route choice.

    ``requests_used``/``estimated_tokens`` cover admissions in ``(now - window, now]``;
    ``queue_length`` counts reservations admitted in the future. The ``*_remaining``
    figures subtract both, since queued requests will consume the same capacity.
    """

    requests_per_minute: int | None
    tokens_per_minute: int | None
    requests_used: int
    estimated_tokens: int
    queue_length: int
    refill_time: float
    requests_remaining: int | None
    tokens_remaining: int | None


class Limiter:
    """A sliding-window-log limiter for one route; thread-safe, never blocks on time."""

    def __init__(self, limit: RateLimit | None = None) -> None:
        self._limit = RateLimit() if limit is None else limit
        self._lock = threading.Lock()
        renew_locks(self, "_lock")
        # Live reservations in admission order; ``at`` is non-decreasing along the list.
        self._log: list[Reservation] = []
        # When the last pruned entry stopped counting. New admissions never start before it,
        # so pruning stays exact even if concurrent callers pass slightly out-of-order ``now``.
        self._horizon = -math.inf
        # The limit is shared with this many others (1: the whole limit is this limiter's).
        self._parts = 1

    @property
    def limit(self) -> RateLimit:
        """The configured (or learnt) limit; :meth:`share` may apply only part of it."""
        return self._limit

    @property
    def applied(self) -> RateLimit:
        """What this limiter admits to: its share of :attr:`limit`."""
        with self._lock:
            return self._share()

    def share(self, parts: int) -> None:
        """Apply ``1 / parts`` of each limit (rounded down, never below 1), the rest being
        other processes'. A shared state store's fallback does this while the store is
        away, so the processes together stay within one quota."""
        with self._lock:
            self._parts = max(1, int(parts))

    def note(self, tokens: int, at: float, now: float) -> Reservation:
        """Log an admission decided elsewhere (by a shared store, at ``at``), so a later
        fallback to this limiter counts it; cancel or settle the entry returned as the
        admission is."""
        with self._lock:
            self._prune(now)
            if self._log and at < self._log[-1].at:
                # Keeps the log ordered by ``at``, which pruning relies on.
                where = bisect.bisect_right([r.at for r in self._log], at)
            else:
                where = len(self._log)
            noted = Reservation(self, max(0, tokens), at, max(0.0, at - now))
            self._log.insert(where, noted)
            return noted

    def _share(self) -> RateLimit:
        limit, parts = self._limit, self._parts
        if parts == 1:
            return limit
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        return RateLimit(
            None if rpm is None else max(1, rpm // parts),
            None if tpm is None else max(1, tpm // parts),
            limit.window,
        )

    def reserve(self, tokens: int, now: float, not_before: float | None = None) -> Reservation:
        """Admit a request of ``tokens`` (estimated) and say when it may be sent.

        ``not_before`` holds the admission back further (what the provider said is left).
        Raises :class:`RequestTooLarge` if ``tokens`` exceeds the whole token limit, since
        such a reservation could never be honoured.
        """
        self._check_tokens(tokens)
        with self._lock:
            self._prune(now)
            at = self._admission_time(tokens, now, not_before)
            reservation = Reservation(self, tokens, at, at - now)
            self._log.append(reservation)
            return reservation

    def peek(self, tokens: int, now: float, not_before: float | None = None) -> float:
        """The wait :meth:`reserve` would give at ``now``, without reserving anything."""
        self._check_tokens(tokens)
        with self._lock:
            self._prune(now)
            return self._admission_time(tokens, now, not_before) - now

    def learn(self, limit: RateLimit) -> None:
        """Adopt ``limit`` for every dimension that was configured unlimited."""
        with self._lock:
            self._limit = RateLimit(
                self._limit.requests_per_minute or limit.requests_per_minute,
                self._limit.tokens_per_minute or limit.tokens_per_minute,
                self._limit.window,
            )

    def snapshot(self, now: float) -> LimiterSnapshot:
        """The state at ``now``; see :class:`LimiterSnapshot`."""
        with self._lock:
            self._prune(now)
            log = self._log
            admitted = [r for r in log if r.at <= now]
            applied = self._share()
            rpm = applied.requests_per_minute
            tpm = applied.tokens_per_minute
            return LimiterSnapshot(
                requests_per_minute=rpm,
                tokens_per_minute=tpm,
                requests_used=len(admitted),
                estimated_tokens=sum(r.tokens for r in admitted),
                queue_length=len(log) - len(admitted),
                refill_time=admitted[0].at + self._limit.window - now if admitted else 0.0,
                requests_remaining=None if rpm is None else max(0, rpm - len(log)),
                tokens_remaining=(
                    None if tpm is None else max(0, tpm - sum(r.tokens for r in log))
                ),
            )

    def _check_tokens(self, tokens: int) -> None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ConfigurationError(f"tokens must be a non-negative int, got {tokens!r}")
        tpm = self._limit.tokens_per_minute
        if tpm is not None and tokens > tpm:
            raise RequestTooLarge(
                f"a request of {tokens} tokens can never fit a limit of {tpm} tokens "
                f"per {self._limit.window:g} s"
            )

    def _prune(self, now: float) -> None:
        # Every new admission is at >= now, so entries that stopped counting by now never
        # matter again.
        window = self._limit.window
        log = self._log
        stale = 0
        while stale < len(log) and log[stale].at + window <= now:
            stale += 1
        if stale:
            self._horizon = max(self._horizon, log[stale - 1].at + window)
            del log[:stale]

    def _admission_time(self, tokens: int, now: float, not_before: float | None) -> float:
        log = self._log
        window = self._limit.window
        at = max(now, self._horizon, log[-1].at if log else now)
        if not_before is not None:
            at = max(at, not_before)
        applied = self._share()
        rpm = applied.requests_per_minute
        if rpm is not None and len(log) >= rpm:
            at = max(at, log[-rpm].at + window)
        tpm = applied.tokens_per_minute
        if tpm is not None:
            # A request bigger than a share waits until it has the share to itself.
            tpm = max(tpm, tokens)
            # Comparisons use ``a + window`` exactly as it is assigned below, so an entry
            # leaves at the very float we move ``at`` to (no ``at - window`` rounding).
            first = 0
            while first < len(log) and log[first].at + window <= at:
                first += 1
            used = sum(r.tokens for r in log[first:])
            # Terminates: tokens <= tpm, so at the latest the sum fits once the log is passed.
            while used + tokens > tpm:
                at = log[first].at + window
                used -= log[first].tokens
                first += 1
        return at

    def __repr__(self) -> str:
        return f"Limiter({self._limit!r})"
