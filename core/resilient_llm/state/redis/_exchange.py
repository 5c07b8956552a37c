"""One route's round trips with the Redis script, blocking or awaited, and what the
replies say about the breaker.

A :class:`Plan` is one operation: the script's op and arguments, how to read its reply,
what to do when Redis is away. :class:`Exchange` runs it blocking (sync calls) or on the
running loop's own ``redis.asyncio`` client (async calls); no lock is held across a round
trip. Replies may then be read out of the order Redis ran them: the breaker's generation
orders them, and the mover each move records tells this route's own changes from another
process's.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.exceptions

from ..._forks import renew_locks
from ...clock import Clock
from ...errors import StateUnavailable
from ...events import Event, EventHandler, StateDown, StateRestored
from ...policies.breaker import BreakerListener, CircuitState, StateChange
from ._causes import cause, unavailable

__all__ = ["Exchange", "Plan", "Store", "nothing", "opt", "text"]


class Store(Protocol):
    """What a route reads of its ``RedisState`` (whose module imports this one)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def time(self) -> str: ...

    @property
    def server_time_shift(self) -> float: ...

    @property
    def on_unavailable(self) -> str: ...

    @property
    def retry_after(self) -> float: ...

    @property
    def timeout(self) -> float:
        """How long one command may take (the socket timeout)."""
        ...

    @property
    def script(self) -> Any: ...

    def async_script(self) -> Any:
        """The script on the running loop's own async client."""
        ...

    def keys(self, name: str) -> list[str]: ...


@dataclass
class Plan:
    """One operation: the script's ``op`` and arguments, ``read`` for its reply (given the
    script's decision time and result), ``local`` when Redis is away. ``best_effort``: an
    outcome, recorded if Redis answers, dropped (after StateDown) if not."""

    op: str
    now: float | None
    args: tuple[str | float | None, ...]
    read: Callable[[float, list[Any]], Any]
    local: Callable[[], Any]
    best_effort: bool = False


def nothing(t: float, result: list[Any]) -> None:
    return None


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def opt(value: str | float | None) -> str | float:
    return "" if value is None else value


# What a store out of reach raises: a cluster client's own errors (no master for a slot,
# no node answering) are not ``RedisError``s; an async client's socket errors may be bare.
_DOWN = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)


