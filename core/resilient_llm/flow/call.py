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
from dataclasses import dataclass

from ..errors import (
    AuthError,
    ContextLengthExceeded,
    RateLimited,
    RequestTooLarge,
    ResilientLLMError,
)
from ..events import (
    AttemptStarted,
    EventHandler,
    Failover,
    LimiterWait,
    RetryScheduled,
    RouteDisabled,
    RoutePaused,
    Settled,
)
from ..policies.breaker import Permit
from ..policies.budget import RetryLedger
from .admission import Admission, CallReport
from .callstate import (
    CallState,
    Unfit,
    deadline_error,
    exhausted_error,
    go_past_window,
    mark_unfit,
    note_refused,
)
from .effects import (
    Answer,
    Call,
    Cancelled,
    Effect,
    Enter,
    Entered,
    Failed,
    FlowPolicy,
    Outcome,
    Refused,
    Relay,
    StreamBroke,
    StreamDropped,
    StreamEnded,
    Succeeded,
    Wait,
    ask,
    tell,
)
from .ops import FinishHow, Leave, Look, Op, SharedRoute, Slot, Ticket

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


@dataclass(frozen=True)
class _Go:
    index: int


@dataclass(frozen=True)
class _Sleep:
    until: float
    reason: str
    route: str


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
) -> Flow:
    """Run one call over ``routes`` (in preference order) until a reply or a final error.

    ``estimates[i]`` is the request's token estimate for ``routes[i]`` (models differ).
    With ``stream=True`` a success yields ``Relay``: the flow keeps the attempt's admission
    until the driver says how the stream ended, and finishes it accordingly.
    ``unfit[i]`` says why ``routes[i]`` cannot take the request (it is skipped unasked),
    ``windows[i]`` is its model's context window if known (a context-length error moves
    the call to a larger one), ``budgets[i]`` its retry budget, ``ceilings[i]`` the most
    tokens a reply on it may settle (see :func:`~resilient_llm.policies.tokens.usage_ceiling`).
    """
    for name, given in (
        ("estimate", estimates),
        ("unfit", unfit),
        ("windows", windows),
        ("ceiling", ceilings),
    ):
        if given and len(given) != len(routes):
            raise ValueError(f"call_flow needs one {name} per route")
    if budgets and len(budgets) != len(routes):
        raise ValueError("call_flow needs one budget per route")
    state = CallState(len(routes))
    report = CallReport()
    refused: Refused | None = None
    # The latest moment an attempt may start: one sent later has too little time to
    # plausibly succeed, and would only time out and be blamed on a healthy provider.
    last_start = deadline - min(policy.retry.min_attempt_time, (deadline - now) / 10)
    try:
        while True:
            _note_disabled(routes, state, report, now, emit)
            if now >= last_start:
                raise deadline_error(state, report, _too_late(deadline, now))
            choice = yield from _choose(
                routes, estimates, unfit, state, report, policy, now, last_start, emit
            )
            if isinstance(choice, _Sleep):
                now = yield from _wait(report, choice, now, emit)
                continue
            index = choice.index
            route = routes[index]
            bulkhead = route.has_bulkhead
            if bulkhead:
                now = yield from _enter(route, now, last_start, state, report, emit)
            try:
                now, held = yield from _admit(
                    route, estimates[index], now, last_start, report, emit
                )
            except GeneratorExit:
                raise  # closed without being told: nothing may be yielded any more
            except BaseException:
                if bulkhead:
                    yield Leave(route)
                raise
            if held is None:
                if bulkhead:
                    yield Leave(route)
                continue
            slot, permit = held
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
            emit(AttemptStarted(route.name, now, state.attempts))
            started = now
            own = min(policy.attempt_timeout or math.inf, route.attempt_timeout or math.inf)
            timeout = min(deadline - now, own)
            call = Call(route, timeout, state.attempts, until_deadline=deadline - now <= own)
            outcome = yield from _held(admission, call)
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
                    yield from _relay(admission, report, emit)
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


def finish(
    admission: Admission,
    how: FinishHow,
    now: float | None = None,
    usage_tokens: int | None = None,
    emit: EventHandler | None = None,
) -> Generator[Effect, Answer, None]:
    """End ``admission`` ``how`` (once; later calls change nothing)."""
    effect = admission.finish(how, now, admission.charged(usage_tokens))
    if effect is None:
        return
    yield effect
    if how == "succeed" and usage_tokens is not None and emit is not None and now is not None:
        emit(Settled(admission.route.name, now, admission.estimate, usage_tokens))


def _held(admission: Admission, effect: Effect) -> Generator[Effect, Answer, Answer]:
    """Yield ``effect`` while holding ``admission``: cancelled meanwhile, the admission is
    released (the request may have gone out, so its reservation stays)."""
    try:
        return (yield effect)
    except Cancelled:
        yield from finish(admission, "release")
        raise


def _relay(
    admission: Admission, report: CallReport, emit: EventHandler
) -> Generator[Effect, Answer, None]:
    """Hand the stream to the caller; finish its admission as the stream ended."""
    ended = yield from _held(admission, Relay(admission.route, report))
    if isinstance(ended, StreamEnded):
        yield from finish(admission, "succeed", ended.now, ended.usage_tokens, emit)
    elif isinstance(ended, StreamBroke):
        # The provider broke the stream: its breaker counts the failure.
        yield from finish(admission, "fail", ended.now)
    elif isinstance(ended, StreamDropped):
        yield from finish(admission, "release")
    else:
        yield from finish(admission, "release")
        raise TypeError(f"a Relay must be answered with how the stream ended, not {ended!r}")


