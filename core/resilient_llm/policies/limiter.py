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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import overload

from resilient_llm._forks import renew_locks
from resilient_llm.errors import ConfigurationError, RequestTooLarge

from .hints import DEFAULT_CAP
from .quota import Tokens, split

__all__ = [
    "DAY",
    "Limiter",
    "LimiterSnapshot",
    "RateLimit",
    "Reservation",
    "Window",
    "WindowSnapshot",
    "settled_tokens",
]

DAY = 86400.0
EXACT_UP_TO = 3600.0
"""Windows up to an hour keep an entry per admission; longer ones one per slice."""
SLICES = 240
"""Entries kept per long window (a day: one per six minutes, 0.4 % of it left unused)."""
DEFAULT_IN_FLIGHT = 0.25
MAX_IN_FLIGHT = 2.0
_FLIGHTS = 32  # recent admission-to-answer times a route remembers

_DIMENSIONS = ("requests", "tokens", "input_tokens", "output_tokens")


def _positive_int_or_none(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"RateLimit.{name} must be a positive int or None, got {value!r}")


def _seconds(name: str, window: object) -> float:
    seconds: object = window.total_seconds() if isinstance(window, timedelta) else window
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(float(seconds) if abs(seconds) < 1e300 else math.inf)
        or seconds <= 0
    ):
        raise ConfigurationError(
            f"{name} must be a finite positive number of seconds or a timedelta, got {window!r}"
        )
    return float(seconds)


