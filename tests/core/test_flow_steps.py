"""The decision core stepped effect by effect, with no driver, no state and no clock.

Every read and change of a route's state is an effect the flow yields, so a test can
play the driver: answer each effect by hand and check the next one. A route here is a
bare name; nothing is performed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from resilient_llm.errors import ProviderUnavailable, RateLimited
from resilient_llm.flow.admission import CallReport
from resilient_llm.flow.call import Flow, call_flow
from resilient_llm.flow.effects import (
    Call,
    Cancelled,
    Failed,
    FlowPolicy,
    Relay,
    StreamBroke,
    StreamDropped,
    StreamEnded,
    Succeeded,
    Wait,
)
from resilient_llm.flow.ops import Done, Finish, Look, Op, Ticket
from resilient_llm.policies.backoff import RetryPolicy
from resilient_llm.policies.breaker import Permit
from resilient_llm.policies.hints import RateLimitHints
from resilient_llm.policies.limiter import RateLimit


@dataclass
class Bare:
    """A route the flow can name; its state lives wherever the test says it does."""

    name: str
    attempt_timeout: float | None = None
    remote: bool = False
    settles_below_estimate: bool = True
    has_bulkhead: bool = False
    disabled: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)

    def __post_init__(self) -> None:
        self.observed: list[RateLimitHints] = []

    def check_fits(self, tokens: int) -> None:
        return None

    def observe(self, hints: RateLimitHints, now: float) -> None:
        self.observed.append(hints)

    def disable(self, reason: str) -> None:
        self.disabled = reason

    def perform(self, name: str, args: tuple[Any, ...]) -> Any:
        raise AssertionError("a stepped flow performs nothing")

    async def aperform(self, name: str, args: tuple[Any, ...]) -> Any:
        raise AssertionError("a stepped flow performs nothing")

    def finish(self, *args: Any) -> None:
        raise AssertionError("a stepped flow performs nothing")

    async def afinish(self, *args: Any) -> None:
        raise AssertionError("a stepped flow performs nothing")


@dataclass(frozen=True)
class Slot:
    at: float
    wait: float


OPEN_ROAD = Look(ready_at=0.0, paused_until=0.0, wait=0.0)


def asked(effect: object) -> tuple[object, str, tuple[Any, ...]]:
    """An Op as (route, name, args), its store budget aside."""
    assert isinstance(effect, Op), effect
    return effect.route, effect.name, effect.args


PERMIT = Permit(probe=False, generation=0, id=1)


def flow(*routes: Bare, stream: bool = False, retries: int = 1) -> Flow:
    return call_flow(
        list(routes),
        [10] * len(routes),
        FlowPolicy(retry=RetryPolicy(max_retries=retries, base=1.0, cap=1.0, jitter="none")),
        now=0.0,
        deadline=60.0,
        rng=random.Random(0),
        emit=lambda event: None,
        stream=stream,
    )


def admitted(steps: Flow, route: Bare, now: float = 0.0) -> Call:
    """Answer the look and the admission of one attempt on ``route``; return its Call."""
    look = next(steps) if now == 0.0 else steps.send(now)
    assert asked(look) == (route, "look", (10, now))
    admit = steps.send(Done(OPEN_ROAD, now))
    assert isinstance(admit, Op)
    assert (admit.route, admit.name) == (route, "admit")
    call = steps.send(Done(Ticket(Slot(now, 0.0), PERMIT), now))
    assert isinstance(call, Call)
    assert call.route is route
    return call


def test_a_reply_is_looked_at_admitted_called_and_settled() -> None:
    a = Bare("a")
    steps = flow(a)
    admitted(steps, a)
    quota = RateLimitHints(limit_requests=5, remaining_requests=4)
    done = steps.send(Succeeded(1.0, usage_tokens=7, quota=quota))
    assert isinstance(done, Finish)
    assert (done.how, done.now, done.tokens) == ("succeed", 1.0, 7)
    assert a.observed == [quota], "the reply's quota headers are the flow's to apply"
    with pytest.raises(StopIteration) as stop:
        steps.send(Done(None, 1.0))
    report = stop.value.value
    assert isinstance(report, CallReport)
    assert report.route == "a"


def test_a_failure_is_recorded_asked_about_and_retried_after_backoff() -> None:
    a = Bare("a")
    steps = flow(a)
    admitted(steps, a)
    failed = steps.send(Failed(1.0, ProviderUnavailable("down", status_code=503)))
    assert isinstance(failed, Finish)
    assert failed.how == "fail"
    ready = steps.send(Done(None, 1.0))
    assert asked(ready) == (a, "ready_at", (1.0,))
    look = steps.send(Done(1.0, 1.0))  # the breaker is ready: a retry after backoff
    assert asked(look) == (a, "look", (10, 1.0))
    wait = steps.send(Done(OPEN_ROAD, 1.0))
    assert isinstance(wait, Wait)
    assert (wait.reason, wait.seconds) == ("backoff", 1.0)
    admitted(steps, a, now=2.0)


def test_a_429_releases_pauses_the_route_and_fails_over() -> None:
    a, b = Bare("a"), Bare("b")
    steps = flow(a, b)
    admitted(steps, a)
    released = steps.send(Failed(1.0, RateLimited("slow down", retry_after=30.0)))
    assert isinstance(released, Finish)
    assert released.how == "release"
    pause = steps.send(Done(None, 1.0))
    assert asked(pause) == (a, "pause", (1.0, 30.0))
    look = steps.send(Done(None, 1.0))
    assert asked(look) == (a, "look", (10, 1.0))
    look_b = steps.send(Done(Look(ready_at=0.0, paused_until=31.0, wait=0.0), 1.0))
    assert asked(look_b) == (b, "look", (10, 1.0))
    admit = steps.send(Done(OPEN_ROAD, 1.0))
    assert isinstance(admit, Op)
    assert admit.route is b


@pytest.mark.parametrize(
    ("ended", "how"),
    [(StreamEnded(2.0, 9), "succeed"), (StreamBroke(2.0), "fail"), (StreamDropped(), "release")],
)
def test_a_stream_keeps_its_admission_until_told_how_it_ended(ended: object, how: str) -> None:
    a = Bare("a")
    steps = flow(a, stream=True)
    admitted(steps, a)
    relay = steps.send(Succeeded(1.0))
    assert isinstance(relay, Relay)
    assert relay.report.route == "a"
    done = steps.send(ended)
    assert isinstance(done, Finish)
    assert done.how == how
    with pytest.raises(StopIteration):
        steps.send(Done(None, 2.0))


@pytest.mark.parametrize("stream", [False, True])
def test_a_cancelled_call_yields_what_gives_back_its_hold_then_reraises(stream: bool) -> None:
    a = Bare("a")
    steps = flow(a, stream=stream)
    admitted(steps, a)
    if stream:
        assert isinstance(steps.send(Succeeded(1.0)), Relay)
    given_back = steps.throw(Cancelled())
    assert isinstance(given_back, Finish)
    assert given_back.how == "release"
    with pytest.raises(Cancelled):
        steps.send(Done(None, 1.0))


def test_a_call_cancelled_in_the_limiter_queue_gives_its_slot_back() -> None:
    a = Bare("a")
    steps = flow(a)
    next(steps)
    steps.send(Done(OPEN_ROAD, 0.0))
    slot = Slot(5.0, 5.0)
    wait = steps.send(Done(Ticket(slot, None), 0.0))
    assert isinstance(wait, Wait)
    assert wait.reason == "limiter"
    cancel = steps.throw(Cancelled())
    assert asked(cancel) == (a, "cancel", (slot,))
    with pytest.raises(Cancelled):
        steps.send(Done(None, 0.0))


def test_each_store_question_gets_half_the_time_left_and_a_slow_store_is_skipped() -> None:
    a = Bare("a", remote=True)
    steps = flow(a)
    look = next(steps)
    assert isinstance(look, Op)
    # 60 s to the deadline, less the last 0.5 s no attempt may start in: half of 59.5 s.
    assert (look.until, look.local) == (29.75, False)
    # The store did not answer in time: the look was decided locally, 29.75 s later.
    admit = steps.send(Done(OPEN_ROAD, 29.75, local=True))
    assert isinstance(admit, Op)
    assert admit.local, "a store too slow once is not asked again in this call"
    assert admit.args == (10, 29.75), "the time the store took is the flow's to know"
    call = steps.send(Done(Ticket(Slot(29.75, 0.0), PERMIT), 29.75, local=True))
    assert isinstance(call, Call)
    assert call.timeout == pytest.approx(60.0 - 29.75)
