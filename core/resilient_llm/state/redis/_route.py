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
from ...events import EventHandler
from ...flow.ops import FinishHow, Look, OpName, Slot, Ticket
from ...policies.breaker import (
    BreakerListener,
    BreakerPolicy,
    CircuitBreaker,
    Permit,
)
from ...policies.hints import DEFAULT_CAP, RateLimitHints
from ...policies.limiter import (
    MAX_IN_FLIGHT,
    Limiter,
    RateLimit,
    Reservation,
)
from ...policies.rate_limit import DIMENSIONS
from ..memory import Route, RouteSnapshot, _memory
from ._codec import RedisPermit, charged, here, permit, read_snapshot, windows_spec
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
        # The limiter's argument (its windows and the in-flight time) follows what the
        # route learns, so it is made for each call.
        self._exchange.limiter_arg = self._limiter_arg
        self._spec: tuple[RateLimit, str] | None = None
        # Windows a 429 named, for Redis: sent ahead of the route's next operation, so
        # ``observe`` (called inline by the flow, on an event loop too) never blocks.
        self._told: list[Plan] = []
        # This process's admissions of the last window: when, and the in-flight time they
        # were decided with (see ``_may_be_overdrawn``).
        self._extras: deque[tuple[float, float]] = deque()
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

    def _limiter_arg(self) -> str:
        """ARGV[3] of ``route.lua``: the first window, then (when counted) the in-flight
        time and every window, for a limit the one-window path cannot hold."""
        limit = self.rate_limit
        cached = self._spec
        if cached is None or cached[0] is not limit:
            cached = self._spec = (limit, windows_spec(limit))
        limiter = self.limiter
        # Not ``in_flight`` alone: a limiter counting in-flight time that learnt 0 still
        # takes back a queued slot woken into an overdraft (limiter.py's ``overdrawn``).
        # With the most it may grow to: the log keeps entries as long as that could count.
        counting = "" if limiter._flights is None else f"{limiter.in_flight!r}/{MAX_IN_FLIGHT!r}"
        if not counting and not cached[1]:
            return repr(float(limit.window))
        return f"{float(limit.window)!r}~{counting}~{cached[1]}"

    def _need(self, tokens: int) -> str:
        """A request's tokens for the script (see :func:`._codec.charged`)."""
        return charged(self.limiter._charge(tokens))

    def _usage(self, tokens: int) -> str:
        """What a reply's usage charges, as the memory route settles it."""
        return charged(self.limiter._charge(tokens, cached_counts=self.cache_reads_count))

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
        return self._run(plan)

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
        return await self._arun(plan)

    def _plan(self, name: OpName, args: tuple[Any, ...]) -> Plan:
        plan: Callable[..., Plan] = getattr(self, f"_{name}")
        return plan(*args)

    def finish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        for plan in self._finish_plans(how, slot, permit, now, tokens):
            self._run(plan)

    async def afinish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None:
        for plan in self._finish_plans(how, slot, permit, now, tokens):
            await self._arun(plan)

    # -- decisions -----------------------------------------------------------------

    def look(self, tokens: int, now: float) -> Look:
        result: Look = self._run(self._look(tokens, now))[0]
        return result

    def _look(self, tokens: int, now: float) -> Plan:
        def read(t: float, result: list[Any]) -> Look:
            ready, paused, wait = result
            return Look(here(ready, now, t), here(paused, now, t), float(text(wait)))

        return Plan(
            "look",
            now,
            (self._need(tokens), self._hold(tokens, now)),
            read,
            lambda: Route.look(self, tokens, now),
        )

    def admit(self, tokens: int, now: float) -> Ticket:
        result: Ticket = self._run(self._admit(tokens, now))[0]
        return result

    def _admit(self, tokens: int, now: float) -> Plan:
        extra = self.limiter.in_flight

        def read(t: float, result: list[Any]) -> Ticket:
            if not result:
                return Ticket(None, None)
            at = here(result[1], now, t)
            with self._recent_lock:
                self._extras.append((at, extra))
            self._consumed(tokens, at)
            # A fallback that starts within the window still counts this admission.
            mirror = self.limiter.note(tokens, at, now)
            slot = RedisSlot(text(result[0]), at, max(0.0, at - now), mirror)
            self._remember(slot.id, mirror, now)
            if len(result) == 2:
                return Ticket(slot, None)
            return Ticket(slot, permit(result[2:]))

        return Plan(
            "admit",
            now,
            (self._need(tokens), self._hold(tokens, now)),
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
            triples += [slot_id, reservation.at - now, charged(reservation._charge)]
        return Plan("seed", now, tuple(triples), nothing, lambda: None, best_effort=True)

    def observe(self, hints: RateLimitHints, now: float) -> None:
        """As the memory route, and a window a 429 named goes to Redis too, so every
        process holds the route until it frees (sent ahead of the next operation)."""
        super().observe(hints, now)
        if hints.empty or self.provider_cap is None:
            return
        retry = hints.retry_after
        for what, seconds, limit in hints.exhausted:
            if limit is None or what not in DIMENSIONS:
                continue
            # As ``Limiter.exhausted``: a wait at the parsers' cap may be a longer one cut.
            trusted = retry is not None and retry < min(seconds, DEFAULT_CAP)
            args = (DIMENSIONS.index(what) + 1, seconds, limit, retry if trusted else None)
            with self._recent_lock:
                self._told.append(
                    Plan("exhausted", now, args, nothing, lambda: None, best_effort=True)
                )

    def _run(self, plan: Plan) -> tuple[Any, bool]:
        for told in self._untold():
            self._exchange.run(told)
        return self._exchange.run(plan)

    async def _arun(self, plan: Plan) -> tuple[Any, bool]:
        for told in self._untold():
            await self._exchange.arun(told)
        return await self._exchange.arun(plan)

    def _untold(self) -> list[Plan]:
        if not self._told:
            return []
        with self._recent_lock:
            told, self._told = self._told, []
        return told

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
        result: Permit | None = self._run(self._acquire(now))[0]
        return result

    def _acquire(self, now: float) -> Plan:
        def read(t: float, result: list[Any]) -> Permit | None:
            return permit(result) if result else None

        check = "1" if self._may_be_overdrawn(now) else ""
        return Plan("acquire", now, (check,), read, lambda: Route.acquire(self, now))

    def _may_be_overdrawn(self, now: float) -> bool:
        """Whether the script should look for an overdraft (``Limiter.overdrawn``): only
        once the in-flight time grew past what this process's admissions of the last
        window were decided with. Until then each was admitted counting every one before
        it at least as long, so none can be (and the check reads the whole window)."""
        if self.limiter._flights is None:
            return False
        current = self.limiter.in_flight
        keep = float(self.rate_limit.window) + MAX_IN_FLIGHT
        with self._recent_lock:
            extras = self._extras
            while extras and extras[0][0] + keep < now:
                extras.popleft()
            return any(extra < current for _, extra in extras)

    def ready_at(self, now: float) -> float:
        result: float = self._run(self._ready_at(now))[0]
        return result

    def _ready_at(self, now: float) -> Plan:
        def read(t: float, result: list[Any]) -> float:
            return here(result[0], now, t)

        return Plan("ready", now, (), read, lambda: Route.ready_at(self, now))

    # -- outcomes: best effort, a finished call never fails on the state store -------

    # A slot and its permit may come from different sides of a fallback (a slot queued in
    # Redis, then a permit from memory while Redis was away, or the reverse): each goes
    # back where it came from, and a memory permit's id never reaches Redis.

    def _finish_plans(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> list[Plan]:
        reservation = slot.mirror if isinstance(slot, RedisSlot) else slot
        if isinstance(reservation, Reservation) and now is not None and how != "release":
            # How long requests take to reach the provider: the time each admission is
            # counted beyond its window, here and (sent with each call) in Redis.
            reservation.answered(now)
        if isinstance(slot, RedisSlot) and slot.mirror is not None:
            if how == "succeed" and tokens is not None:
                slot.mirror.settle(tokens, cached_counts=self.cache_reads_count)
            elif how == "withdraw":
                slot.mirror.cancel()
        usage = None if tokens is None else self._usage(tokens)
        in_redis = isinstance(slot, RedisSlot), isinstance(permit, RedisPermit)
        slot_id = slot.id if isinstance(slot, RedisSlot) else None
        permit_id = permit.key if isinstance(permit, RedisPermit) else None
        plans: list[Plan] = []
        if how == "succeed":
            assert now is not None, "a success is recorded at a time"
            if in_redis == (True, True):
                return [self._record("succeed", now, slot_id, permit_id, usage)]
            if permit_id is not None:
                plans.append(self._record("succeed", now, None, permit_id))
            else:
                self.breaker.record_success(permit, now)
            if tokens is not None:
                if slot_id is not None:
                    plans.append(self._record("succeed", now, slot_id, None, usage))  # settles
                else:
                    _memory(slot).settle(tokens, cached_counts=self.cache_reads_count)
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
            self._run(self._record("release", None, None, permit.key))

    def cancel(self, slot: Slot) -> None:
        for plan in self._cancel_plans(slot):
            self._run(plan)

    def withdraw(self, slot: Slot, permit: Permit) -> None:
        self.finish("withdraw", slot, permit, None, None)

    def pause(self, now: float, seconds: float) -> None:
        self._run(self._pause(now, seconds))

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
        self._run(self._record("reset", now))

    def shared_snapshot(self, now: float) -> RouteSnapshot:
        plan = Plan(
            "snapshot",
            now,
            (),
            lambda t, result: read_snapshot(
                result,
                now,
                t,
                name=self.name,
                state=self._exchange.seen,
                cooldown=self.breaker.policy.cooldown,
                disabled=self.disabled,
            ),
            lambda: Route.shared_snapshot(self, now),
            best_effort=True,
        )
        snapshot: RouteSnapshot = self._run(plan)[0]
        return snapshot

    def __repr__(self) -> str:
        return f"RedisRoute({self.name!r})"
