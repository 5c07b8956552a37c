"""A route whose decisions run as one Redis script each, with this process's memory as the
fallback when Redis is out of reach.

Times cross the wire as offsets: a script returns the time it decided at, ``t``, and each
time ``x`` it reports lands on the caller's timeline at ``now + (x - t)``. So the engine's
clock and the Redis server's clock never need to agree, only to tick at the same rate.

Each operation is planned once (:class:`_Plan`: the script's op and arguments, how to read
its reply, what to do when Redis is away) and run either blocking, for sync calls, or
awaited on the running loop's own ``redis.asyncio`` client, for async calls: a slow Redis
then delays only the calls that wait on it, never the event loop. No lock is held across
a round trip.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from ..._forks import renew_locks
from ...clock import Clock
from ...errors import StateUnavailable
from ...events import Event, EventHandler, StateDown, StateRestored
from ...flow.ops import FinishHow, Look, OpName, Slot, Ticket
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
from ..memory import Route, RouteSnapshot, _memory

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

    def async_script(self) -> Any:
        """The script on the running loop's own async client."""
        ...

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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Plan:
    """One operation: the script's ``op`` and arguments, ``read`` for its reply (given the
    script's decision time and result), ``local`` when Redis is away. ``best_effort``: an
    outcome, recorded if Redis answers, dropped (after StateDown) if not."""

    op: str
    now: float | None
    args: tuple[str | float | None, ...]
    read: Callable[[float, list[Any]], Any]
    local: Callable[[], Any]
    best_effort: bool = False


def _nothing(t: float, result: list[Any]) -> None:
    return None