@dataclass(frozen=True)
class Window:
    """Limits over one window of ``seconds``; ``None``: that dimension is unlimited.

    ``tokens`` counts input and output together; ``input_tokens`` and ``output_tokens``
    each alone (Anthropic's per-minute limits).
    """

    seconds: float
    requests: int | None = None
    tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seconds", _seconds("RateLimit window", self.seconds))
        for name in _DIMENSIONS:
            _positive_int_or_none(f"window({self.seconds:g}).{name}", getattr(self, name))

    @property
    def limited(self) -> bool:
        return any(getattr(self, name) is not None for name in _DIMENSIONS)

    @property
    def name(self) -> str:
        """How events and snapshots call it: ``"requests/60s"`` style, or ``"1d"``."""
        span = self.seconds
        unit = (
            f"{span / DAY:g}d"
            if span % DAY == 0
            else f"{span / 60:g}min"
            if span % 60 == 0
            else f"{span:g}s"
        )
        kinds = "+".join(n for n in _DIMENSIONS if getattr(self, n) is not None) or "none"
        return f"{kinds}/{unit}"

    def parted(self, parts: int) -> Window:
        if parts == 1:
            return self
        return Window(
            self.seconds,
            *(None if (v := getattr(self, n)) is None else max(1, v // parts) for n in _DIMENSIONS),
        )


class _WindowConstructor:
    """``RateLimit.window(seconds, requests=...)`` on the class; the first window's length
    (a float, as before several windows existed) on an instance."""

    @overload
    def __get__(self, obj: None, owner: type[RateLimit]) -> Callable[..., RateLimit]: ...

    @overload
    def __get__(self, obj: RateLimit, owner: type[RateLimit]) -> float: ...

    def __get__(
        self, obj: RateLimit | None, owner: type[RateLimit]
    ) -> Callable[..., RateLimit] | float:
        if obj is None:
            return owner._only
        # Only reached before __init__ set the instance's own value.
        return 60.0  # pragma: no cover


@dataclass(frozen=True, init=False, repr=False)
class RateLimit:
    """One route's limits, over as many windows as the provider counts.

    ``requests_per_minute``/``tokens_per_minute`` (and the input/output token limits) are
    per ``window`` seconds (60 by default, hence the names; ``window`` also accepts a
    :class:`~datetime.timedelta`); ``requests_per_day``/``tokens_per_day`` per 86,400 s.
    Any other window: ``RateLimit.window(seconds, requests=, tokens=, input_tokens=,
    output_tokens=)``. Limits combine with ``|``: every window of both is enforced, e.g.
    ``RateLimit(requests_per_minute=15) | RateLimit.window(3600, tokens=200_000)``.
    ``None`` means unlimited.
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    window: _WindowConstructor = _WindowConstructor()
    input_tokens_per_minute: int | None = None
    output_tokens_per_minute: int | None = None
    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    more: tuple[Window, ...] = ()

    # Written by hand (not __post_init__) so ``window`` stays a float for readers while
    # callers may still pass a timedelta, and the class attribute stays a constructor.
    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        window: float | timedelta = 60.0,
        *,
        input_tokens_per_minute: int | None = None,
        output_tokens_per_minute: int | None = None,
        requests_per_day: int | None = None,
        tokens_per_day: int | None = None,
        more: Iterable[Window] = (),
    ) -> None:
        given = {
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
            "input_tokens_per_minute": input_tokens_per_minute,
            "output_tokens_per_minute": output_tokens_per_minute,
            "requests_per_day": requests_per_day,
            "tokens_per_day": tokens_per_day,
        }
        for name, value in given.items():
            _positive_int_or_none(name, value)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "window", _seconds("RateLimit.window", window))
        extra = tuple(more)
        if not all(isinstance(w, Window) for w in extra):
            raise ConfigurationError(f"RateLimit.more must hold Window objects, got {extra!r}")
        object.__setattr__(self, "more", extra)

    @classmethod
    def _only(
        cls,
        seconds: float | timedelta,
        *,
        requests: int | None = None,
        tokens: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> RateLimit:
        """A limit of one window of ``seconds``; combine with ``|``."""
        # The window stands as the first one, so a route given only it reads as before
        # (``requests_per_minute`` is "per window", ``window`` its length).
        first = Window(
            _seconds("RateLimit.window", seconds), requests, tokens, input_tokens, output_tokens
        )
        return cls(
            requests,
            tokens,
            first.seconds,
            input_tokens_per_minute=input_tokens,
            output_tokens_per_minute=output_tokens,
        )

    @property
    def windows(self) -> tuple[Window, ...]:
        """Every window with a limit (the first one always, even unlimited)."""
        first = Window(
            float(self.window),
            self.requests_per_minute,
            self.tokens_per_minute,
            self.input_tokens_per_minute,
            self.output_tokens_per_minute,
        )
        day = Window(DAY, self.requests_per_day, self.tokens_per_day)
        return (first, *(w for w in (day, *self.more) if w.limited))

    @property
    def several(self) -> bool:
        """More than the single requests/tokens window of earlier versions."""
        return len(self.windows) > 1 or any(
            w.input_tokens is not None or w.output_tokens is not None for w in self.windows
        )

    def __or__(self, other: RateLimit) -> RateLimit:
        if not isinstance(other, RateLimit):
            return NotImplemented
        # The left operand keeps its place as the first window; every other is extra.
        rest = other.windows if other.windows[0].limited else other.windows[1:]
        return RateLimit(
            self.requests_per_minute,
            self.tokens_per_minute,
            float(self.window),
            input_tokens_per_minute=self.input_tokens_per_minute,
            output_tokens_per_minute=self.output_tokens_per_minute,
            requests_per_day=self.requests_per_day,
            tokens_per_day=self.tokens_per_day,
            more=(*self.more, *rest),
        )

    def __repr__(self) -> str:
        shown = [
            f"{name}={value!r}"
            for name in (
                "requests_per_minute",
                "tokens_per_minute",
                "input_tokens_per_minute",
                "output_tokens_per_minute",
                "requests_per_day",
                "tokens_per_day",
            )
            if (value := getattr(self, name)) is not None
        ]
        shown.append(f"window={self.window!r}")
        text = ", ".join(shown)
        more = "".join(
            f" | RateLimit.window({w.seconds!r}, "
            + ", ".join(f"{n}={getattr(w, n)!r}" for n in _DIMENSIONS if getattr(w, n))
            + ")"
            for w in self.more
        )
        return f"RateLimit({text}){more}"

    def parted(self, parts: int) -> RateLimit:
        """``1 / parts`` of every limit, rounded down, never below 1."""
        if parts == 1:
            return self

        def part(v: int | None) -> int | None:
            return None if v is None else max(1, v // parts)

        return RateLimit(
            part(self.requests_per_minute),
            part(self.tokens_per_minute),
            float(self.window),
            input_tokens_per_minute=part(self.input_tokens_per_minute),
            output_tokens_per_minute=part(self.output_tokens_per_minute),
            requests_per_day=part(self.requests_per_day),
            tokens_per_day=part(self.tokens_per_day),
            more=tuple(w.parted(parts) for w in self.more),
        )


class _Entry:
    """What one lane counts from ``start``: one admission, or a slice's worth of them."""

    __slots__ = ("amounts", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        # requests, tokens, input tokens, output tokens
        self.amounts = [0, 0, 0, 0]


class _Lane:
    """One window's entries, in ``start`` order."""

    __slots__ = ("entries", "slice", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.slice = 0.0 if window.seconds <= EXACT_UP_TO else window.seconds / SLICES
        self.entries: deque[_Entry] = deque()

    def entry_for(self, at: float) -> _Entry:
        if self.slice:
            start = math.ceil(at / self.slice) * self.slice
            if self.entries and self.entries[-1].start == start:
                return self.entries[-1]
        else:
            start = at
        made = _Entry(start)
        if self.entries and start < self.entries[-1].start:
            # Only :meth:`Limiter.note` admits out of order.
            ordered = sorted([*self.entries, made], key=lambda e: e.start)
            self.entries = deque(ordered)
        else:
            self.entries.append(made)
        return made

    def prune(self, now: float, extra: float) -> float:
        """Drop entries that stopped counting by ``now``; when the last of them stopped."""
        span = self.window.seconds + extra
        stopped = -math.inf
        entries = self.entries
        while entries and entries[0].start + span <= now:
            stopped = entries.popleft().start + span
        return stopped

    def earliest(self, at: float, need: list[int], limits: Window, extra: float) -> float:
        """The earliest time from ``at`` at which ``need`` fits every limit of this lane."""
        span = self.window.seconds + extra
        # A list: a deque's index is slow away from its ends.
        entries = list(self.entries)
        first = 0
        while first < len(entries) and entries[first].start + span <= at:
            first += 1
        for d, name in enumerate(_DIMENSIONS):
            limit = getattr(limits, name)
            if limit is None:
                continue
            # A request bigger than a share waits until it has the share to itself.
            limit = max(limit, need[d])
            used = sum(entries[i].amounts[d] for i in range(first, len(entries)))
            f = first
            # Terminates: need <= limit, so the sum fits once the entries are passed.
            while used + need[d] > limit:
                # Comparisons use ``start + span`` exactly as assigned here, so an entry
                # leaves at the very float ``at`` moves to.
                at = max(at, entries[f].start + span)
                used -= entries[f].amounts[d]
                f += 1
        return at

    def free_at(self, now: float, limits: Window, extra: float) -> float:
        """When a request of one request and no tokens fits by this lane alone."""
        return self.earliest(now, [1, 0, 0, 0], limits, extra)

    def used(self, now: float, extra: float) -> list[int]:
        span = self.window.seconds + extra
        total = [0, 0, 0, 0]
        for e in self.entries:
            if e.start + span > now:
                for d in range(4):
                    total[d] += e.amounts[d]
        return total


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
        self._entries: list[_Entry] = []

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
        self._lanes = [_Lane(w) for w in self._limit.windows]
        # Reservations not yet due, in admission order (FIFO for later callers).
        self._queue: list[Reservation] = []
        # When the last pruned entry stopped counting. New admissions never start before it,
        # so pruning stays exact even if concurrent callers pass slightly out-of-order ``now``.
        self._horizon = -math.inf
        # The limit is shared with this many others (1: the whole limit is this limiter's).
        self._parts = 1
        # Admission-to-answer times (None: in-flight time not counted, exact windows).
        self._flights: deque[float] | None = None
        # Whether a total-only token count also charges the output windows in full.
        self.cached_counts = True

    def count_in_flight(self) -> None:
        """Count each entry also for the time its request may take to reach the provider
        (what a route does; see the module's doc)."""
        with self._lock:
            if self._flights is None:
                self._flights = deque(maxlen=_FLIGHTS)

    @property
    def in_flight(self) -> float:
        """The time each entry is counted beyond its window."""
        flights = self._flights
        if flights is None:
            return 0.0
        if not flights:
            return DEFAULT_IN_FLIGHT
        return min(MAX_IN_FLIGHT, max(flights))

    def _answered(self, seconds: float) -> None:
        with self._lock:
            if self._flights is not None and seconds >= 0:
                self._flights.append(seconds)

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
                        for n in _DIMENSIONS
                    }
                    new = Window(window.seconds, **merged)
                    if new == lane.window:
                        return
                    lane.window = new
                    self._rebuild_limit()
                    return
            lane = _Lane(window)
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
        if limit is None or what not in _DIMENSIONS:
            return
        self.adopt(Window(seconds, **{what: limit}))
        d = _DIMENSIONS.index(what)
        with self._lock:
            lane = next(la for la in self._lanes if la.window.seconds == seconds)
            # A wait at the parsers' cap may be a cut-down longer one: not trusted.
            trusted = retry_after is not None and retry_after < min(seconds, DEFAULT_CAP)
            freed = 1 if trusted and limit > 1 else 0
            if freed:
                early = _Entry(now + retry_after - seconds)  # type: ignore[operator]
                early.amounts[d] = freed
                lane.entries.append(early)
            full = _Entry(now)
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
            for lane in self._lanes:
                limits = lane.window.parted(self._parts)
                span = lane.window.seconds + extra
                used = [0, 0, 0, 0]
                largest = [0, 0, 0, 0]
                for e in lane.entries:
                    if e.start <= now < e.start + span:
                        for d in range(4):
                            used[d] += e.amounts[d]
                            largest[d] = max(largest[d], e.amounts[d])
                for d, name in enumerate(_DIMENSIONS):
                    limit = getattr(limits, name)
                    # A request bigger than a share is admitted alone: not an overdraft.
                    if limit is not None and used[d] > max(limit, largest[d]):
                        return True
            return False

    def _rebuild_limit(self) -> None:
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
        need = self._charge(tokens)
        for lane in self._lanes:
            window = lane.window
            for d, name in enumerate(_DIMENSIONS[1:], start=1):
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
        # matter again.
        extra = self.in_flight
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
        need = self._charge(tokens)
        extra = self.in_flight
        parted = [(lane, lane.window.parted(self._parts)) for lane in self._lanes]
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