class Exchange:
    """The round trips of route ``name``; ``args`` are the script's fixed arguments (the
    limits and the breaker policy), ``listeners`` hear of every breaker change."""

    def __init__(
        self, store: Store, name: str, args: list[str | float], emit: EventHandler
    ) -> None:
        self._store = store
        self.name = name
        self._emit = emit
        self._keys = store.keys(name)
        self._args = args
        self.listeners: list[BreakerListener] = []
        self.seen = CircuitState.CLOSED
        # The breaker generation of the newest reply read: an older reply, read late
        # because its round trip was slower, must not be taken for another process's change.
        self._latest = -1
        # Generations count within one epoch of the breaker's keys; a new epoch (the keys
        # were flushed or lost) starts them again.
        self._epoch = ""
        # The newest reply's server time and this store clock's readings when its request
        # was sent and when it was read: bounds the script holds server time within.
        self._hint: tuple[float, float, float] | None = None
        # Who this route object is to the script: a breaker move records its mover.
        self._me = uuid.uuid4().hex
        # Guards only this process's bookkeeping of replies (no I/O under it).
        self._book = threading.Lock()
        renew_locks(self, "_book")
        self._down_since: float | None = None
        self._retry_at = -math.inf
        # Why Redis last failed (class name and cause), for calls refused in its retry pause.
        self._failure: tuple[str | None, str] = (None, "unreachable")
        # How many route objects (processes) decided on this route lately, as Redis last
        # said (0: never heard); ``on_peers`` hears it with every reply.
        self.peers = 0
        self.on_peers: Callable[[int, float], None] | None = None
        # What to write into Redis first when it may be back (what was decided without it).
        self.on_return: Callable[[float], Plan | None] | None = None
        self._returning = False
        # The script's limiter argument (ARGV[3]) for each call, when it changes between
        # calls (the in-flight time learnt); else the fixed one.
        self.limiter_arg: Callable[[], str] | None = None

    @property
    def away(self) -> bool:
        """Redis did not answer, and has not answered since."""
        return self._down_since is not None

    def set_limits(self, rpm: int | None, tpm: int | None) -> None:
        with self._book:
            self._args[1] = opt(rpm)
            self._args[2] = opt(tpm)

    def _script_args(
        self, plan: Plan, now: float, sent: float
    ) -> tuple[list[str], list[str | float]]:
        with self._book:
            fixed = list(self._args)
            hint = self._hint
        if self.limiter_arg is not None:
            fixed[0] = self.limiter_arg()
        if self._store.time == "server":
            lo = hi = ""
            if hint is not None:
                # The script ran this request after ``sent`` and the hinted one before it
                # was read: at least ``lo`` on the server's time, at most about ``hi``.
                t, hint_sent, hint_read = hint
                lo, hi = repr(t + (sent - hint_read)), repr(t + (sent - hint_sent))
            when = f"@{self._store.server_time_shift!r}:{lo}:{hi}"
        else:
            when = repr(now)
        # A nonce per call (random, so a forked child never repeats its parent's) makes
        # every id the script hands out unique, even after Redis forgot its counters.
        op = f"{plan.op}|{self._me}|{os.urandom(8).hex()}"
        return self._keys, [op, when, *fixed, *(opt(a) for a in plan.args)]

    def local(self, plan: Plan) -> Any:
        """Decide ``plan`` from this process's own state (the store was too slow for the
        call), unless the backend forbids deciding without the store."""
        if not plan.best_effort:
            self._decide_locally()
        return plan.local()

    def run(self, plan: Plan) -> tuple[Any, bool]:
        now = self._store.clock.now() if plan.now is None else plan.now
        sent = self._store.clock.now()
        if not plan.op or sent < self._retry_at:
            return self._away(plan, None, now), bool(plan.op)
        back = self._take_return(now)
        if back is not None:
            try:
                self.run(back)
            finally:
                self._returning = False
            if self._store.clock.now() < self._retry_at:
                return self._away(plan, None, now), True
            sent = self._store.clock.now()
        keys, args = self._script_args(plan, now, sent)
        try:
            reply = self._store.script(keys=keys, args=args)
        except _DOWN as exc:
            return self._away(plan, exc, now), True
        return self._read(plan, reply, now, sent), False

    async def arun(self, plan: Plan) -> tuple[Any, bool]:
        now = self._store.clock.now() if plan.now is None else plan.now
        sent = self._store.clock.now()
        if not plan.op or sent < self._retry_at:
            return self._away(plan, None, now), bool(plan.op)
        back = self._take_return(now)
        if back is not None:
            try:
                await self.arun(back)
            finally:
                self._returning = False
            if self._store.clock.now() < self._retry_at:
                return self._away(plan, None, now), True
            sent = self._store.clock.now()
        keys, args = self._script_args(plan, now, sent)
        try:
            script = self._store.async_script()
            reply = await script(keys=keys, args=args)
        except _DOWN as exc:
            return self._away(plan, exc, now), True
        return self._read(plan, reply, now, sent), False

    def _take_return(self, now: float) -> Plan | None:
        """The plan that goes first once Redis may be back after an outage, for one caller
        (the others go on meanwhile: a few of their decisions may not count it yet)."""
        if self._down_since is None or self.on_return is None:
            return None
        with self._book:
            if self._returning or self._down_since is None:
                return None
            self._returning = True
        back = self.on_return(now)
        if back is None:
            self._returning = False
        return back

    def _read(self, plan: Plan, reply: Any, now: float, sent: float) -> Any:
        """Take a script's reply: note Redis is back, announce breaker changes, read it.
        Events go out with no lock held, so a listener may call back into the route."""
        t, state, made, result, generation, mover, epoch, peers = reply
        t = float(text(t))
        peers = int(text(peers))
        read = self._store.clock.now()
        with self._book:
            self._hint = (t, sent, read)
            notices = self._came_back(now)
            if text(epoch) != self._epoch:
                self._epoch, self._latest = text(epoch), -1
            changes = self._changes(now, t, text(state), made, int(text(generation)), text(mover))
            heard = peers > 0
            if heard:
                self.peers = peers
        if heard and self.on_peers is not None:
            self.on_peers(peers, now)
        for notice in notices:
            self._emit(notice)
        for change in changes:
            for listener in tuple(self.listeners):
                listener(change)
        return plan.read(t, result)

    def _away(self, plan: Plan, exc: Exception | None, now: float) -> Any:
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
        self._retry_at = self._store.clock.now() + self._store.retry_after
        self._failure = (type(exc).__name__, cause(exc))
        if self._down_since is not None:
            return []
        self._down_since = self._store.clock.now()
        return [
            StateDown(
                self.name, now, type(exc).__name__, self._store.on_unavailable, self._failure[1]
            )
        ]

    def _came_back(self, now: float) -> list[Event]:
        if self._down_since is None:
            return []
        since, self._down_since = self._down_since, None
        return [StateRestored(self.name, now, self._store.clock.now() - since)]

    def _decide_locally(self) -> None:
        if self._store.on_unavailable == "fail":
            error, why = self._failure
            raise StateUnavailable(unavailable(self.name, why, error), provider=self.name)

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
                CircuitState(text(old)),
                CircuitState(text(new)),
                now + (float(text(at)) - t),
                text(reason),
            )
            for old, new, at, reason in made
        ]
        if generation <= self._latest:
            return events
        self._latest = generation
        current = CircuitState(state)
        if not events and current is not self.seen and mover != self._me:
            events.append(StateChange(self.name, self.seen, current, now, "by another process"))
        self.seen = current
        return events
