"""Requests and tokens per window for one route, by reservation, over several windows.

The promise: never more than a limit in *any* window ``[s, s + seconds)``, which is how
providers count. A GCRA or token bucket with burst ``b`` can admit ``b + limit`` in one
window (a full bucket, then a full refill), so it cannot keep that promise without giving
up bursts. A sliding-window log keeps it exactly, at the cost of remembering each admission
of the window: fine for a minute, not for a day of tokens. So each window is a *lane*:

* a short window (up to :data:`EXACT_UP_TO` seconds) keeps one entry per admission, counted
  from its admission time;
* a longer one keeps one entry per *slice* (a :data:`SLICES`-th of the window), every
  admission of a slice counted as from the slice's end: at most ``SLICES`` entries, and at
  most one slice's worth of the window left unused.

Each :meth:`Limiter.reserve` admits the request at the earliest time ``at`` such that

* ``at >= now`` and ``at >=`` every admission still queued (FIFO: a later caller is never
  served before an earlier one);
* in *every* lane and every dimension it limits (requests, total tokens, input tokens,
  output tokens), what the entries still counting at ``at`` hold, plus this request, fits.

All lanes admit together or none does. Input is charged as estimated and output as the
request's allowance (its ``max_tokens`` or the default reserve), both settled to the usage
the reply reports.

A provider counts a request when it *arrives*, after we admit it, so an entry counts here
until ``start + seconds + in_flight``: ``in_flight`` is what routes learn as requests come
back (the longest recent time from admission to answer, at most :data:`MAX_IN_FLIGHT`;
:data:`DEFAULT_IN_FLIGHT` before the first answer). A limiter made on its own counts no
in-flight time (exact windows, as in the examples of the tests). Nothing here reads a
clock, sleeps or polls: every method takes ``now`` (monotonic seconds) and callers wait.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from dataclasses import dataclass, field

from resilient_llm._forks import renew_locks
from resilient_llm.errors import ConfigurationError, RequestTooLarge

from ._lanes import EXACT_UP_TO, SLICES, Entry, Lane
from .hints import DEFAULT_CAP
from .quota import Tokens, split
from .rate_limit import DAY, DIMENSIONS, RateLimit, Window

__all__ = [
    "DAY",
    "EXACT_UP_TO",
    "SLICES",
    "Limiter",
    "LimiterSnapshot",
    "RateLimit",
    "Reservation",
    "Window",
    "WindowSnapshot",
    "settled_tokens",
]

DEFAULT_IN_FLIGHT = 0.25
MAX_IN_FLIGHT = 2.0
_FLIGHTS = 32  # recent admission-to-answer times a route remembers


class Reservation:
    """A slot granted by :meth:`Limiter.reserve`: send the request at ``at``.

    ``tokens`` is what the windows currently charge for it: the estimate, then the actual
    usage once :meth:`settle` is called. All mutation goes through the limiter's lock.
    """

    __slots__ = (
        "_at",
        "_cancelled",
        "_charge",
        "_entries",
        "_limiter",
        "_settled",
        "_tokens",
        "_wait",
    )

    def __init__(self, limiter: Limiter, tokens: int, at: float, wait: float) -> None:
        self._limiter = limiter
        self._tokens = int(tokens)
        self._at = at
        self._wait = wait
        self._cancelled = False
        self._settled = False
        self._charge = limiter._charge(tokens)
        self._entries: list[Entry] = []

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

    def _apply(self, sign: int) -> None:
        for entry in self._entries:
            for d in range(4):
                entry.amounts[d] += sign * self._charge[d]

    def cancel(self) -> None:
        """The request was never sent: give back its request and tokens in every window.

        Idempotent; a no-op after :meth:`settle` (a settled request was sent). Reservations
        granted after this one keep their times: moving them earlier is never needed for
        safety and would break the wait their callers were already told.
        """
        limiter = self._limiter
        with limiter._lock:
            if self._cancelled or self._settled:
                return
            self._cancelled = True
            self._apply(-1)
            for lane, entry in zip(limiter._lanes, self._entries, strict=False):
                if not lane.slice and not any(entry.amounts):
                    # Reservation entries are its own in an exact lane; it is already gone
                    # if it was pruned.
                    with contextlib.suppress(ValueError):
                        lane.entries.remove(entry)
            with contextlib.suppress(ValueError):
                limiter._queue.remove(self)

    def settle(self, actual_tokens: int, *, cached_counts: bool = True) -> None:
        """Charge the provider-reported usage instead of the estimate (higher or lower).

        A :class:`~resilient_llm.policies.quota.Tokens` settles input and output apart;
        ``cached_counts=False`` leaves its prompt-cache reads out of the input (as
        Anthropic counts them). Negative values count as 0; a second call replaces the
        first; no-op after cancel.
        """
        if isinstance(actual_tokens, bool) or not isinstance(actual_tokens, int):
            raise ConfigurationError(f"actual_tokens must be an int, got {actual_tokens!r}")
        limiter = self._limiter
        with limiter._lock:
            if self._cancelled:
                return
            self._settled = True
            self._apply(-1)
            self._tokens = max(0, int(actual_tokens))
            self._charge = limiter._charge(actual_tokens, cached_counts=cached_counts)
            self._apply(1)

    def answered(self, now: float) -> None:
        """The provider answered at ``now``: the request reached it by then. Teaches the
        limiter how long requests stay in flight."""
        self._limiter._answered(now - self._at)

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
    Memory and Redis state both settle to this figure. A reported
    :class:`~resilient_llm.policies.quota.Tokens` keeps its split (within the bound), and
    so does an estimate it is raised to.
    """
    charged = max(0, reported)
    if ceiling is not None:
        charged = min(charged, max(ceiling, estimate))
    if not below_estimate:
        charged = max(charged, estimate)
    if isinstance(reported, Tokens):
        output = reported.output
        if not below_estimate and isinstance(estimate, Tokens):
            # Charged its whole output allowance as the request arrived.
            output = max(output, estimate.output)
        output = min(output, charged)
        return Tokens(
            charged,
            input=charged - output,
            output=output,
            cached=min(reported.cached, charged - output),
        )
    return charged


