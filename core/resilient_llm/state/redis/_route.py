"""A route whose decisions run as one Redis script each, with this process's memory as the
fallback when Redis is out of reach.

Times cross the wire as offsets: a script returns the time it decided at, ``t``, and each
time ``x`` it reports lands on the caller's timeline at ``now + (x - t)``. So the engine's
clock and the Redis server's clock never need to agree, only to tick at the same rate.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from ..._forks import renew_locks
from ...clock import Clock
from ...errors import StateUnavailable
from ...events import Event, EventHandler, StateDown, StateRestored
from ...policies.breaker import (
    BreakerListener,
    BreakerPolicy,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    Permit,
    StateChange,
)
from ...policies.limiter import Limiter, LimiterSnapshot, RateLimit
from ..memory import Look, Route, RouteSnapshot, Slot, Ticket, _memory

__all__ = ["RedisPermit", "RedisRoute", "RedisSlot"]


class _Store(Protocol):
    """What a route reads of its ``RedisState`` (whose module imports this one)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def time(self) -> str: ...

    @property
    def on_unavailable(self) -> str: ...

    @property
    def retry_after(self) -> float: ...

    @property
    def script(self) -> Any: ...

    def keys(self, name: str) -> list[str]: ...


@dataclass(frozen=True)
class RedisSlot:
    """A limiter reservation held in Redis under ``id``."""

    id: str
    at: float
    wait: float


@dataclass(frozen=True)
class RedisPermit(Permit):
    """A breaker permit held in Redis (its ``id`` is unique across processes)."""


