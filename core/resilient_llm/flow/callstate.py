"""What one call has learnt so far, and the error it ends with when it runs out.

The decision core (:mod:`resilient_llm.flow.call`) keeps a :class:`CallState` per call: retries
used, backoff ends, which routes are out of the call and why. When a route cannot take the
request at all, or a provider says the prompt is too long, the route is put out here; when
the deadline passes or no route is left, the error the caller sees is built here from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import (
    AllProvidersFailed,
    BadRequest,
    CircuitOpen,
    ContextLengthExceeded,
    DeadlineExceeded,
    RequestTooLarge,
    ResilientLLMError,
)
from ..events import EventHandler
from ..policies.capabilities import Unfit
from .admission import CallReport
from .asking import Asker
from .effects import Refused
from .ops import SharedRoute

__all__ = [
    "CallState",
    "Unfit",
    "deadline_error",
    "exhausted_error",
    "go_past_window",
    "mark_unfit",
    "note_refused",
]


class CallState:
    """Per-call bookkeeping: retries used, backoff ends, routes out of this call."""

    def __init__(self, size: int, asker: Asker) -> None:
        # How this call asks its routes' state, within its deadline.
        self.asker = asker
        self.retries = [0] * size
        self.backoff_until = [-math.inf] * size
        self.out: dict[int, ResilientLLMError] = {}
        self.sticky: int | None = None
        self.last_route: int | None = None
        self.last_reason = ""
        self.last_error: ResilientLLMError | None = None
        self.attempts = 0
        self.blocked_by_breaker = False
        self.tried: set[int] = set()
        self.unfit: dict[int, BadRequest] = {}


def mark_unfit(
    routes: Sequence[SharedRoute],
    index: int,
    unfit: Sequence[Unfit | None],
    state: CallState,
    report: CallReport,
    now: float,
    emit: EventHandler,
) -> bool:
    """Whether ``routes[index]`` cannot take the request; if so it is out of this call."""
    why = unfit[index] if unfit else None
    if why is None:
        return False
    kind = ContextLengthExceeded if why.too_long else BadRequest
    error = kind(f"{routes[index].name}: {why.reason}", provider=routes[index].name)
    state.out[index] = state.unfit[index] = error
    report.skipped(routes[index].name, f"cannot take the request: {why.reason}", now, emit)
    return True


def go_past_window(
    routes: Sequence[SharedRoute],
    index: int,
    windows: Sequence[int | None],
    error: ContextLengthExceeded,
    state: CallState,
    report: CallReport,
    now: float,
    emit: EventHandler,
) -> None:
    """A context-length error: go on to routes not known to have a window as small."""
    state.last_route = index
    state.last_error = error
    state.last_reason = "context too long"
    state.sticky = None
    state.out[index] = error
    window = windows[index] if windows else None
    larger = []
    for i, route in enumerate(routes):
        if i in state.out:
            continue
        other = windows[i] if windows else None
        if window is not None and other is not None and other <= window:
            state.out[i] = error
            report.skipped(route.name, "context window not larger", now, emit)
        else:
            larger.append(i)
    if not larger:
        raise error


def deadline_error(state: CallState, report: CallReport, why: str) -> DeadlineExceeded:
    last = state.last_error
    error = DeadlineExceeded(
        f"deadline exceeded after {state.attempts} attempt(s): {why}",
        attempts=report.attempts,
        provider=last.provider if last else None,
        status_code=last.status_code if last else None,
        retryable=True,
    )
    error.__cause__ = last
    return error


def exhausted_error(
    routes: Sequence[SharedRoute], state: CallState, report: CallReport
) -> ResilientLLMError:
    """The error for a call that has no route left to try."""
    if len(state.unfit) == len(routes):
        unfit = list(state.unfit.values())
        kind = (
            ContextLengthExceeded
            if all(isinstance(e, ContextLengthExceeded) for e in unfit)
            else BadRequest
        )
        summary = "; ".join(e.message for e in unfit)
        return kind(f"no route can take this request: {summary}")
    reasons = list(state.out.values())
    if (
        reasons
        and all(isinstance(r, RequestTooLarge) for r in reasons)
        and (not state.blocked_by_breaker)
    ):
        return reasons[0]
    last = state.last_error
    if state.attempts == 0 and state.blocked_by_breaker and not reasons:
        names = ", ".join(r.name for r in routes)
        return CircuitOpen(
            f"every route's circuit breaker is open ({names}); no call was sent",
            provider=routes[0].name if len(routes) == 1 else None,
            retryable=True,
        )
    summary = "; ".join(
        f"{a.route}: {a.outcome}{f' ({a.detail})' if a.detail else ''}" for a in report.attempts
    )
    error = AllProvidersFailed(
        f"all {len(routes)} route(s) failed or were skipped: {summary}",
        attempts=report.attempts,
        provider=last.provider if last else None,
        status_code=last.status_code if last else None,
        retry_after=last.retry_after if last else None,
        retryable=any(r.retryable for r in reasons) or state.blocked_by_breaker,
    )
    error.__cause__ = last
    return error


def note_refused(index: int, error: Refused, state: CallState) -> Refused:
    """A refused attempt when the call fails over on refusals: the route answered (the
    caller counts it a success for the route), but this call asks the next route."""
    state.out[index] = error
    state.last_route = index
    state.last_error = error
    state.last_reason = "refused"
    state.sticky = None
    return error