def _too_late(deadline: float, now: float) -> str:
    if now >= deadline:
        return "the deadline passed"
    return f"only {deadline - now:.3g}s left, too little for an attempt"


def _admit(
    route: SharedRoute,
    estimate: int,
    now: float,
    deadline: float,
    report: CallReport,
    emit: EventHandler,
) -> Generator[Effect, Answer, tuple[float, tuple[Slot, Permit] | None]]:
    """A limiter slot and a breaker permit on ``route``, queueing if need be; None (and
    nothing held) when the route changed under us and the call must decide again."""
    ticket = yield from ask(route, "admit", Ticket, estimate, now)
    slot, permit = ticket.slot, ticket.permit
    if slot is None:
        # Another call opened the breaker or got a 429 since we looked.
        return now, None
    if permit is None:
        if now + slot.wait >= deadline:
            # Another caller took the slot between our look and our reservation.
            yield from tell(route, "cancel", slot)
            return now, None
        try:
            now = yield from _wait(report, _Sleep(slot.at, "limiter", route.name), now, emit)
            permit = yield from _acquire(route, now)
        except Cancelled:
            yield from tell(route, "cancel", slot)
            raise
        if permit is None:
            # The route changed while we queued: give the slot back.
            yield from tell(route, "cancel", slot)
            return now, None
    return now, (slot, permit)


def _acquire(route: SharedRoute, now: float) -> Generator[Effect, Answer, Permit | None]:
    permit = yield Op(route, "acquire", (now,))
    if permit is not None and not isinstance(permit, Permit):
        raise TypeError(f"an Op 'acquire' must be answered with a Permit or None, not {permit!r}")
    return permit


def _enter(
    route: SharedRoute,
    now: float,
    deadline: float,
    state: CallState,
    report: CallReport,
    emit: EventHandler,
) -> Generator[Effect, Answer, float]:
    """A slot of the route's bulkhead, queueing (FIFO) at most until the deadline."""
    sent = yield Enter(route, deadline - now)
    if not isinstance(sent, Entered):
        raise TypeError("an Enter must be answered with Entered")
    waited = max(0.0, sent.now - now)
    if sent.queued:
        report.waits.append((route.name, "bulkhead", waited))
        emit(LimiterWait(route.name, now, waited, "bulkhead"))
    if sent.ok and sent.now < deadline:
        return sent.now
    if sent.ok:
        yield Leave(route)
    raise deadline_error(state, report, f"{route.name!r} had no free slot before the deadline")


def _wait(
    report: CallReport, sleep: _Sleep, now: float, emit: EventHandler
) -> Generator[Effect, Answer, float]:
    seconds = sleep.until - now
    report.waits.append((sleep.route, sleep.reason, seconds))
    emit(LimiterWait(sleep.route, now, seconds, sleep.reason))
    sent = yield Wait(seconds, sleep.reason, sleep.route)
    if not isinstance(sent, float | int):
        raise TypeError("a Wait must be answered with the current time")
    # Having waited until `until`, it is at least `until`: float rounding in a clock's
    # `now + seconds` must not leave us a hair early, re-deciding to wait forever.
    return max(float(sent), sleep.until)


def _note_disabled(
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


def _choose(
    routes: Sequence[SharedRoute],
    estimates: Sequence[int],
    unfit: Sequence[Unfit | None],
    state: CallState,
    report: CallReport,
    policy: FlowPolicy,
    now: float,
    deadline: float,
    emit: EventHandler,
) -> Generator[Effect, Answer, _Go | _Sleep]:
    sticky = state.sticky
    if sticky is not None and sticky not in state.out:
        route = routes[sticky]
        look = yield from ask(route, "look", Look, estimates[sticky], now)
        if look.ready_at <= now and look.paused_until <= now:
            until = state.backoff_until[sticky]
            if until > now:
                if until < deadline:
                    return _Sleep(until, "backoff", route.name)
            elif now + look.wait < deadline:
                return _Go(sticky)
            # A backoff or queue that would outlive the deadline is not begun: fail over if
            # another route can go, else the free choice below raises DeadlineExceeded.
    state.sticky = None

    ready: list[tuple[int, float]] = []
    soonest: _Sleep | None = None
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
        look = yield from ask(route, "look", Look, estimates[index], now)
        if look.ready_at > now:
            state.blocked_by_breaker = True
            report.skipped(route.name, "circuit open", now, emit)
            continue
        gate, reason = max(
            (look.paused_until, "retry-after"), (state.backoff_until[index], "backoff")
        )
        if gate > now:
            if soonest is None or gate < soonest.until:
                soonest = _Sleep(gate, reason, route.name)
            continue
        if look.wait <= policy.spill_over and now + look.wait < deadline:
            return _Go(index)
        ready.append((index, look.wait))

    in_time = [(index, wait) for index, wait in ready if now + wait < deadline]
    if in_time:
        return _Go(min(in_time, key=lambda item: item[1])[0])
    if soonest is not None and soonest.until < deadline:
        return soonest
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
        yield from finish(admission, "release")
        state.retries[index] += 1
        delay = policy.retry.delay(state.retries[index], rng, hint=error.retry_after)
        yield from tell(route, "pause", now, delay)
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
    ready_at = yield from ask(route, "ready_at", float, now)
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