@dataclass(frozen=True)
class WindowSnapshot:
    """One window at one moment: its limits (this process's share), what is counted in it
    (admitted and queued), and ``free_in``: seconds until it takes another request."""

    window: Window
    requests_used: int
    tokens_used: int
    input_tokens_used: int
    output_tokens_used: int
    free_in: float

    @property
    def name(self) -> str:
        return self.window.name


@dataclass(frozen=True)
class LimiterSnapshot:
    """The limiter's state at one moment, for events, dashboards and route choice.

    The first fields describe the first window (``requests_per_minute`` as before):
    ``requests_used``/``estimated_tokens`` cover admissions in ``(now - window, now]``;
    ``queue_length`` counts reservations admitted in the future. The ``*_remaining``
    figures subtract both, since queued requests will consume the same capacity.
    ``windows`` shows every window; ``held_by`` names the window that holds the route
    back longest (None when a request could go now) and ``held_for`` for how long.
    """

    requests_per_minute: int | None
    tokens_per_minute: int | None
    requests_used: int
    estimated_tokens: int
    queue_length: int
    refill_time: float
    requests_remaining: int | None
    tokens_remaining: int | None
    windows: tuple[WindowSnapshot, ...] = field(default=(), compare=False)
    held_by: str | None = field(default=None, compare=False)
    held_for: float = field(default=0.0, compare=False)


