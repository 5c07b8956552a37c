"""A route whose decisions run as one Redis script each, with this process's memory as the
fallback when Redis is out of reach.

Times cross the wire as offsets: a script returns the time it decided at, ``t``, and each
time ``x`` it reports lands on the caller's timeline at ``now + (x - t)``. So the engine's
clock and the Redis server's clock never need to agree, only to tick at the same rate (a
step of the server's clock is undone by the script, see ``route.lua``).

Each operation is planned once (a :class:`~._exchange.Plan`) and run by the route's
:class:`~._exchange.Exchange`, blocking for sync calls or awaited for async ones: a slow
Redis then delays only the calls that wait on it, never the event loop.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..._forks import renew_locks
from ...errors import ConfigurationError
from ...events import EventHandler
from ...flow.ops import FinishHow, Look, OpName, Slot, Ticket
from ...policies.breaker import (
    BreakerListener,
    BreakerPolicy,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    Permit,
)
from ...policies.limiter import Limiter, LimiterSnapshot, RateLimit, Reservation
from ..memory import Route, RouteSnapshot, _memory
from ._exchange import Exchange, Plan, Store, nothing, opt, text

__all__ = ["RedisPermit", "RedisRoute", "RedisSlot"]


@dataclass(frozen=True)
class RedisSlot:
    """A limiter reservation held in Redis under ``id``."""

    id: str
    at: float
    wait: float
    # The same admission in the memory fallback's log (see ``Limiter.note``).
    mirror: Reservation | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RedisPermit(Permit):
    """A breaker permit held in Redis, handed back by ``key``: its ``id`` and the nonce of
    the call that took it, so unique even after Redis lost the counter ids come from."""

    key: str = ""


class RedisRoute(Route):
    """One route's shared state in Redis; the inherited memory state is the fallback."""

    remote = True

    def __init__(
        self,
        state: Store,
        name: str,
        limit: RateLimit,
        policy: BreakerPolicy,
        *,
        attempt_timeout: float | None,
        emit: EventHandler,
    ) -> None:
        if limit.several:
            # route.lua keeps one log of requests and total tokens; admitting by part of
            # the limits would break the promise silently.
            raise ConfigurationError(
                f"route {name!r}: RedisState enforces one window of requests and tokens; "
                f"{limit!r} has more (several windows, or input/output token limits)"
            )
        super().__init__(
            name, Limiter(limit), CircuitBreaker(policy, name=name), attempt_timeout=attempt_timeout
        )
        self._state = state
        args: list[str | float] = [
            limit.window,
            opt(limit.requests_per_minute),
            opt(limit.tokens_per_minute),
            policy.failure_threshold,
            opt(policy.failure_rate),
            policy.window,
            policy.cooldown,
            policy.half_open_probes,
        ]
        self._exchange = Exchange(state, name, args, emit)
        # The memory fallback applies this process's share of the quota: while Redis is
        # away, the processes Redis last saw on the route split it between them.
        self._exchange.on_peers = self._heard
        self._parts = 1
        # This process's admissions of the last window, from Redis (with their id there) or
        # from memory: written into Redis when it answers after an outage (:meth:`_return`),
        # so a Redis restarted empty still counts them.
        self._recent: deque[tuple[str, Reservation]] = deque()
        # Guards that and the share in force (no I/O under it).
        self._recent_lock = threading.Lock()
        renew_locks(self, "_recent_lock")
        self._exchange.on_return = self._return
        # Until then (a window after Redis came back) the share holds admissions back too:
        # processes that have not written their outage admissions back yet may hold the
        # rest of the window's quota.
        self._careful_until = -math.inf

    # -- the flow's effects ----------------------------------------------------------

    def perform(
        self,
        name: OpName,
        args: tuple[Any, ...],
        *,
        budget: float | None = None,
        local: bool = False,
    ) -> tuple[Any, bool]:
        """A blocking round trip, unless the call asks for a local decision or has less time
        for the store than a command may take (a blocking read cannot be cut shorter)."""
        plan = self._plan(name, args)
        if local or (budget is not None and budget < self._state.timeout):
            return self._exchange.local(plan), True
        return self._exchange.run(plan)

    async def aperform(
        self,
        name: OpName,
        args: tuple[Any, ...],
        *,
        budget: float | None = None,
        local: bool = False,
    ) -> tuple[Any, bool]:
        """An awaited round trip; the driver cuts it at the call's budget (and then asks
        for the local decision)."""
        plan = self._plan(name, args)
        if local:
            return self._exchange.local(plan), True
        return await self._exchange.arun(plan)

    def _plan(self, name: OpName, args: tuple[Any, ...]) -> Plan:
        plan: Callable[..., Plan] = getattr(self, f"_{name}")
        return plan(*args)

    def finish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        for plan in self._finish_plans(how, slot, permit, now, tokens):
            self._exchange.run(plan)

    async def afinish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        for plan in self._finish_plans(how, slot, permit, now, tokens):
            await self._exchange.arun(plan)

    # -- decisions -----------------------------------------------------------------

    def look(self, tokens: int, now: float) -> Look:
        result: Look = self._exchange.run(self._look(tokens, now))[0]
        return result

    def _look(self, tokens: int, now: float) -> Plan:
        def read(t: float, result: list[Any]) -> Look:
            ready, paused, wait = result
            return Look(_here(ready, now, t), _here(paused, now, t), float(text(wait)))

        return Plan(
            "look",
            now,
            (tokens, self._hold(tokens, now)),
            read,
            lambda: Route.look(self, tokens, now),
        )

    def admit(self, tokens: int, now: float) -> Ticket:
        result: Ticket = self._exchange.run(self._admit(tokens, now))[0]
        return result

    def _admit(self, tokens: int, now: float) -> Plan:
        def read(t: float, result: list[Any]) -> Ticket:
            if not result:
                return Ticket(None, None)
            at = _here(result[1], now, t)
            self._consumed(tokens, at)
            # A fallback that starts within the window still counts this admission.
            mirror = self.limiter.note(tokens, at, now)
            slot = RedisSlot(text(result[0]), at, max(0.0, at - now), mirror)
            self._remember(slot.id, mirror, now)
            if len(result) == 2:
                return Ticket(slot, None)
            return Ticket(slot, _permit(result[2:]))

        return Plan(
            "admit",
            now,
            (tokens, self._hold(tokens, now)),
            read,
            lambda: self._admit_locally(tokens, now),
        )

    def _heard(self, peers: int, now: float) -> None:
        # A Redis restarted empty counts the processes afresh as each comes back: until a
        # window has passed, the share stays as small as it was.
        with self._recent_lock:
            parts = max(self._parts, peers) if now < self._careful_until else peers
            if parts != self._parts:
                self._parts = parts
                self.limiter.share(parts)

    def _admit_locally(self, tokens: int, now: float) -> Ticket:
        ticket = Route.admit(self, tokens, now)
        if isinstance(ticket.slot, Reservation):
            self._remember("", ticket.slot, now)
        return ticket

    def _remember(self, slot_id: str, reservation: Reservation, now: float) -> None:
        window = self.rate_limit.window
        with self._recent_lock:
            recent = self._recent
            while recent and recent[0][1].at + window <= now:
                recent.popleft()
            recent.append((slot_id, reservation))

    def _return(self, now: float) -> Plan | None:
        """What goes to Redis first when it may be back: every admission of this process
        still counting (the script skips those it still has)."""
        window = self.rate_limit.window
        self._careful_until = max(self._careful_until, now + window)
        with self._recent_lock:
            kept = [
                (slot_id, r)
                for slot_id, r in self._recent
                if not r.cancelled and r.at + window > now
            ]
        if not kept:
            return None
        triples: list[str | float | None] = []
        for slot_id, reservation in kept:
            triples += [slot_id, reservation.at - now, reservation.tokens]
        return Plan("seed", now, tuple(triples), nothing, lambda: None, best_effort=True)

    def learn(self, limit: RateLimit) -> None:
        super().learn(limit)
        learnt = self.rate_limit
        self._exchange.set_limits(learnt.requests_per_minute, learnt.tokens_per_minute)

    def _hold(self, tokens: int, now: float) -> float | None:
        """Seconds the provider's own account holds this request back, if it does; and
        this process's share, while Redis is away and for a window after it is back."""
        not_before = self._not_before(tokens, now)
        if self._exchange.away or now < self._careful_until:
            return self.limiter.peek(tokens, now, not_before)
        return None if not_before is None else not_before - now

    def acquire(self, now: float) -> Permit | None:
        result: Permit | None = self._exchange.run(self._acquire(now))[0]
        return result

    def _acquire(self, now: float) -> Plan:
        def read(t: float, result: list[Any]) -> Permit | None:
            return _permit(result) if result else None

        return Plan("acquire", now, (), read, lambda: Route.acquire(self, now))

    def ready_at(self, now: float) -> float:
        result: float = self._exchange.run(self._ready_at(now))[0]
        return result

    def _ready_at(self, now: float) -> Plan:
        def read(t: float, result: list[Any]) -> float:
            return _here(result[0], now, t)

        return Plan("ready", now, (), read, lambda: Route.ready_at(self, now))

    # -- outcomes: best effort, a finished call never fails on the state store -------

    # A slot and its permit may come from different sides of a fallback (a slot queued in
    # Redis, then a permit from memory while Redis was away, or the reverse): each goes
    # back where it came from, and a memory permit's id never reaches Redis.

    def _finish_plans(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> list[Plan]:
        if isinstance(slot, RedisSlot) and slot.mirror is not None:
            if how == "succeed" and tokens is not None:
                slot.mirror.settle(tokens)
            elif how == "withdraw":
                slot.mirror.cancel()
        in_redis = isinstance(slot, RedisSlot), isinstance(permit, RedisPermit)
        slot_id = slot.id if isinstance(slot, RedisSlot) else None
        permit_id = permit.key if isinstance(permit, RedisPermit) else None
        plans: list[Plan] = []
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

    def _cancel_plans(self, slot: Slot) -> list[Plan]:
        if not isinstance(slot, RedisSlot):
            super().cancel(slot)
            return []
        if slot.mirror is not None:
            slot.mirror.cancel()
        return [self._record("cancel", None, slot.id)]

    def _cancel(self, slot: Slot) -> Plan:
        plans = self._cancel_plans(slot)
        return plans[0] if plans else Plan("", None, (), nothing, lambda: None, True)

    def succeed(self, slot: Slot, permit: Permit, now: float, usage_tokens: int | None) -> None:
        self.finish("succeed", slot, permit, now, usage_tokens)

    def fail(self, slot: Slot, permit: Permit, now: float) -> None:
        self.finish("fail", slot, permit, now, None)

    def release(self, permit: Permit) -> None:
        if not isinstance(permit, RedisPermit):
            super().release(permit)
        else:
            self._exchange.run(self._record("release", None, None, permit.key))

    def cancel(self, slot: Slot) -> None:
        for plan in self._cancel_plans(slot):
            self._exchange.run(plan)

    def withdraw(self, slot: Slot, permit: Permit) -> None:
        self.finish("withdraw", slot, permit, None, None)

    def pause(self, now: float, seconds: float) -> None:
        self._exchange.run(self._pause(now, seconds))

    def _pause(self, now: float, seconds: float) -> Plan:
        # The memory pause is kept as well, so a fallback still honours it.
        super().pause(now, seconds)
        return self._record("pause", now, seconds)

    def _record(self, op: str, now: float | None, *args: str | float | None) -> Plan:
        return Plan(op, now, args, nothing, lambda: None, best_effort=True)

    # -- observation ---------------------------------------------------------------

    def add_breaker_listener(self, listener: BreakerListener) -> None:
        super().add_breaker_listener(listener)
        if listener not in self._exchange.listeners:
            self._exchange.listeners.append(listener)

    def reset(self, now: float) -> None:
        """Close the shared breaker and clear its counts, for every process."""
        self._exchange.run(self._record("reset", now))

    def shared_snapshot(self, now: float) -> RouteSnapshot:
        plan = Plan(
            "snapshot",
            now,
            (),
            lambda t, result: self._read_snapshot(now, t, result),
            lambda: Route.shared_snapshot(self, now),
            best_effort=True,
        )
        snapshot: RouteSnapshot = self._exchange.run(plan)[0]
        return snapshot

    def _read_snapshot(self, now: float, t: float, result: list[Any]) -> RouteSnapshot:
        admitted, used, size, total, first, failures, calls, opened, probes, paused = (
            text(v) for v in result
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
        state = self._exchange.seen
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


def _here(value: object, now: float, t: float) -> float:
    # On the engine's own clock (time="client") the script decided at ``now`` itself and its
    # times are already ours: returned as they are, with no rounding from the round trip.
    x = float(text(value))
    return x if math.isinf(x) or t == now else now + (x - t)


def _permit(fields: list[Any]) -> RedisPermit:
    permit_id, probe, generation, key = (text(v) for v in fields)
    return RedisPermit(probe=probe == "1", generation=int(generation), id=int(permit_id), key=key)
