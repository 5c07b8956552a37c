"""How one call asks its routes' shared state, within its deadline.

A state store (Redis) answers in a round trip; a slow one must not eat the call's time.
Each :class:`~resilient_llm.flow.ops.Op` carries ``until``: the store may take at most
half the time left before the call's last start (the provider keeps the other half).
A route whose store did not answer in time is decided from this process's own state for
the rest of the call, so one slow store costs a call one wait at most, and the time it
took is the flow's to know (each answer says the time after it).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from ..policies.breaker import Permit
from .effects import Answer, Effect
from .ops import Done, Op, OpName, SharedRoute

__all__ = ["Asker"]

_T = TypeVar("_T")


class Asker:
    """One call's questions to its routes' state."""

    def __init__(self, last_start: float) -> None:
        self.last_start = last_start
        self.local: set[str] = set()

    def op(self, route: SharedRoute, name: OpName, args: tuple[Any, ...], now: float) -> Op:
        until = now + max(0.0, self.last_start - now) / 2
        return Op(route, name, args, until, route.name in self.local)

    def ask(
        self, route: SharedRoute, name: OpName, kind: type[_T], now: float, *args: Any
    ) -> Generator[Effect, Answer, tuple[_T, float]]:
        """Yield one :class:`Op`; return its answer, checked to be a ``kind``, and the time."""
        value, now = yield from self._ask(route, name, args, now)
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise TypeError(
                f"an Op {name!r} must be answered with a {kind.__name__}, not {value!r}"
            )
        return value, now

    def acquire(
        self, route: SharedRoute, now: float
    ) -> Generator[Effect, Answer, tuple[Permit | None, float]]:
        permit, now = yield from self._ask(route, "acquire", (now,), now)
        if permit is not None and not isinstance(permit, Permit):
            raise TypeError(
                f"an Op 'acquire' must be answered with a Permit or None, not {permit!r}"
            )
        return permit, now

    def tell(
        self, route: SharedRoute, name: OpName, now: float, *args: Any
    ) -> Generator[Effect, Answer, float]:
        """Yield one :class:`Op` whose result carries nothing; return the time after it."""
        _, now = yield from self._ask(route, name, args, now)
        return now

    def _ask(
        self, route: SharedRoute, name: OpName, args: tuple[Any, ...], now: float
    ) -> Generator[Effect, Answer, tuple[Any, float]]:
        done = yield self.op(route, name, args, now)
        if not isinstance(done, Done):
            raise TypeError(f"an Op must be answered with Done, not {done!r}")
        if done.local:
            self.local.add(route.name)
        # Time runs on while a store answers; never back, whatever a clock says.
        return done.value, max(now, done.now)