class Limiter:
    """A sliding-window limiter for one route over all its windows; thread-safe, never
    blocks on time."""

    def __init__(self, limit: RateLimit | None = None) -> None:
        self._limit = RateLimit() if limit is None else limit
        self._lock = threading.Lock()
        renew_locks(self, "_lock")
        self._lanes = [Lane(w) for w in self._limit.windows]
        self._limited: list[Lane] = []
        self._windows_changed()
        # Reservations not yet due, in admission order (FIFO for later callers).
        self._queue: list[Reservation] = []
        # When the last pruned entry stopped counting. New admissions never start before it,
        # so pruning stays exact even if concurrent callers pass slightly out-of-order ``now``.
        self._horizon = -math.inf
        # The limit is shared with this many others (1: the whole limit is this limiter's).
        self._parts = 1
        # Admission-to-answer times (None: in-flight time not counted, exact windows).
        self._flights: deque[float] | None = None
        # What in_flight says: 0 without counting, the default before the first answer.
        self._in_flight = 0.0
        # Whether a total-only token count also charges the output windows in full.
        self.cached_counts = True

    def count_in_flight(self) -> None:
        """Count each entry also for the time its request may take to reach the provider
        (what a route does; see the module's doc)."""
        with self._lock:
            if self._flights is None:
                self._flights = deque(maxlen=_FLIGHTS)
                self._in_flight = DEFAULT_IN_FLIGHT

    @property
    def in_flight(self) -> float:
        """The time each entry is counted beyond its window."""
        return self._in_flight

    def _answered(self, seconds: float) -> None:
        with self._lock:
            flights = self._flights
            if flights is not None and seconds >= 0:
                flights.append(seconds)
                # Worked out here, once per answer, not on each of a call's several reads.
                self._in_flight = min(MAX_IN_FLIGHT, max(flights))

    @property
    def limit(self) -> RateLimit:
        """The configured (or learnt) limit; :meth:`share` may apply only part of it."""
        return self._limit

    @property
    def applied(self) -> RateLimit:
        """What this limiter admits to: its share of :attr:`limit`."""
        with self._lock:
            return self._limit.parted(self._parts)

    def share(self, parts: int) -> None:
        """Apply ``1 / parts`` of each limit (rounded down, never below 1), the rest being
        other processes'. A shared state store's fallback does this while the store is
        away, so the processes together stay within one quota."""
        with self._lock:
            self._parts = max(1, int(parts))

    def _charge(self, tokens: int, *, cached_counts: bool = True) -> list[int]:
        if isinstance(tokens, Tokens):
            inp, out = split(tokens, cached_counts=cached_counts)
            return [1, int(tokens) - (tokens.cached if not cached_counts else 0), inp, out]
        # A total that says no more: every token window is charged all of it.
        return [1, max(0, int(tokens)), max(0, int(tokens)), max(0, int(tokens))]

    def _admit(self, reservation: Reservation) -> None:
        for lane in self._lanes:
            entry = lane.entry_for(reservation.at)
            reservation._entries.append(entry)
        reservation._apply(1)
        if reservation.at > self._queue_base():
            self._queue.append(reservation)
        else:
            self._insert_queued(reservation)

    def _queue_base(self) -> float:
        return self._queue[-1].at if self._queue else -math.inf

    def _insert_queued(self, reservation: Reservation) -> None:
        at = reservation.at
        where = len(self._queue)
        while where and self._queue[where - 1].at > at:
            where -= 1
        self._queue.insert(where, reservation)

    def note(self, tokens: int, at: float, now: float) -> Reservation:
        """Log an admission decided elsewhere (by a shared store, at ``at``), so a later
        fallback to this limiter counts it; cancel or settle the entry returned as the
        admission is."""
        with self._lock:
            self._prune(now)
            noted = Reservation(self, max(0, tokens), at, max(0.0, at - now))
            self._admit(noted)
            return noted

    def reserve(self, tokens: int, now: float, not_before: float | None = None) -> Reservation:
        """Admit a request of ``tokens`` (estimated) and say when it may be sent.

        ``not_before`` holds the admission back further (what the provider said is left).
        Raises :class:`RequestTooLarge` if ``tokens`` exceeds a whole token limit, since
        such a reservation could never be honoured.
        """
        self._check_tokens(tokens)
        with self._lock:
            self._prune(now)
            at = self._admission_time(tokens, now, not_before)
            reservation = Reservation(self, tokens, at, at - now)
            self._admit(reservation)
            return reservation

    def peek(self, tokens: int, now: float, not_before: float | None = None) -> float:
        """The wait :meth:`reserve` would give at ``now``, without reserving anything."""
        self._check_tokens(tokens)
        with self._lock:
            self._prune(now)
            return self._admission_time(tokens, now, not_before) - now

    def learn(self, limit: RateLimit) -> None:
        """Adopt ``limit`` for every dimension of the first window configured unlimited."""
        with self._lock:
            old = self._limit
            self._limit = RateLimit(
                old.requests_per_minute or limit.requests_per_minute,
                old.tokens_per_minute or limit.tokens_per_minute,
                old.window,
                input_tokens_per_minute=(
                    old.input_tokens_per_minute or limit.input_tokens_per_minute
                ),
                output_tokens_per_minute=(
                    old.output_tokens_per_minute or limit.output_tokens_per_minute
                ),
                requests_per_day=old.requests_per_day,
                tokens_per_day=old.tokens_per_day,
                more=old.more,
            )
            self._lanes[0].window = self._limit.windows[0]
            self._windows_changed()

    def adopt(self, window: Window) -> None:
        """Enforce ``window`` from now on, beside the configured ones: a window the provider
        named. A dimension already limited over the same span keeps the tighter figure."""
        with self._lock:
            for lane in self._lanes:
                if lane.window.seconds == window.seconds:
                    merged = {
                        n: min(
                            (v for v in (getattr(lane.window, n), getattr(window, n)) if v),
                            default=None,
                        )
                        for n in DIMENSIONS
                    }
                    new = Window(window.seconds, **merged)
                    if new == lane.window:
                        return
                    lane.window = new
                    self._rebuild_limit()
                    return
            lane = Lane(window)
            self._lanes.append(lane)
            self._rebuild_limit()

    def exhausted(
        self, what: str, seconds: float, limit: int | None, now: float, retry_after: float | None
    ) -> None:
        """The provider refused at ``now`` for its ``what`` quota over ``seconds`` (a 429
        naming it): enforce that window from now on, counted as full.

        Which of the provider's admissions leave its window when is unknown, so the
        window counts the whole ``limit`` until a window from now, except the one that
        ``retry_after`` frees: after the 429 no other comes from that window. Without a
        limit nothing is learnt (the route's pause still holds it)."""
        if limit is None or what not in DIMENSIONS:
            return
        self.adopt(Window(seconds, **{what: limit}))
        d = DIMENSIONS.index(what)
        with self._lock:
            lane = next(la for la in self._lanes if la.window.seconds == seconds)
            # A wait at the parsers' cap may be a cut-down longer one: not trusted.
            trusted = retry_after is not None and retry_after < min(seconds, DEFAULT_CAP)
            freed = 1 if trusted and limit > 1 else 0
            if freed:
                early = Entry(now + retry_after - seconds)  # type: ignore[operator]
                early.amounts[d] = freed
                lane.entries.append(early)
            full = Entry(now)
            full.amounts[d] = limit - freed
            lane.entries.append(full)
            lane.entries = deque(sorted(lane.entries, key=lambda e: e.start))

    def overdrawn(self, now: float) -> bool:
        """Whether what is due by ``now`` passes a limit, counting the in-flight time
        learnt since the later of them were queued: a queued request waking into that
        should give its slot back and queue again. Never, without in-flight counting."""
        with self._lock:
            if self._flights is None:
                return False
            extra = self.in_flight
            # An unlimited lane cannot be overdrawn, and scanning its minute of entries on
            # every call would cost more than the call itself at high throughput.
            for lane in self._limited:
                limits = lane.window.parted(self._parts)
                span = lane.window.seconds + extra
                used = [0, 0, 0, 0]
                largest = [0, 0, 0, 0]
                for e in lane.entries:
                    if e.start <= now < e.start + span:
                        for d in range(4):
                            used[d] += e.amounts[d]
                            largest[d] = max(largest[d], e.amounts[d])
                for d, name in enumerate(DIMENSIONS):
                    limit = getattr(limits, name)
                    # A request bigger than a share is admitted alone: not an overdraft.
                    if limit is not None and used[d] > max(limit, largest[d]):
                        return True
            return False

    def _windows_changed(self) -> None:
        # The lanes that limit something, the only ones a decision needs to ask: an
        # unlimited lane keeps its entries for snapshots alone. A share of a limited
        # window is limited too (never below 1), so the parts do not change this.
        self._limited = [lane for lane in self._lanes if lane.window.limited]

    def _rebuild_limit(self) -> None:
        self._windows_changed()
        first = self._lanes[0].window
        self._limit = RateLimit(
            first.requests,
            first.tokens,
            first.seconds,
            input_tokens_per_minute=first.input_tokens,
            output_tokens_per_minute=first.output_tokens,
            more=tuple(lane.window for lane in self._lanes[1:]),
        )

    def snapshot(self, now: float) -> LimiterSnapshot:
        """The state at ``now``; see :class:`LimiterSnapshot`."""
        with self._lock:
            self._prune(now)
            extra = self.in_flight
            lanes = self._lanes
            parted = [lane.window.parted(self._parts) for lane in lanes]
            windows = []
            for lane, limits in zip(lanes, parted, strict=True):
                used = lane.used(now, extra)
                free_at = lane.free_at(now, limits, extra)
                requests, tokens, inputs, outputs = used
                windows.append(
                    WindowSnapshot(
                        limits, requests, tokens, inputs, outputs, max(0.0, free_at - now)
                    )
                )
            holding = max(windows, key=lambda w: w.free_in)
            first, limits = lanes[0], parted[0]
            span = first.window.seconds + extra
            admitted = [e for e in first.entries if e.start <= now and e.start + span > now]
            queued = sum(1 for r in self._queue if r.at > now)
            everyone = first.used(now, extra)
            rpm, tpm = limits.requests, limits.tokens
            return LimiterSnapshot(
                requests_per_minute=rpm,
                tokens_per_minute=tpm,
                requests_used=sum(e.amounts[0] for e in admitted),
                estimated_tokens=sum(e.amounts[1] for e in admitted),
                queue_length=queued,
                refill_time=admitted[0].start + span - now if admitted else 0.0,
                requests_remaining=None if rpm is None else max(0, rpm - everyone[0]),
                tokens_remaining=None if tpm is None else max(0, tpm - everyone[1]),
                windows=tuple(windows),
                held_by=holding.name if holding.free_in > 0 else None,
                held_for=holding.free_in,
            )

    def too_large(self, tokens: int) -> str | None:
        """Why a request of ``tokens`` can never fit a whole limit, or None."""
        limited = self._limited
        if not limited:
            return None
        need = self._charge(tokens)
        for lane in limited:
            window = lane.window
            for d, name in enumerate(DIMENSIONS[1:], start=1):
                limit = getattr(window, name)
                if limit is not None and need[d] > limit:
                    what = name.replace("_", " ")
                    return (
                        f"a request of {need[d]} {what} can never fit a limit of {limit} "
                        f"{what} per {window.seconds:g} s"
                    )
        return None

    def _check_tokens(self, tokens: int) -> None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ConfigurationError(f"tokens must be a non-negative int, got {tokens!r}")
        reason = self.too_large(tokens)
        if reason is not None:
            raise RequestTooLarge(reason)

    def _prune(self, now: float) -> None:
        # Every new admission is at >= now, so entries that stopped counting by now never
        # matter again, once the in-flight time cannot grow to count them: an answer slower
        # than any before lengthens every entry's time (as the Redis log keeps them).
        extra = MAX_IN_FLIGHT if self._flights is not None else 0.0
        for lane in self._lanes:
            self._horizon = max(self._horizon, lane.prune(now, extra))
        queue = self._queue
        due = 0
        while due < len(queue) and queue[due].at <= now:
            due += 1
        # The last due one stays: later admissions are FIFO behind it.
        if due > 1:
            del queue[: due - 1]

    def _admission_time(self, tokens: int, now: float, not_before: float | None) -> float:
        at = max(now, self._horizon, self._queue_base())
        if not_before is not None:
            at = max(at, not_before)
        if not self._limited:
            return at
        need = self._charge(tokens)
        extra = self.in_flight
        # An unlimited lane never moves ``at``; asking it would copy its window's entries.
        parted = [(lane, lane.window.parted(self._parts)) for lane in self._limited]
        # All lanes at once: moving ``at`` for one may need another to look again.
        while True:
            moved = at
            for lane, limits in parted:
                moved = lane.earliest(moved, need, limits, extra)
            if moved == at:
                return at
            at = moved

    def __repr__(self) -> str:
        return f"Limiter({self._limit!r})"
