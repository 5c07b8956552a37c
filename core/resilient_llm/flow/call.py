"""The decision core: one call's retry and failover loop, with no I/O and no clock.

:func:`call_flow` is a generator. It yields effects, and the driver that runs it answers:

- ``Wait(seconds, reason, route)``: sleep, then send back the new ``now``;
- ``Call(route, timeout, attempt)``: make the attempt, then send back ``Succeeded(now, usage,
  quota)`` or ``Failed(now, error, timed_out)``;
- ``Op``/``Finish``/``Leave`` (:mod:`~resilient_llm.flow.ops`): read or change a route's
  shared state, and send back the result; ``Enter``: take a bulkhead slot;
- ``Relay`` (streams): the first chunk reached the caller; relay the rest, then send back
  ``StreamEnded``, ``StreamBroke`` or ``StreamDropped``.

It returns a :class:`CallReport`, or raises the error the caller should see. Sync, async
and streaming drivers only sleep, call and perform; every decision is here once, testable
by stepping the generator effect by effect with no I/O and no real time. A driver stopping
the call early (a cancelled task, a caller's timeout) throws
:class:`~resilient_llm.flow.effects.Cancelled` into it, and the flow yields the effects
that give back what it held (an unused reservation, a half-open probe permit, a bulkhead
slot) before it re-raises.

The policy (DESIGN.md, "Failover policy"):

- 429: the route is paused for everyone until its retry-after; the call fails over at once
  if another route can take it, else waits for the pause if the deadline allows.
- 5xx / 529 / timeout / connection: the breaker counts it; the same route is retried after
  backoff (a provider hint wins) until its retries for this call are spent or its breaker
  opens; then the call fails over.
- Limiter: a route whose queue wait exceeds ``spill_over`` yields to a later route that can
  go now; otherwise the call waits its turn (FIFO).
- Open breaker: the route is skipped without a call; the engine does not wait out a
  cooldown, since failing fast is the breaker's purpose.
- 400 / 422: raised at once. 401 / 403 / 404: the route is disabled and the call fails over.
- A refusal is an answer and ends the call, unless the driver reports it as ``Refused``
  (the engine's ``on_refusal="failover"``): then the route counts a success, the call
  moves to the next route, and if none answers otherwise the last refusal is the reply.
- One deadline bounds everything: no wait ends past it, and a wait that would is not begun.
  Nor is an attempt sent, or a wait begun, that would leave the attempt less than the
  policy's minimum attempt time. An attempt the deadline cuts short (it timed out on the
  call's time left, not on a per-attempt timeout) ends the call ``DeadlineExceeded`` and
  counts neither way for the breaker: our deadline is not the provider's failure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator, Sequence

from ..errors import (
    AuthError,
    ContextLengthExceeded,
    RateLimited,
    ResilientLLMError,
)
from ..events import (
    AttemptStarted,
    EventHandler,
    Failover,
    RetryScheduled,
    RouteDisabled,
    RoutePaused,
    heard,
)
from ..policies.budget import RetryLedger
from ..policies.capabilities import Unfit
from .admission import Admission, CallReport
from .asking import Asker
from .callstate import (
    CallState,
    deadline_error,
    go_past_window,
    note_refused,
)
from .choose import Sleep, choose, note_disabled
from .effects import (
    Answer,
    Call,
    Effect,
    Failed,
    FlowPolicy,
    Outcome,
    Refused,
    Succeeded,
    Wait,
)
from .ops import Leave, SharedRoute
from .take import admit, enter, finish, held, relay, wait

__all__ = [
    "Call",
    "Effect",
    "Failed",
    "Flow",
    "FlowPolicy",
    "Outcome",
    "Succeeded",
    "Unfit",
    "Wait",
    "call_flow",
]


# One call's flow, as drivers step it.
Flow = Generator[Effect, Answer, CallReport]


def call_flow(
    routes: Sequence[SharedRoute],
    estimates: Sequence[int],
    policy: FlowPolicy,
    *,
    now: float,
    deadline: float,
    rng: random.Random,
    emit: EventHandler,
    stream: bool = False,
    unfit: Sequence[Unfit | None] = (),
    windows: Sequence[int | None] = (),
    budgets: Sequence[RetryLedger] = (),
    ceilings: Sequence[int | None] = (),
    reasoning: Sequence[bool] = (),
) -> Flow:
    """Run one call over ``routes`` (in preference order) until a reply or a final error.

    ``estimates[i]`` is the request's token estimate for ``routes[i]`` (models differ).
    With ``stream=True`` a success yields ``Relay``: the flow keeps the attempt's admission
    until the driver says how the stream ended, and finishes it accordingly.
    ``unfit[i]`` says why ``routes[i]`` cannot take the request (it is skipped unasked),
    ``windows[i]`` is its model's context window if known (a context-length error moves
    the call to a larger one), ``budgets[i]`` its retry budget, ``ceilings[i]`` the most
    tokens a reply on it may settle (see :func:`~resilient_llm.policies.tokens.usage_ceiling`).
    ``reasoning[i]``: the model of ``routes[i]`` thinks before its first token, so it is
    given longer to show a sign of life before a hedge (``policy.hedge``) races it.
    """
    for name, given in (
        ("estimate", estimates),
        ("unfit", unfit),
        ("windows", windows),
        ("ceiling", ceilings),
        ("reasoning", reasoning),
    ):
        if given and len(given) != len(routes):
            raise ValueError(f"call_flow needs one {name} per route")
    if budgets and len(budgets) != len(routes):
        raise ValueError("call_flow needs one budget per route")
    report = CallReport()
    refused: Refused | None = None
    # The latest moment an attempt may start: one sent later has too little time to
    # plausibly succeed, and would only time out and be blamed on a healthy provider.
    last_start = deadline - min(policy.retry.min_attempt_time, (deadline - now) / 10)
    state = CallState(len(routes), Asker(last_start))
    try:
        while True:
            note_disabled(routes, state, report, now, emit)
            if now >= last_start:
                raise deadline_error(state, report, _too_late(deadline, now))
            choice, now = yield from choose(
                routes, estimates, unfit, state, report, policy, now, last_start, emit
            )
            if isinstance(choice, Sleep):
                now = yield from wait(report, choice, now, emit)
                continue
            index = choice.index
            route = routes[index]
            bulkhead = route.has_bulkhead
            if bulkhead:
                now = yield from enter(route, now, last_start, state, report, emit)
            try:
                now, taken = yield from admit(
                    route, estimates[index], now, last_start, report, emit, state.asker
                )
            except GeneratorExit:
                raise  # closed without being told: nothing may be yielded any more
            except BaseException:
                if bulkhead:
                    yield Leave(route)
                raise
            if taken is None:
                if bulkhead:
                    yield Leave(route)
                continue
            slot, permit = taken
            ceiling = ceilings[index] if ceilings else None
            admission = Admission(
                route,
                slot,
                permit,
                estimates[index],
                bulkhead=bulkhead,
                ceiling=ceiling,
                settles_below_estimate=route.settles_below_estimate,
            )
            if now >= last_start:
                # The queue ran later than it promised: the request was never sent.
                yield from finish(admission, "withdraw")
                raise deadline_error(state, report, _too_late(deadline, now))
            if state.last_route is not None and state.last_route != index:
                previous = routes[state.last_route].name
                report.failovers.append((previous, route.name, state.last_reason))
                emit(Failover(previous, now, route.name, state.last_reason))
            state.attempts += 1
            if index not in state.tried:
                state.tried.add(index)
                if budgets:
                    budgets[index].note_request(now)
            if heard(emit):
                emit(AttemptStarted(route.name, now, state.attempts))
            started = now
            own = min(policy.attempt_timeout or math.inf, route.attempt_timeout or math.inf)
            timeout = min(deadline - now, own)
            thinks = bool(reasoning and reasoning[index])
            hedge_after, why = _hedge_after(
                routes, index, unfit, state, policy, deadline - now, thinks, stream
            )
            if hedge_after is not None and hedge_after >= timeout:
                hedge_after = None  # the attempt's own timeout comes first
            call = Call(
                route,
                timeout,
                state.attempts,
                until_deadline=deadline - now <= own,
                hedge_after=hedge_after,
                why=why,
            )
            outcome = yield from held(admission, call)
            if not isinstance(outcome, Succeeded | Failed):
                yield from finish(admission, "release")
                raise TypeError(
                    f"a Call must be answered with Succeeded or Failed, not {outcome!r}"
                )
            now = outcome.now
            if isinstance(outcome, Succeeded):
                if outcome.quota is not None:
                    route.observe(outcome.quota, now)
                report.finished(route.name, state.attempts, "ok", started, now, None, emit)
                report.route = route.name
                if stream:
                    yield from relay(admission, report, emit)
                else:
                    yield from finish(admission, "succeed", now, outcome.usage_tokens, emit)
                return report
            error = outcome.error
            if outcome.timed_out and call.until_deadline:
                # Our deadline, not the provider, ended the attempt: the breaker learns
                # nothing (the permit goes back, as for a cancelled call) and the call is over.
                report.finished(
                    route.name, state.attempts, "DeadlineExceeded", started, now, None, emit
                )
                yield from finish(admission, "release")
                state.last_error = error
                raise deadline_error(
                    state, report, f"attempt {state.attempts} on {route.name!r} was cut by it"
                )
            report.finished(
                route.name,
                state.attempts,
                type(error).__name__,
                started,
                now,
                error.status_code,
                emit,
            )
            ledger = budgets[index] if budgets else None
            if isinstance(error, Refused):
                yield from finish(admission, "succeed", now, error.usage_tokens, emit)
                refused = note_refused(index, error, state)
                continue
            if isinstance(error, ContextLengthExceeded):
                yield from finish(admission, "release")
                go_past_window(routes, index, windows, error, state, report, now, emit)
                continue
            yield from _on_failure(
                route, index, admission, error, now, state, policy, rng, emit, ledger, report
            )
    except ResilientLLMError:
        if refused is None:
            raise
        # No later route answered otherwise (none left, or one that cannot take the
        # request): the refusal is the call's answer.
        report.route = refused.provider or ""
        report.refused = refused
        return report


def _hedge_after(
    routes: Sequence[SharedRoute],
    index: int,
    unfit: Sequence[Unfit | None],
    state: CallState,
    policy: FlowPolicy,
    left: float,
    thinks: bool,
    stream: bool,
) -> tuple[float | None, str]:
    """How long the attempt on ``routes[index]`` may stay quiet before the next route is
    started beside it, and why that would be; None while no other route could answer."""
    hedge = policy.hedge
    if hedge is None:
        return None, ""
    others = any(
        j != index
        and j not in state.out
        and j not in state.unfit
        and not (unfit and unfit[j])
        and not route.disabled
        for j, route in enumerate(routes)
    )
    if not others:
        return None, ""
    patience = hedge.patience(left, reasoning=thinks)
    return patience, hedge.why(routes[index].name, patience, left, stream=stream)


def _too_late(deadline: float, now: float) -> str:
    if now >= deadline:
        return "the deadline passed"
    return f"only {deadline - now:.3g}s left, too little for an attempt"


def _on_failure(
    route: SharedRoute,
    index: int,
    admission: Admission,
    error: ResilientLLMError,
    now: float,
    state: CallState,
    policy: FlowPolicy,
    rng: random.Random,
    emit: EventHandler,
    ledger: RetryLedger | None,
    report: CallReport,
) -> Generator[Effect, Answer, None]:
    state.last_route = index
    state.last_error = error
    state.sticky = None
    if isinstance(error, RateLimited):
        if error.quota is not None:
            # A 429's headers and named quotas adapt the windows they name.
            route.observe(error.quota, now)
        yield from finish(admission, "release")
        state.retries[index] += 1
        delay = policy.retry.delay(state.retries[index], rng, hint=error.retry_after)
        yield from state.asker.tell(route, "pause", now, now, delay)
        emit(RoutePaused(route.name, now, delay, "rate limited"))
        state.last_reason = "rate limited"
        if state.retries[index] > policy.retry.max_retries:
            state.out[index] = error
        return
    if isinstance(error, AuthError):
        yield from finish(admission, "release")
        reason = f"{type(error).__name__} (HTTP {error.status_code})"
        route.disable(reason)
        emit(RouteDisabled(route.name, now, reason))
        state.out[index] = error
        state.last_reason = "misconfigured"
        return
    if not error.retryable:
        yield from finish(admission, "release")
        raise error
    yield from finish(admission, "fail", now)
    state.retries[index] += 1
    ready_at, _ = yield from state.asker.ask(route, "ready_at", float, now, now)
    if ready_at > now:
        state.last_reason = "circuit opened"
        return
    if state.retries[index] > policy.retry.max_retries:
        state.out[index] = error
        state.last_reason = "retries spent"
        return
    if ledger is not None and not ledger.allow_retry(now):
        state.out[index] = error
        state.last_reason = "retry budget spent"
        report.skipped(route.name, "retry budget spent", now, emit)
        return
    delay = policy.retry.delay(state.retries[index], rng, hint=error.retry_after)
    state.backoff_until[index] = now + delay
    state.sticky = index
    state.last_reason = type(error).__name__
    emit(RetryScheduled(route.name, now, state.retries[index], delay, type(error).__name__))
