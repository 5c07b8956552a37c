"""What one call takes on a route and gives back, as effects.

A bulkhead slot (``enter``), a limiter slot and a breaker permit (``admit``, queueing in
the limiter with ``wait``), held while an attempt runs (``held``) or its stream is relayed
(``relay``), then finished one way (``finish``). Each step yields the effects that take or
give back; a call cancelled while holding yields what gives it back before it re-raises.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from ..events import EventHandler, LimiterWait, Settled, heard
from ..policies.breaker import Permit
from .admission import Admission, CallReport
from .asking import Asker
from .callstate import CallState, deadline_error
from .effects import (
    Answer,
    Cancelled,
    Effect,
    Enter,
    Entered,
    Relay,
    StreamBroke,
    StreamDropped,
    StreamEnded,
    Wait,
)
from .ops import Done, FinishHow, Leave, SharedRoute, Slot, Ticket

__all__ = ["Sleep", "admit", "enter", "finish", "held", "relay", "wait"]


@dataclass(frozen=True)
class Sleep:
    until: float
    reason: str
    route: str


def finish(
    admission: Admission,
    how: FinishHow,
    now: float | None = None,
    usage_tokens: int | None = None,
    emit: EventHandler | None = None,
) -> Generator[Effect, Answer, float | None]:
    """End ``admission`` ``how`` (once; later calls change nothing); the time after it,
    if the driver said."""
    effect = admission.finish(how, now, admission.charged(usage_tokens))
    if effect is None:
        return now
    done = yield effect
    if (
        how == "succeed"
        and usage_tokens is not None
        and emit is not None
        and now is not None
        and heard(emit)
    ):
        emit(Settled(admission.route.name, now, admission.estimate, usage_tokens))
    if isinstance(done, Done) and now is not None:
        return max(now, done.now)
    return now


def held(admission: Admission, effect: Effect) -> Generator[Effect, Answer, Answer]:
    """Yield ``effect`` while holding ``admission``: cancelled meanwhile, the admission is
    released (the request may have gone out, so its reservation stays)."""
    try:
        return (yield effect)
    except Cancelled:
        yield from finish(admission, "release")
        raise


def relay(
    admission: Admission, report: CallReport, emit: EventHandler
) -> Generator[Effect, Answer, None]:
    """Hand the stream to the caller; finish its admission as the stream ended."""
    ended = yield from held(admission, Relay(admission.route, report))
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


def admit(
    route: SharedRoute,
    estimate: int,
    now: float,
    deadline: float,
    report: CallReport,
    emit: EventHandler,
    asker: Asker,
) -> Generator[Effect, Answer, tuple[float, tuple[Slot, Permit] | None]]:
    """A limiter slot and a breaker permit on ``route``, queueing if need be; None (and
    nothing held) when the route changed under us and the call must decide again."""
    ticket, now = yield from asker.ask(route, "admit", Ticket, now, estimate, now)
    slot, permit = ticket.slot, ticket.permit
    if slot is None:
        # Another call opened the breaker or got a 429 since we looked.
        return now, None
    if permit is None:
        if now + slot.wait >= deadline:
            # Another caller took the slot between our look and our reservation.
            now = yield from asker.tell(route, "cancel", now, slot)
            return now, None
        try:
            now = yield from wait(report, Sleep(slot.at, "limiter", route.name), now, emit)
            permit, now = yield from asker.acquire(route, now)
        except Cancelled:
            yield from asker.tell(route, "cancel", now, slot)
            raise
        if permit is None:
            # The route changed while we queued: give the slot back.
            now = yield from asker.tell(route, "cancel", now, slot)
            return now, None
    return now, (slot, permit)


def enter(
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


def wait(
    report: CallReport, sleep: Sleep, now: float, emit: EventHandler
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
