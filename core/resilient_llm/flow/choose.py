"""Which route a call tries next, or how long it waits first.

Routes are looked at in order of preference through ``look`` effects; the first that can
go at once is taken. A route queueing past the spill-over while a later one is free
yields to it; a route paused or backing off is waited for only if none is ready.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

from ..errors import AuthError, RequestTooLarge
from ..events import EventHandler
from ..policies.capabilities import Unfit
from .admission import CallReport
from .callstate import CallState, deadline_error, exhausted_error, mark_unfit
from .effects import Answer, Effect, FlowPolicy
from .ops import Look, SharedRoute
from .take import Sleep

__all__ = ["Go", "Sleep", "choose", "note_disabled"]


@dataclass(frozen=True)
class Go:
    index: int


def note_disabled(
    routes: Sequence[SharedRoute],
    state: CallState,
    report: CallReport,
    now: float,
    emit: EventHandler,
) -> None:
    for index, route in enumerate(routes):
        reason = route.disabled
        if reason is not None and index not in state.out:
            state.out[index] = AuthError(f"route {route.name!r} is disabled: {reason}")
            report.skipped(route.name, f"disabled: {reason}", now, emit)


def choose(
    routes: Sequence[SharedRoute],
    estimates: Sequence[int],
    unfit: Sequence[Unfit | None],
    state: CallState,
    report: CallReport,
    policy: FlowPolicy,
    now: float,
    deadline: float,
    emit: EventHandler,
) -> Generator[Effect, Answer, tuple[Go | Sleep, float]]:
    """The route to try next (or how long to wait first), and the time after the looks.

    Each look is judged at ``now``, the moment the call decides; the time the looks took
    is returned for the flow to go on from."""
    asker = state.asker
    latest = now
    sticky = state.sticky
    if sticky is not None and sticky not in state.out:
        route = routes[sticky]
        look, latest = yield from asker.ask(route, "look", Look, now, estimates[sticky], now)
        if look.ready_at <= now and look.paused_until <= now:
            until = state.backoff_until[sticky]
            if until > now:
                if until < deadline:
                    return Sleep(until, "backoff", route.name), latest
            elif now + look.wait < deadline:
                return Go(sticky), latest
            # A backoff or queue that would outlive the deadline is not begun: fail over if
            # another route can go, else the free choice below raises DeadlineExceeded.
    state.sticky = None

    ready: list[tuple[int, float]] = []
    soonest: Sleep | None = None
    state.blocked_by_breaker = False
    # Routes are looked at in order of preference and the first that can go at once is
    # taken: the routes after it cost no estimate and no look (a round trip with Redis).
    for index, route in enumerate(routes):
        if index in state.out or mark_unfit(routes, index, unfit, state, report, now, emit):
            continue
        try:
            route.check_fits(estimates[index])
        except RequestTooLarge as exc:
            state.out[index] = exc
            report.skipped(route.name, "request larger than its token limit", now, emit)
            continue
        look, latest = yield from asker.ask(route, "look", Look, now, estimates[index], now)
        if look.ready_at > now:
            state.blocked_by_breaker = True
            report.skipped(route.name, "circuit open", now, emit)
            continue
        gate, reason = max(
            (look.paused_until, "retry-after"), (state.backoff_until[index], "backoff")
        )
        if gate > now:
            if soonest is None or gate < soonest.until:
                soonest = Sleep(gate, reason, route.name)
            continue
        if look.wait <= policy.spill_over and now + look.wait < deadline:
            return Go(index), latest
        ready.append((index, look.wait))

    in_time = [(index, wait) for index, wait in ready if now + wait < deadline]
    if in_time:
        return Go(min(in_time, key=lambda item: item[1])[0]), latest
    if soonest is not None and soonest.until < deadline:
        return soonest, latest
    if soonest is not None:
        raise deadline_error(
            state,
            report,
            f"{soonest.route!r} is not ready for {soonest.until - now:.3g}s "
            f"({soonest.reason}), past the deadline",
        )
    if ready:
        raise deadline_error(
            state, report, "every ready route's limiter queue outlasts the deadline"
        )
    raise exhausted_error(routes, state, report)