class _Down(Exception):
    """Redis did not answer; the caller falls back or fails closed."""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisRoute(Route):
    """One route's shared state in Redis; the inherited memory state is the fallback."""

    def __init__(
        self,
        state: _Store,
        name: str,
        limit: RateLimit,
        policy: BreakerPolicy,
        *,
        attempt_timeout: float | None,
        emit: EventHandler,
    ) -> None:
        super().__init__(
            name, Limiter(limit), CircuitBreaker(policy, name=name), attempt_timeout=attempt_timeout
        )
        self._state = state
        self._emit = emit
        self._keys = state.keys(name)
        self._args: list[str | float] = [
            limit.window,
            _opt(limit.requests_per_minute),
            _opt(limit.tokens_per_minute),
            policy.failure_threshold,
            _opt(policy.failure_rate),
            policy.window,
            policy.cooldown,
            policy.half_open_probes,
        ]
        self._listeners: list[BreakerListener] = []
        self._seen = CircuitState.CLOSED
        self._turn = threading.Lock()
        renew_locks(self, "_turn")  # redis-py's pool makes a child its own connections
        self._down_since: float | None = None
        self._retry_at = -math.inf

    # -- the one round trip --------------------------------------------------------

    def _run(self, op: str, now: float, *args: str | float | None) -> tuple[float, list[Any]]:
        """Run ``op``; return the script's decision time and its result. Raises _Down.

        This process's calls on the route take turns (one short round trip each), so their
        replies are read in the order Redis ran them and a reply older than one already read
        is never taken for a change made by another process. Events go out after the turn,
        so a listener may call back into the route.
        """
        notices: list[Event] = []
        changes: list[StateChange] = []
        with self._turn:
            if self._state.clock.now() < self._retry_at:
                raise _Down
            when = "" if self._state.time == "server" else repr(now)
            try:
                reply = self._state.script(
                    keys=self._keys, args=[op, when, *self._args, *(_opt(a) for a in args)]
                )
            except redis.RedisError as exc:
                failure: redis.RedisError | None = exc
                notices += self._went_down(exc, now)
            else:
                failure = None
                notices += self._came_back(now)
                t, state, made, result = reply
                t = float(_text(t))
                changes = self._changes(now, t, _text(state), made)
        for notice in notices:
            self._emit(notice)
        if failure is not None:
            raise _Down from failure
        for change in changes:
            for listener in tuple(self._listeners):
                listener(change)
        return t, result

    def _went_down(self, exc: Exception, now: float) -> list[Event]:
        self._retry_at = self._state.clock.now() + self._state.retry_after
        if self._down_since is not None:
            return []
        self._down_since = self._state.clock.now()
        return [StateDown(self.name, now, type(exc).__name__, self._state.on_unavailable)]

    def _came_back(self, now: float) -> list[Event]:
        if self._down_since is None:
            return []
        since, self._down_since = self._down_since, None
        return [StateRestored(self.name, now, self._state.clock.now() - since)]

    def _decide_locally(self) -> None:
        if self._state.on_unavailable == "fail":
            raise StateUnavailable(
                f"route {self.name!r}: the shared state store is unreachable and "
                "RedisState(on_unavailable='fail') forbids deciding without it",
                provider=self.name,
            )

    def _changes(self, now: float, t: float, state: str, made: list[Any]) -> list[StateChange]:
        # Transitions this script made carry their reason; a state that differs from the
        # last one seen here was changed by another process.
        events = []
        for old, new, at, reason in made:
            at_here = now + (float(_text(at)) - t)
            events.append(
                StateChange(
                    self.name,
                    CircuitState(_text(old)),
                    CircuitState(_text(new)),
                    at_here,
                    _text(reason),
                )
            )
        current = CircuitState(state)
        seen = self._seen
        if events and events[0].old is not seen:
            events.insert(0, StateChange(self.name, seen, events[0].old, now, "by another process"))
        elif not events and current is not seen:
            events.append(StateChange(self.name, seen, current, now, "by another process"))
        self._seen = current
        return events

    # -- decisions -----------------------------------------------------------------

    def look(self, tokens: int, now: float) -> Look:
        try:
            t, (ready, paused, wait) = self._run("look", now, tokens, self._hold(tokens, now))
        except _Down:
            self._decide_locally()
            return super().look(tokens, now)
        return Look(_here(ready, now, t), _here(paused, now, t), float(_text(wait)))

    def admit(self, tokens: int, now: float) -> Ticket:
        try:
            t, result = self._run("admit", now, tokens, self._hold(tokens, now))
        except _Down:
            self._decide_locally()
            return super().admit(tokens, now)
        if not result:
            return Ticket(None, None)
        at = _here(result[1], now, t)
        self._consumed(tokens, at)
        slot = RedisSlot(_text(result[0]), at, max(0.0, at - now))
        if len(result) == 2:
            return Ticket(slot, None)
        return Ticket(slot, _permit(result[2:]))

    def learn(self, limit: RateLimit) -> None:
        super().learn(limit)
        learnt = self.rate_limit
        with self._turn:
            self._args[1] = _opt(learnt.requests_per_minute)
            self._args[2] = _opt(learnt.tokens_per_minute)

    def _hold(self, tokens: int, now: float) -> float | None:
        """Seconds the provider's own account holds this request back, if it does."""
        not_before = self._not_before(tokens, now)
        return None if not_before is None else not_before - now

    def acquire(self, now: float) -> Permit | None:
        try:
            _, result = self._run("acquire", now)
        except _Down:
            self._decide_locally()
            return super().acquire(now)
        return _permit(result) if result else None

    def ready_at(self, now: float) -> float:
        try:
            t, (ready,) = self._run("ready", now)
        except _Down:
            self._decide_locally()
            return super().ready_at(now)
        return _here(ready, now, t)

    # -- outcomes: best effort, a finished call never fails on the state store -------

    # A slot and its permit may come from different sides of a fallback (a slot queued in
    # Redis, then a permit from memory while Redis was away, or the reverse): each goes
    # back where it came from, and a memory permit's id never reaches Redis.

    def succeed(self, slot: Slot, permit: Permit, now: float, usage_tokens: int | None) -> None:
        if isinstance(slot, RedisSlot) and isinstance(permit, RedisPermit):
            self._record("succeed", now, slot.id, permit.id, usage_tokens)
            return
        if isinstance(permit, RedisPermit):
            self._record("succeed", now, None, permit.id)
        else:
            self.breaker.record_success(permit, now)
        if usage_tokens is None:
            return
        if isinstance(slot, RedisSlot):
            self._record("succeed", now, slot.id, None, usage_tokens)  # settles only
        else:
            _memory(slot).settle(usage_tokens)

    def fail(self, slot: Slot, permit: Permit, now: float) -> None:
        if not isinstance(permit, RedisPermit):
            super().fail(slot, permit, now)
        else:
            self._record("fail", now, None, permit.id)

    def release(self, permit: Permit) -> None:
        if not isinstance(permit, RedisPermit):
            super().release(permit)
        else:
            self._record("release", None, None, permit.id)

    def cancel(self, slot: Slot) -> None:
        if not isinstance(slot, RedisSlot):
            super().cancel(slot)
        else:
            self._record("cancel", None, slot.id)

    def withdraw(self, slot: Slot, permit: Permit) -> None:
        if isinstance(slot, RedisSlot) and isinstance(permit, RedisPermit):
            self._record("withdraw", None, slot.id, permit.id)
        else:
            self.cancel(slot)
            self.release(permit)

    def pause(self, now: float, seconds: float) -> None:
        # The memory pause is kept as well, so a fallback still honours it.
        super().pause(now, seconds)
        self._record("pause", now, seconds)

    def _record(self, op: str, now: float | None, *args: str | float | None) -> None:
        moment = self._state.clock.now() if now is None else now
        # On _Down, StateDown was announced; the keys expire, so nothing is left dangling.
        with contextlib.suppress(_Down):
            self._run(op, moment, *args)

    # -- observation ---------------------------------------------------------------

    def add_breaker_listener(self, listener: BreakerListener) -> None:
        super().add_breaker_listener(listener)
        if listener not in self._listeners:
            self._listeners.append(listener)

    def reset(self, now: float) -> None:
        """Close the shared breaker and clear its counts, for every process."""
        self._record("reset", now)

    def shared_snapshot(self, now: float) -> RouteSnapshot:
        try:
            t, result = self._run("snapshot", now)
        except _Down:
            return super().shared_snapshot(now)
        admitted, used, size, total, first, failures, calls, opened, probes, paused = (
            _text(v) for v in result
        )
        rpm, tpm, window = (
            self.rate_limit.requests_per_minute,
            self.rate_limit.tokens_per_minute,
            self.rate_limit.window,
        )
        limiter = LimiterSnapshot(
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
            requests_used=int(admitted),
            estimated_tokens=int(used),
            queue_length=int(size) - int(admitted),
            refill_time=_here(first, now, t) + window - now if first else 0.0,
            requests_remaining=None if rpm is None else max(0, rpm - int(size)),
            tokens_remaining=None if tpm is None else max(0, tpm - int(total)),
        )
        opened_at = _here(opened, now, t) if opened else None
        state = self._seen
        breaker = BreakerSnapshot(
            state,
            int(failures),
            int(calls),
            opened_at,
            opened_at + self.breaker.policy.cooldown
            if state is CircuitState.OPEN and opened_at is not None
            else None,
            int(probes),
        )
        return RouteSnapshot(
            name=self.name,
            limiter=limiter,
            breaker=breaker,
            paused_for=max(0.0, _here(paused, now, t) - now),
            disabled=self.disabled,
        )

    def __repr__(self) -> str:
        return f"RedisRoute({self.name!r})"


def _opt(value: str | float | None) -> str | float:
    return "" if value is None else value


def _here(value: object, now: float, t: float) -> float:
    # On the engine's own clock (time="client") the script decided at ``now`` itself and its
    # times are already ours: returned as they are, with no rounding from the round trip.
    x = float(_text(value))
    return x if math.isinf(x) or t == now else now + (x - t)


def _permit(fields: list[Any]) -> RedisPermit:
    permit_id, probe, generation = (_text(v) for v in fields)
    return RedisPermit(probe=probe == "1", generation=int(generation), id=int(permit_id))