class RedisRoute(Route):
    """One route's shared state in Redis; the inherited memory state is the fallback."""

    remote = True

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
        # The breaker generation of the newest reply read: an older reply, read late
        # because its round trip was slower, must not be taken for another process's change.
        self._latest = -1
        # Who this route object is to the script: a breaker move records its mover.
        self._me = uuid.uuid4().hex
        # Guards only this process's bookkeeping of replies (no I/O under it).
        self._book = threading.Lock()
        renew_locks(self, "_book")
        self._down_since: float | None = None
        self._retry_at = -math.inf

    # -- running a plan -----------------------------------------------------------

    def _script_args(self, plan: _Plan, now: float) -> tuple[list[str], list[str | float]]:
        when = "" if self._state.time == "server" else repr(now)
        with self._book:
            fixed = list(self._args)
        op = f"{plan.op}|{self._me}"
        return self._keys, [op, when, *fixed, *(_opt(a) for a in plan.args)]

    def _execute(self, plan: _Plan) -> Any:
        now = self._state.clock.now() if plan.now is None else plan.now
        if not plan.op or self._state.clock.now() < self._retry_at:
            return self._away(plan, None, now)
        keys, args = self._script_args(plan, now)
        try:
            reply = self._state.script(keys=keys, args=args)
        except redis.RedisError as exc:
            return self._away(plan, exc, now)
        return self._read(plan, reply, now)

    async def _aexecute(self, plan: _Plan) -> Any:
        now = self._state.clock.now() if plan.now is None else plan.now
        if not plan.op or self._state.clock.now() < self._retry_at:
            return self._away(plan, None, now)
        keys, args = self._script_args(plan, now)
        try:
            script = self._state.async_script()
            reply = await script(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            return self._away(plan, exc, now)
        return self._read(plan, reply, now)

    def _read(self, plan: _Plan, reply: Any, now: float) -> Any:
        """Take a script's reply: note Redis is back, announce breaker changes, read it.
        Events go out with no lock held, so a listener may call back into the route."""
        t, state, made, result, generation, mover = reply
        t = float(_text(t))
        with self._book:
            notices = self._came_back(now)
            changes = self._changes(
                now, t, _text(state), made, int(_text(generation)), _text(mover)
            )
        for notice in notices:
            self._emit(notice)
        for change in changes:
            for listener in tuple(self._listeners):
                listener(change)
        return plan.read(t, result)

    def _away(self, plan: _Plan, exc: Exception | None, now: float) -> Any:
        """Redis did not answer (``exc``), is still in its retry pause (None), or the plan
        has nothing for Redis to do."""
        if not plan.op:
            return plan.local()
        if exc is not None:
            with self._book:
                notices = self._went_down(exc, now)
            for notice in notices:
                self._emit(notice)
        if plan.best_effort:
            # StateDown was announced; the keys expire, so nothing is left dangling.
            return plan.local()
        self._decide_locally()
        return plan.local()

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

    def _changes(
        self, now: float, t: float, state: str, made: list[Any], generation: int, mover: str
    ) -> list[StateChange]:
        """The breaker changes a reply tells of. Transitions this script made are ours and
        carry their reason. A reply newer than any read (by the breaker's generation) whose
        state differs from the last seen tells of a change another process made, unless
        the last mover was this route object (then its own reply, perhaps still in flight
        on another thread or task, announces it)."""
        events = [
            StateChange(
                self.name,
                CircuitState(_text(old)),
                CircuitState(_text(new)),
                now + (float(_text(at)) - t),
                _text(reason),
            )
            for old, new, at, reason in made
        ]
        if generation <= self._latest:
            return events
        self._latest = generation
        current = CircuitState(state)
        if not events and current is not self._seen and mover != self._me:
            events.append(StateChange(self.name, self._seen, current, now, "by another process"))
        self._seen = current
        return events

    # -- the flow's effects ----------------------------------------------------------

    def perform(self, name: OpName, args: tuple[Any, ...]) -> Any:
        return self._execute(self._plan(name, args))

    async def aperform(self, name: OpName, args: tuple[Any, ...]) -> Any:
        return await self._aexecute(self._plan(name, args))

    def _plan(self, name: OpName, args: tuple[Any, ...]) -> _Plan:
        plan: Callable[..., _Plan] = getattr(self, f"_{name}")
        return plan(*args)

    def finish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        for plan in self._finish_plans(how, slot, permit, now, tokens):
            self._execute(plan)

    async def afinish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        for plan in self._finish_plans(how, slot, permit, now, tokens):
            await self._aexecute(plan)

    # -- decisions -----------------------------------------------------------------

    def look(self, tokens: int, now: float) -> Look:
        result: Look = self._execute(self._look(tokens, now))
        return result

    def _look(self, tokens: int, now: float) -> _Plan:
        def read(t: float, result: list[Any]) -> Look:
            ready, paused, wait = result
            return Look(_here(ready, now, t), _here(paused, now, t), float(_text(wait)))

        return _Plan(
            "look",
            now,
            (tokens, self._hold(tokens, now)),
            read,
            lambda: Route.look(self, tokens, now),
        )

    def admit(self, tokens: int, now: float) -> Ticket:
        result: Ticket = self._execute(self._admit(tokens, now))
        return result

    def _admit(self, tokens: int, now: float) -> _Plan:
        def read(t: float, result: list[Any]) -> Ticket:
            if not result:
                return Ticket(None, None)
            at = _here(result[1], now, t)
            self._consumed(tokens, at)
            slot = RedisSlot(_text(result[0]), at, max(0.0, at - now))
            if len(result) == 2:
                return Ticket(slot, None)
            return Ticket(slot, _permit(result[2:]))

        return _Plan(
            "admit",
            now,
            (tokens, self._hold(tokens, now)),
            read,
            lambda: Route.admit(self, tokens, now),
        )

    def learn(self, limit: RateLimit) -> None:
        super().learn(limit)
        learnt = self.rate_limit
        with self._book:
            self._args[1] = _opt(learnt.requests_per_minute)
            self._args[2] = _opt(learnt.tokens_per_minute)

    def _hold(self, tokens: int, now: float) -> float | None:
        """Seconds the provider's own account holds this request back, if it does."""
        not_before = self._not_before(tokens, now)
        return None if not_before is None else not_before - now

    def acquire(self, now: float) -> Permit | None:
        result: Permit | None = self._execute(self._acquire(now))
        return result

    def _acquire(self, now: float) -> _Plan:
        def read(t: float, result: list[Any]) -> Permit | None:
            return _permit(result) if result else None

        return _Plan("acquire", now, (), read, lambda: Route.acquire(self, now))

    def ready_at(self, now: float) -> float:
        result: float = self._execute(self._ready_at(now))
        return result

    def _ready_at(self, now: float) -> _Plan:
        def read(t: float, result: list[Any]) -> float:
            return _here(result[0], now, t)

        return _Plan("ready", now, (), read, lambda: Route.ready_at(self, now))

    # -- outcomes: best effort, a finished call never fails on the state store -------

    # A slot and its permit may come from different sides of a fallback (a slot queued in
    # Redis, then a permit from memory while Redis was away, or the reverse): each goes
    # back where it came from, and a memory permit's id never reaches Redis.

    def _finish_plans(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> list[_Plan]:
        in_redis = isinstance(slot, RedisSlot), isinstance(permit, RedisPermit)
        slot_id = slot.id if isinstance(slot, RedisSlot) else None
        permit_id = permit.id if isinstance(permit, RedisPermit) else None
        plans: list[_Plan] = []
        if how == "succeed":
            assert now is not None, "a success is recorded at a time"
            if in_redis == (True, True):
                return [self._record("succeed", now, slot_id, permit_id, tokens)]
            if permit_id is not None:
                plans.append(self._record("succeed", now, None, permit_id))
            else:
                self.breaker.record_success(permit, now)
            if tokens is not None:
                if slot_id is not None:
                    plans.append(self._record("succeed", now, slot_id, None, tokens))  # settles
                else:
                    _memory(slot).settle(tokens)
            return plans
        if how == "fail":
            assert now is not None, "a failure is recorded at a time"
            if permit_id is None:
                super().fail(slot, permit, now)
                return []
            return [self._record("fail", now, None, permit_id)]
        if how == "withdraw" and in_redis == (True, True):
            return [self._record("withdraw", None, slot_id, permit_id)]
        if how == "withdraw":
            plans += self._cancel_plans(slot)
        if permit_id is None:
            super().release(permit)
        else:
            plans.append(self._record("release", None, None, permit_id))
        return plans

    def _cancel_plans(self, slot: Slot) -> list[_Plan]:
        if not isinstance(slot, RedisSlot):
            super().cancel(slot)
            return []
        return [self._record("cancel", None, slot.id)]

    def _cancel(self, slot: Slot) -> _Plan:
        plans = self._cancel_plans(slot)
        return plans[0] if plans else _Plan("", None, (), _nothing, lambda: None, True)

    def succeed(self, slot: Slot, permit: Permit, now: float, usage_tokens: int | None) -> None:
        self.finish("succeed", slot, permit, now, usage_tokens)

    def fail(self, slot: Slot, permit: Permit, now: float) -> None:
        self.finish("fail", slot, permit, now, None)

    def release(self, permit: Permit) -> None:
        if not isinstance(permit, RedisPermit):
            super().release(permit)
        else:
            self._execute(self._record("release", None, None, permit.id))

    def cancel(self, slot: Slot) -> None:
        for plan in self._cancel_plans(slot):
            self._execute(plan)

    def withdraw(self, slot: Slot, permit: Permit) -> None:
        self.finish("withdraw", slot, permit, None, None)

    def pause(self, now: float, seconds: float) -> None:
        self._execute(self._pause(now, seconds))

    def _pause(self, now: float, seconds: float) -> _Plan:
        # The memory pause is kept as well, so a fallback still honours it.
        super().pause(now, seconds)
        return self._record("pause", now, seconds)

    def _record(self, op: str, now: float | None, *args: str | float | None) -> _Plan:
        return _Plan(op, now, args, _nothing, lambda: None, best_effort=True)

    # -- observation ---------------------------------------------------------------

    def add_breaker_listener(self, listener: BreakerListener) -> None:
        super().add_breaker_listener(listener)
        if listener not in self._listeners:
            self._listeners.append(listener)

    def reset(self, now: float) -> None:
        """Close the shared breaker and clear its counts, for every process."""
        self._execute(self._record("reset", now))

    def shared_snapshot(self, now: float) -> RouteSnapshot:
        plan = _Plan(
            "snapshot",
            now,
            (),
            lambda t, result: self._read_snapshot(now, t, result),
            lambda: Route.shared_snapshot(self, now),
            best_effort=True,
        )
        snapshot: RouteSnapshot = self._execute(plan)
        return snapshot

    def _read_snapshot(self, now: float, t: float, result: list[Any]) -> RouteSnapshot:
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
