"""A circuit breaker per route: closed -> open -> half-open, with limited probes.

Bookkeeping only: it never calls a provider, reads a clock or sleeps. Time-dependent methods
take ``now`` (monotonic seconds); the engine takes a :class:`Permit` before each call and
hands it back with the outcome. Every transition starts a new generation, and outcomes of
permits from an older one change nothing: a slow call that began before the breaker opened
can neither close it nor re-open it later.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from resilient_llm.policies.backoff import _count, _real

from .._forks import renew_locks

__all__ = [
    "BreakerListener",
    "BreakerPolicy",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitState",
    "Permit",
    "StateChange",
]

_log = logging.getLogger("resilient_llm")


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, init=False)
class BreakerPolicy:
    """When a breaker opens and how it recovers.

    It opens once ``failure_threshold`` failures fall in the last ``window`` seconds and, if
    ``failure_rate`` is set, make up at least that share of the window's calls. After
    ``cooldown`` seconds up to ``half_open_probes`` concurrent calls decide whether it closes
    (a probe not reported within another ``cooldown`` is forgotten and its place freed).
    Durations accept a :class:`~datetime.timedelta`; bad values raise ConfigurationError.
    """

    failure_threshold: int
    failure_rate: float | None
    window: float
    cooldown: float
    half_open_probes: int

    # Hand-written so fields read as float while callers may pass a timedelta.
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        failure_rate: float | None = None,
        window: float | timedelta = 60.0,
        cooldown: float | timedelta = 30.0,
        half_open_probes: int = 1,
    ) -> None:
        def check(name: str, value: object, rule: str, ok: Callable[[float], bool]) -> float:
            dur = name in ("window", "cooldown")
            return _real(f"BreakerPolicy.{name}", value, rule, ok, duration=dur)

        def set_(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        set_("failure_threshold", _count("BreakerPolicy.failure_threshold", failure_threshold, 1))
        if failure_rate is not None:
            failure_rate = check("failure_rate", failure_rate, "in (0, 1]", lambda v: 0 < v <= 1)
        set_("failure_rate", failure_rate)
        set_("window", check("window", window, "> 0", lambda v: v > 0))
        set_("cooldown", check("cooldown", cooldown, "> 0", lambda v: v > 0))
        set_("half_open_probes", _count("BreakerPolicy.half_open_probes", half_open_probes, 1))


@dataclass(frozen=True)
class Permit:
    """Leave to call once; hand it back exactly once (a second use does nothing)."""

    probe: bool
    generation: int
    id: int


@dataclass(frozen=True)
class StateChange:
    """One transition of the breaker called ``name``, at time ``at``, and why."""

    name: str
    old: CircuitState
    new: CircuitState
    at: float
    reason: str


@dataclass(frozen=True)
class BreakerSnapshot:
    """The breaker at one instant.

    ``failures``/``calls`` count closed-state outcomes still inside the window (kept while
    open, for the record; cleared on closing). ``opened_at`` is when it last opened (None
    while closed); ``retry_at`` is when probes become allowed (None unless open).
    """

    state: CircuitState
    failures: int
    calls: int
    opened_at: float | None
    retry_at: float | None
    probes_in_flight: int


BreakerListener = Callable[[StateChange], None]


class CircuitBreaker:
    """One route's breaker. Thread-safe; no method blocks on a call or sleeps."""

    def __init__(self, policy: BreakerPolicy | None = None, name: str = "") -> None:
        self._policy = policy if policy is not None else BreakerPolicy()
        self._name = name
        # Held only inside these methods, never around a provider call or a listener.
        self._lock = threading.Lock()
        renew_locks(self, "_lock")
        self._listeners: list[BreakerListener] = []
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._opened_at: float | None = None
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, ok), closed state only
        self._failures = 0
        self._live: dict[int, Permit] = {}  # this generation's permits not yet handed back
        self._probe_granted: dict[int, float] = {}  # live probes' grant times
        self._probes = 0
        self._next_id = 0
        self._last_now = -math.inf
        self._max_probes = self._policy.half_open_probes

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> BreakerPolicy:
        return self._policy

    def state(self, now: float) -> CircuitState:
        """The state at ``now``; an open breaker whose cooldown has elapsed is half-open."""
        with self._locked(now):
            return self._state

    def ready_at(self, now: float) -> float:
        """When :meth:`acquire` could first succeed; ``math.inf`` while every probe is out."""
        with self._locked(now):
            if self._state is CircuitState.OPEN:
                return self._retry_at()
            full = self._probes >= self._max_probes
            return math.inf if self._state is CircuitState.HALF_OPEN and full else now

    def acquire(self, now: float) -> Permit | None:
        """A permit for one call, or None while open or while every probe is taken."""
        with self._locked(now):
            probe = self._state is CircuitState.HALF_OPEN
            if self._state is CircuitState.OPEN or (probe and self._probes >= self._max_probes):
                return None
            self._next_id += 1
            permit = Permit(probe=probe, generation=self._generation, id=self._next_id)
            self._live[permit.id] = permit
            if probe:
                self._probes += 1
                self._probe_granted[permit.id] = now
            return permit

    def record_success(self, permit: Permit, now: float) -> None:
        """The call succeeded; a probe's success closes the breaker."""
        self._record(permit, now, ok=True)

    def record_failure(self, permit: Permit, now: float) -> None:
        """The call failed; this may open the breaker, and a probe's failure re-opens it."""
        self._record(permit, now, ok=False)

    def release(self, permit: Permit) -> None:
        """The call was cancelled, unsent or neutral: neither outcome; a probe is freed."""
        with self._lock:
            self._take(permit)

    def add_listener(self, listener: BreakerListener) -> None:
        """Call ``listener`` with each :class:`StateChange`, in order for any one thread
        (once, even if added twice); what it raises is logged and swallowed."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        """Stop calling ``listener``; removing one never added is not an error."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def snapshot(self, now: float) -> BreakerSnapshot:
        """State, window counts and probes at ``now``, read under the lock at once."""
        with self._locked(now):
            retry_at = self._retry_at() if self._state is CircuitState.OPEN else None
            calls, probes = len(self._outcomes), self._probes
            return BreakerSnapshot(
                self._state, self._failures, calls, self._opened_at, retry_at, probes
            )

    def reset(self, now: float | None = None) -> None:
        """Back to closed with empty counts; permits already out become stale. Listeners
        hear of it if the state changed, stamped ``now`` or else the latest time seen."""
        with self._locked(None) as changes:
            at = self._last_now if now is None else now
            changes += self._move(CircuitState.CLOSED, at, "reset")

    @contextmanager
    def _locked(self, now: float | None) -> Iterator[list[StateChange]]:
        # Changes are collected under the lock and announced after it is released, so a
        # listener may call back into the breaker and a slow one stalls no other caller.
        changes: list[StateChange] = []
        with self._lock:
            if now is not None:
                changes += self._advance(now)
            yield changes
            listeners = tuple(self._listeners) if changes else ()
        for change in changes:
            for listener in listeners:
                try:
                    listener(change)
                except Exception:
                    _log.exception(
                        "breaker %r: listener %r failed on %s", self._name, listener, change
                    )

    def _record(self, permit: Permit, now: float, *, ok: bool) -> None:
        with self._locked(now) as changes:
            if not self._take(permit):
                return
            if permit.probe:
                new = CircuitState.CLOSED if ok else CircuitState.OPEN
                changes += self._move(new, now, "probe succeeded" if ok else "probe failed")
                return
            self._outcomes.append((now, ok))
            if not ok:
                self._failures += 1
                changes += self._maybe_open(now)

    def _take(self, permit: Permit) -> bool:
        # Only this generation's unused permits are live: stale or reused ones do nothing.
        # Almost always the very object handed out: no field-by-field comparison then.
        live = self._live.get(permit.id)
        if live is not permit and live != permit:
            return False
        del self._live[permit.id]
        if permit.probe:
            self._probes -= 1
            del self._probe_granted[permit.id]
        return True

    def _maybe_open(self, now: float) -> list[StateChange]:
        p, failures, calls = self._policy, self._failures, len(self._outcomes)
        rate = p.failure_rate
        if failures < p.failure_threshold or (rate is not None and failures / calls < rate):
            return []
        counted = f"{failures} failures" if rate is None else f"{failures} of {calls} calls failed"
        return self._move(CircuitState.OPEN, now, f"{counted} in {p.window:g}s")

    def _retry_at(self) -> float:
        assert self._opened_at is not None
        return self._opened_at + self._policy.cooldown

    def _advance(self, now: float) -> list[StateChange]:
        self._last_now = max(self._last_now, now)
        horizon = now - self._policy.window
        while self._outcomes and self._outcomes[0][0] <= horizon:
            _, ok = self._outcomes.popleft()
            self._failures -= 0 if ok else 1
        if self._state is CircuitState.OPEN and now >= self._retry_at():
            return self._move(CircuitState.HALF_OPEN, now, "cooldown elapsed")
        # A probe not reported within a cooldown is forgotten, so a call that never comes
        # back (a hung thread, a dead process sharing the state) cannot hold the breaker
        # half-open for ever.
        cooldown = self._policy.cooldown
        for permit_id, granted in list(self._probe_granted.items() if self._probe_granted else ()):
            if granted + cooldown <= now:
                del self._probe_granted[permit_id], self._live[permit_id]
                self._probes -= 1
        return []

    def _move(self, new: CircuitState, now: float, reason: str) -> list[StateChange]:
        old, self._state = self._state, new
        self._generation += 1
        self._live.clear()
        self._probe_granted.clear()
        self._probes = 0
        if new is CircuitState.OPEN:
            self._opened_at = now
        elif new is CircuitState.CLOSED:
            self._opened_at = None
            self._outcomes.clear()
            self._failures = 0
        return [] if old is new else [StateChange(self._name, old, new, now, reason)]
