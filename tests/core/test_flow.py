"""The decision core on scripted outcomes and a fake clock: no I/O, no real time."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_llm.clock import FakeClock
from resilient_llm.errors import (
    AllProvidersFailed,
    AuthError,
    BadRequest,
    CircuitOpen,
    DeadlineExceeded,
    ProviderUnavailable,
    RateLimited,
    RequestTooLarge,
    ResilientLLMError,
)
from resilient_llm.events import Event, Failover, RetryScheduled
from resilient_llm.flow.effects import FlowPolicy
from resilient_llm.policies.backoff import RetryPolicy
from resilient_llm.policies.breaker import BreakerPolicy, CircuitState, StateChange
from resilient_llm.policies.limiter import RateLimit
from resilient_llm.run.drivers import run_async, run_sync

from .scripted import Script, Slow, flow_for, make_routes

NO_JITTER = FlowPolicy(retry=RetryPolicy(max_retries=3, base=0.5, jitter="none"))


def overloaded(provider: str = "") -> ProviderUnavailable:
    return ProviderUnavailable("overloaded", provider=provider, status_code=529)


def drive(mode: str, flow: Any, clock: FakeClock, script: Script) -> tuple[str, Any]:
    if mode == "sync":
        return run_sync(flow, clock, script.send)
    return asyncio.run(run_async(flow, clock, script.asend))


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_seed_sequence(mode: str) -> None:
    """OpenAI 429 -> Anthropic; Anthropic overloaded -> backoff -> breaker opens -> Gemini;
    after the cooldown one half-open probe to Anthropic decides."""
    clock = FakeClock()
    routes = make_routes("openai", "anthropic", "gemini")
    changes: list[StateChange] = []
    routes[1].breaker.add_listener(changes.append)
    script = Script(
        clock,
        {
            "openai": [RateLimited("quota", status_code=429, retry_after=30.0)],
            "anthropic": ["Paris", overloaded(), overloaded(), overloaded(), "back"],
            "gemini": ["Paris vs Lyon"],
        },
    )

    # 1: the 429 pauses OpenAI for 30 s and the call moves to Anthropic at once.
    value, report = drive(mode, flow_for(routes, clock, policy=NO_JITTER), clock, script)
    assert value == "anthropic:Paris"
    assert [(a.route, a.outcome) for a in report.attempts] == [
        ("openai", "RateLimited"),
        ("anthropic", "ok"),
    ]
    assert report.failovers == [("openai", "anthropic", "rate limited")]
    assert clock.sleeps == []

    # 2: Anthropic overloaded: backoff 0.5 s, 1 s, then the breaker opens at 3 -> Gemini.
    value, report = drive(mode, flow_for(routes, clock, policy=NO_JITTER), clock, script)
    assert value == "gemini:Paris vs Lyon"
    assert [(a.route, a.outcome) for a in report.attempts] == [
        ("anthropic", "ProviderUnavailable"),
        ("anthropic", "ProviderUnavailable"),
        ("anthropic", "ProviderUnavailable"),
        ("anthropic", "skipped"),
        ("gemini", "ok"),
    ]
    assert report.attempts[3].detail == "circuit open"
    assert clock.sleeps == [0.5, 1.0]
    assert routes[1].breaker.state(clock.now()) is CircuitState.OPEN
    assert report.failovers == [("anthropic", "gemini", "circuit opened")]

    # While the pause and the breaker hold, calls go to Gemini without touching the others.
    calls_before = len(script.log)
    script.plan["gemini"] = ["again"]
    value, _ = drive(mode, flow_for(routes, clock, policy=NO_JITTER), clock, script)
    assert value == "gemini:again"
    assert script.log[calls_before:] == [("gemini", clock.now())]

    # 3: after the cooldown OpenAI is rate limited again; Anthropic's half-open probe closes it.
    clock.advance(31.0)
    script.plan["openai"] = [RateLimited("quota", status_code=429, retry_after=60.0)]
    value, report = drive(mode, flow_for(routes, clock, policy=NO_JITTER), clock, script)
    assert value == "anthropic:back"
    assert routes[1].breaker.state(clock.now()) is CircuitState.CLOSED
    assert [(c.old, c.new) for c in changes] == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    # The whole run: who was called, in what order.
    assert [name for name, _ in script.log] == [
        "openai",
        "anthropic",
        "anthropic",
        "anthropic",
        "anthropic",
        "gemini",
        "gemini",
        "openai",
        "anthropic",
    ]


def test_rate_limit_pause_is_shared_and_waited_for_when_alone(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a")
    script = Script(clock, {"a": [RateLimited("slow down", retry_after=4.0), "ok"]})
    value, report = drive(mode, flow_for(routes, clock, deadline=10), clock, script)
    assert value == "a:ok"
    assert clock.sleeps == [4.0]
    assert report.waits == [("a", "retry-after", 4.0)]
    assert script.log == [("a", 0.0), ("a", 4.0)]


def test_hint_longer_than_time_left_raises_at_once(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a")
    script = Script(clock, {"a": [RateLimited("slow down", retry_after=100.0)]})
    with pytest.raises(DeadlineExceeded) as info:
        drive(mode, flow_for(routes, clock, deadline=10), clock, script)
    assert clock.sleeps == []
    assert clock.now() == 0.0
    assert isinstance(info.value.__cause__, RateLimited)
    assert [a.outcome for a in info.value.attempts] == ["RateLimited"]


def test_backoff_that_would_pass_deadline_fails_over(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    policy = FlowPolicy(retry=RetryPolicy(base=8.0, jitter="none"))
    script = Script(clock, {"a": [overloaded()], "b": ["ok"]})
    value, _ = drive(mode, flow_for(routes, clock, deadline=5, policy=policy), clock, script)
    assert value == "b:ok"
    assert clock.sleeps == []


def test_retries_spent_then_failover(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b", breaker=BreakerPolicy(failure_threshold=100))
    policy = FlowPolicy(retry=RetryPolicy(max_retries=2, base=1.0, jitter="none"))
    script = Script(clock, {"a": [overloaded()] * 3, "b": ["ok"]})
    value, report = drive(mode, flow_for(routes, clock, policy=policy), clock, script)
    assert value == "b:ok"
    assert clock.sleeps == [1.0, 2.0]
    assert report.failovers == [("a", "b", "retries spent")]


def test_provider_hint_wins_over_backoff(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a")
    hinted = ProviderUnavailable("busy", status_code=503, retry_after=7.0)
    script = Script(clock, {"a": [hinted, "ok"]})
    events: list[Event] = []
    drive(mode, flow_for(routes, clock, policy=NO_JITTER, events=events), clock, script)
    assert clock.sleeps == [7.0]
    assert [e.delay for e in events if isinstance(e, RetryScheduled)] == [7.0]


def test_bad_request_raises_at_once_without_failover(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    script = Script(clock, {"a": [BadRequest("bad schema", status_code=400)]})
    with pytest.raises(BadRequest):
        drive(mode, flow_for(routes, clock), clock, script)
    assert script.log == [("a", 0.0)]
    # The breaker neither counted it nor kept the permit.
    snap = routes[0].breaker.snapshot(clock.now())
    assert (snap.failures, snap.probes_in_flight) == (0, 0)


def test_auth_error_disables_route_for_later_calls(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    script = Script(clock, {"a": [AuthError("bad key", status_code=401)]})
    value, report = drive(mode, flow_for(routes, clock), clock, script)
    assert value == "b:ok"
    assert routes[0].disabled == "AuthError (HTTP 401)"
    value, report = drive(mode, flow_for(routes, clock), clock, script)
    assert [name for name, _ in script.log] == ["a", "b", "b"]
    assert report.attempts[0].outcome == "skipped"
    assert "disabled" in report.attempts[0].detail


def test_limiter_spills_over_to_a_later_route(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b", limits={"a": RateLimit(requests_per_minute=1)})
    routes[0].limiter.reserve(10, clock.now())
    script = Script(clock, {})
    value, _ = drive(mode, flow_for(routes, clock), clock, script)
    assert value == "b:ok"
    assert clock.sleeps == []
    assert routes[0].limiter.snapshot(clock.now()).queue_length == 0


def test_limiter_queue_is_waited_in_when_no_route_can_go(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", limits={"a": RateLimit(requests_per_minute=1)})
    routes[0].limiter.reserve(10, clock.now())
    script = Script(clock, {})
    value, report = drive(mode, flow_for(routes, clock, deadline=90), clock, script)
    assert value == "a:ok"
    assert clock.sleeps == [60.0]
    assert report.waits == [("a", "limiter", 60.0)]


def test_limiter_wait_past_deadline_raises_without_waiting(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", limits={"a": RateLimit(requests_per_minute=1)})
    routes[0].limiter.reserve(10, clock.now())
    with pytest.raises(DeadlineExceeded):
        drive(mode, flow_for(routes, clock, deadline=30), clock, Script(clock, {}))
    assert clock.sleeps == []
    assert routes[0].limiter.snapshot(clock.now()).queue_length == 0


def test_request_too_large_for_every_route(mode: str) -> None:
    clock = FakeClock()
    limit = RateLimit(tokens_per_minute=100)
    routes = make_routes("a", "b", limits={"a": limit, "b": limit})
    with pytest.raises(RequestTooLarge):
        drive(mode, flow_for(routes, clock, estimates=[500, 500]), clock, Script(clock, {}))


def test_too_large_for_one_route_uses_another(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b", limits={"a": RateLimit(tokens_per_minute=100)})
    script = Script(clock, {})
    value, report = drive(mode, flow_for(routes, clock, estimates=[500, 500]), clock, script)
    assert value == "b:ok"
    assert report.attempts[0].outcome == "skipped"


def test_all_breakers_open_fails_fast_without_calls(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b", breaker=BreakerPolicy(failure_threshold=1, cooldown=30))
    for route in routes:
        permit = route.breaker.acquire(0.0)
        assert permit is not None
        route.breaker.record_failure(permit, 0.0)
    script = Script(clock, {})
    with pytest.raises(CircuitOpen):
        drive(mode, flow_for(routes, clock), clock, script)
    assert script.log == []


def test_everything_failing_raises_all_providers_failed(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b", breaker=BreakerPolicy(failure_threshold=2))
    script = Script(clock, {}, default=overloaded())
    with pytest.raises(AllProvidersFailed) as info:
        drive(mode, flow_for(routes, clock, policy=NO_JITTER), clock, script)
    error = info.value
    assert error.retryable
    assert [a.route for a in error.attempts if a.outcome != "skipped"] == ["a", "a", "b", "b"]
    assert isinstance(error.__cause__, ProviderUnavailable)


def test_a_hang_is_cut_by_the_deadline(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    script = Script(clock, {"a": [Slow(1000.0)], "b": [Slow(1000.0)]})
    with pytest.raises(DeadlineExceeded):
        drive(mode, flow_for(routes, clock, deadline=10), clock, script)
    assert clock.now() == pytest.approx(10.0)


def test_attempt_timeout_bounds_one_attempt(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    policy = FlowPolicy(attempt_timeout=2.0, retry=RetryPolicy(max_retries=0))
    script = Script(clock, {"a": [Slow(1000.0)], "b": ["ok"]})
    value, _ = drive(mode, flow_for(routes, clock, deadline=10, policy=policy), clock, script)
    assert value == "b:ok"
    assert clock.now() == pytest.approx(2.0)


def test_failover_events_name_both_routes() -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    events: list[Event] = []
    script = Script(clock, {"a": [RateLimited("x", retry_after=5.0)]})
    run_sync(flow_for(routes, clock, events=events), clock, script.send)
    failovers = [e for e in events if isinstance(e, Failover)]
    assert [(e.route, e.to_route, e.reason) for e in failovers] == [("a", "b", "rate limited")]


# --- properties over random scripts -------------------------------------------------

OUTCOMES = st.one_of(
    st.just("ok"),
    st.builds(lambda s: RateLimited("429", retry_after=s), st.floats(0, 50)),
    st.just(RateLimited("429 without hint")),
    st.just(overloaded()),
    st.builds(lambda s: ProviderUnavailable("503", retry_after=s), st.floats(0, 20)),
    st.builds(lambda s: Slow(s, "ok"), st.floats(0, 40)),
    st.builds(lambda s: Slow(s, overloaded()), st.floats(0, 40)),
    st.just(AuthError("401", status_code=401)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.lists(OUTCOMES, max_size=6), min_size=1, max_size=3),
    deadline=st.floats(0.5, 120),
    rpm=st.one_of(st.none(), st.integers(1, 3)),
    calls=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_no_call_outlives_its_deadline_or_leaks(
    plan: list[list[object]], deadline: float, rpm: int | None, calls: int, seed: int
) -> None:
    clock = FakeClock()
    names = [f"r{i}" for i in range(len(plan))]
    limit = RateLimit(requests_per_minute=rpm)
    routes = make_routes(*names, limits=dict.fromkeys(names, limit))
    script = Script(clock, dict(zip(names, plan, strict=True)))
    violations: list[str] = []
    original = script._step

    def checked(call: Any) -> object:
        route = call.route
        # The flow takes a wait to have reached its end even when the clock's float sum
        # `now + seconds` falls a hair short of it (see flow/take.py `wait`).
        if route.paused_until() > clock.now() + 1e-9:
            violations.append(f"{route.name} called while paused")
        if route.breaker.state(clock.now()) is CircuitState.OPEN:
            violations.append(f"{route.name} called while open")
        return original(call)

    script._step = checked  # type: ignore[method-assign]
    for _ in range(calls):
        start = clock.now()
        before = len(clock.sleeps)
        with contextlib.suppress(ResilientLLMError):
            run_sync(flow_for(routes, clock, deadline=deadline, seed=seed), clock, script.send)
        # Nothing sleeps past the deadline, and attempts are cut at it.
        assert sum(clock.sleeps[before:]) <= deadline + 1e-9
        assert clock.now() <= start + deadline + 1e-9
        clock.advance(1.0)
    assert violations == []
    for route in routes:
        assert route.limiter.snapshot(clock.now()).queue_length == 0
        assert route.breaker.snapshot(clock.now()).probes_in_flight == 0


def test_a_routes_own_attempt_timeout_bounds_its_attempts(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    routes[0].attempt_timeout = 1.5
    policy = FlowPolicy(retry=RetryPolicy(max_retries=0))
    script = Script(clock, {"a": [Slow(1000.0)], "b": [Slow(5.0, "late")]})
    value, _ = drive(mode, flow_for(routes, clock, deadline=100, policy=policy), clock, script)
    assert value == "b:late"  # b has no attempt timeout of its own: only the deadline
    assert script.log == [("a", 0.0), ("b", 1.5)]


def test_a_deadline_cut_counts_neither_way_for_the_breaker(mode: str) -> None:
    """An attempt cut short by the call's own deadline is not the provider's failure."""
    clock = FakeClock()
    routes = make_routes("a", breaker=BreakerPolicy(failure_threshold=1, cooldown=30))
    script = Script(clock, {"a": [Slow(1000.0), "ok"]})
    with pytest.raises(DeadlineExceeded) as info:
        drive(mode, flow_for(routes, clock, deadline=10), clock, script)
    assert [(a.route, a.outcome) for a in info.value.attempts] == [("a", "DeadlineExceeded")]
    assert isinstance(info.value.__cause__, ProviderUnavailable)
    assert routes[0].breaker.state(clock.now()) is CircuitState.CLOSED
    # The next call is sent, not refused as CircuitOpen.
    value, _ = drive(mode, flow_for(routes, clock, deadline=10), clock, script)
    assert value == "a:ok"


def test_a_providers_own_timeout_still_counts(mode: str) -> None:
    """A per-attempt timeout shorter than the time left is the provider being slow."""
    clock = FakeClock()
    routes = make_routes("a", "b", breaker=BreakerPolicy(failure_threshold=1, cooldown=30))
    policy = FlowPolicy(attempt_timeout=2.0, retry=RetryPolicy(max_retries=0))
    script = Script(clock, {"a": [Slow(1000.0)]})
    value, _ = drive(mode, flow_for(routes, clock, deadline=10, policy=policy), clock, script)
    assert value == "b:ok"
    assert routes[0].breaker.state(clock.now()) is CircuitState.OPEN


def test_a_deadline_cut_gives_back_the_half_open_probe(mode: str) -> None:
    clock = FakeClock()
    routes = make_routes("a", breaker=BreakerPolicy(failure_threshold=1, cooldown=30))
    permit = routes[0].breaker.acquire(0.0)
    assert permit is not None
    routes[0].breaker.record_failure(permit, 0.0)
    clock.advance(31.0)
    script = Script(clock, {"a": [Slow(1000.0), "ok"]})
    with pytest.raises(DeadlineExceeded):
        drive(mode, flow_for(routes, clock, deadline=5), clock, script)
    assert routes[0].breaker.state(clock.now()) is CircuitState.HALF_OPEN
    # The probe permit came back: the next call probes and closes the breaker.
    value, _ = drive(mode, flow_for(routes, clock, deadline=5), clock, script)
    assert value == "a:ok"
    assert routes[0].breaker.state(clock.now()) is CircuitState.CLOSED


@pytest.mark.parametrize(("floor", "sent"), [(0.5, False), (0.0, True)])
def test_no_attempt_is_sent_with_too_little_time_left(mode: str, floor: float, sent: bool) -> None:
    """A limiter queue that would leave the attempt less than the floor is not joined."""
    clock = FakeClock()
    routes = make_routes("a", limits={"a": RateLimit(requests_per_minute=1)})
    routes[0].limiter.reserve(10, clock.now())
    policy = FlowPolicy(retry=RetryPolicy(min_attempt_time=floor))
    script = Script(clock, {})
    flow = flow_for(routes, clock, deadline=60.3, policy=policy)
    if sent:
        value, _ = drive(mode, flow, clock, script)
        assert value == "a:ok"
        assert script.log == [("a", 60.0)]
        return
    with pytest.raises(DeadlineExceeded, match="outlasts the deadline"):
        drive(mode, flow, clock, script)
    assert script.log == []
    assert clock.sleeps == []
    assert routes[0].limiter.snapshot(clock.now()).queue_length == 0


def test_no_retry_is_sent_with_too_little_time_left(mode: str) -> None:
    """A backoff that would leave less than the floor is not begun; the breaker keeps its
    one failure and the call ends DeadlineExceeded at once."""
    clock = FakeClock()
    routes = make_routes("a")
    policy = FlowPolicy(retry=RetryPolicy(max_retries=3, base=4.0, jitter="none"))
    script = Script(clock, {"a": [overloaded()]})
    with pytest.raises(DeadlineExceeded):
        drive(mode, flow_for(routes, clock, deadline=4.3, policy=policy), clock, script)
    assert script.log == [("a", 0.0)]
    assert clock.sleeps == []


def test_the_floor_is_a_tenth_of_a_short_call(mode: str) -> None:
    """With a 1 s call the floor is 0.1 s, so a 0.85 s backoff is still waited out."""
    clock = FakeClock()
    routes = make_routes("a")
    policy = FlowPolicy(retry=RetryPolicy(max_retries=1, base=0.85, jitter="none"))
    script = Script(clock, {"a": [overloaded(), "ok"]})
    value, _ = drive(mode, flow_for(routes, clock, deadline=1.0, policy=policy), clock, script)
    assert value == "a:ok"
    assert clock.sleeps == [0.85]
