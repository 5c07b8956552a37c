"""What the decision core asks of a route's shared state, as effects.

A route's limiter, breaker and pause may live in this process or in a store shared by
many (Redis). The flow never touches that state itself: it yields :class:`Op` effects
(look, admit, acquire, ready_at, cancel, pause) and :class:`Finish` effects (how an
attempt's admission ends), and a driver performs them: inline on the sync path, awaited
on the async path, so a slow store never blocks an event loop. :class:`SharedRoute` is
what a state backend's route provides; the helpers below are the flow's typed way to ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..policies.breaker import Permit
from ..policies.hints import RateLimitHints
from ..policies.limiter import RateLimit

__all__ = [
    "Done",
    "Finish",
    "FinishHow",
    "Leave",
    "Look",
    "Op",
    "OpName",
    "SharedRoute",
    "Slot",
    "Ticket",
]

OpName = Literal["look", "admit", "acquire", "ready_at", "cancel", "pause"]
FinishHow = Literal["succeed", "fail", "release", "withdraw"]


class Slot(Protocol):
    """A limiter reservation, from whichever backend granted it."""

    @property
    def at(self) -> float: ...

    @property
    def wait(self) -> float: ...


@dataclass(frozen=True)
class Look:
    """What a route would do for a call at one instant, without taking anything.

    ``ready_at`` is when its breaker next gives a permit (``inf`` while every half-open
    probe is out), ``paused_until`` when its retry-after pause ends, ``wait`` the limiter
    queue a request of the given size would join.
    """

    ready_at: float
    paused_until: float
    wait: float


@dataclass(frozen=True)
class Ticket:
    """What an ``admit`` granted.

    ``slot`` is None when the request was due at once but the route refused it (breaker
    open, probes out, paused): nothing is held. Otherwise ``permit`` is set when the slot
    is due now, and None when the caller must wait for ``slot.at`` and then ``acquire``.
    """

    slot: Slot | None
    permit: Permit | None


class SharedRoute(Protocol):
    """A route as the flow sees it.

    The attributes and ``check_fits``/``observe``/``disable`` are this process's own
    (no I/O); every other operation goes through an effect. ``remote`` says whether its
    operations reach a store: an async driver awaits them only then.
    """

    name: str
    attempt_timeout: float | None
    remote: bool
    # False for providers that charge prompt + max_tokens when a request arrives (OpenAI):
    # settling to a smaller real usage would undercount their window.
    settles_below_estimate: bool

    @property
    def has_bulkhead(self) -> bool: ...

    @property
    def disabled(self) -> str | None: ...

    @property
    def rate_limit(self) -> RateLimit: ...

    def check_fits(self, tokens: int) -> None: ...

    def observe(self, hints: RateLimitHints, now: float) -> None: ...

    def disable(self, reason: str) -> None: ...

    def perform(
        self, name: OpName, args: tuple[Any, ...], *, budget: float | None, local: bool
    ) -> tuple[Any, bool]:
        """Carry out ``Op(name, args)``: its result, and whether it was decided from this
        process's own state (``local``: asked to; or the store could not answer in time)."""
        ...

    async def aperform(
        self, name: OpName, args: tuple[Any, ...], *, budget: float | None, local: bool
    ) -> tuple[Any, bool]: ...

    def finish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None: ...

    async def afinish(
        self, how: FinishHow, slot: Slot, permit: Permit, now: float | None, tokens: int | None
    ) -> None: ...


@dataclass(frozen=True)
class Op:
    """Perform ``route.<name>(*args)`` on the route's state; answer with :class:`Done`.

    ``until``: the store must have answered by then (the call's deadline bounds every
    store operation); if it cannot, the route decides from this process's own state.
    ``local``: decide from this process's own state at once (the store was too slow for
    this call before).
    """

    route: SharedRoute
    name: OpName
    args: tuple[Any, ...] = ()
    until: float | None = None
    local: bool = False


@dataclass(frozen=True)
class Done:
    """What an :class:`Op` gave, the time after it, and whether it was decided locally."""

    value: Any
    now: float
    local: bool = False


@dataclass(frozen=True)
class Finish:
    """End an attempt's hold on ``route`` one way (see :mod:`~resilient_llm.flow.admission`):
    the state learns the outcome and the route's bulkhead slot, if held, is given back.
    ``tokens`` is what a success settles the reservation to. Answered with ``None``."""

    route: SharedRoute
    how: FinishHow
    slot: Slot
    permit: Permit
    now: float | None = None
    tokens: int | None = None
    bulkhead: bool = False


@dataclass(frozen=True)
class Leave:
    """Give back the route's bulkhead slot (held without an admission). Answered with None."""

    route: SharedRoute
