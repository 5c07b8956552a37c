"""The retry budget: retries per route bounded by a share of its recent first attempts."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from resilient_llm.clock import FakeClock
from resilient_llm.errors import ConfigurationError, ProviderUnavailable
from resilient_llm.events import Event, RouteSkipped
from resilient_llm.flow.call import call_flow
from resilient_llm.flow.effects import FlowPolicy
from resilient_llm.policies.backoff import RetryPolicy
from resilient_llm.policies.breaker import BreakerPolicy
from resilient_llm.policies.budget import RetryBudget, RetryLedger
from resilient_llm.run.drivers import run_sync

from .scripted import Script, make_routes


def test_minimum_retries_are_always_allowed_then_the_ratio_rules() -> None:
    ledger = RetryLedger(RetryBudget(ratio=0.5, minimum=2, window=10))
    assert [ledger.allow_retry(0.0) for _ in range(3)] == [True, True, False]
    for _ in range(8):
        ledger.note_request(1.0)
    # 8 requests at 50 % allow 4 retries in all; 2 are taken.
    assert [ledger.allow_retry(1.0) for _ in range(3)] == [True, True, False]
    assert ledger.counts(1.0) == (8, 4)


def test_the_window_forgets_old_requests_and_retries() -> None:
    ledger = RetryLedger(RetryBudget(ratio=0.0, minimum=1, window=timedelta(seconds=5)))
    assert ledger.allow_retry(0.0)
    assert not ledger.allow_retry(4.9)
    # A retry at t counts until exactly t + window.
    assert ledger.allow_retry(5.0)
    assert ledger.counts(5.0) == (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ratio": -0.1}, "RetryBudget.ratio"),
        ({"ratio": float("nan")}, "RetryBudget.ratio"),
        ({"minimum": -1}, "RetryBudget.minimum"),
        ({"minimum": 1.5}, "RetryBudget.minimum"),
        ({"window": 0}, "RetryBudget.window"),
        ({"window": True}, "RetryBudget.window"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RetryBudget(**kwargs)  # type: ignore[arg-type]


def _outage_run(budget: RetryBudget | None, calls: int) -> tuple[int, list[Event]]:
    """``calls`` calls in a row while route "a" is down; returns attempts "a" received."""
    clock = FakeClock()
    routes = make_routes("a", "b", breaker=BreakerPolicy(failure_threshold=10_000))
    ledgers = [RetryLedger(budget) for _ in routes] if budget else []
    policy = FlowPolicy(retry=RetryPolicy(max_retries=2, base=0.01, jitter="none"))
    down = ProviderUnavailable("overloaded", provider="a", status_code=529)
    script = Script(clock, {"a": [down] * 10_000, "b": []})
    events: list[Event] = []
    for _ in range(calls):
        flow = call_flow(
            routes,
            [10, 10],
            policy,
            now=clock.now(),
            deadline=clock.now() + 30,
            rng=random.Random(0),
            emit=events.append,
            budgets=ledgers,
        )
        value, _ = run_sync(flow, clock, script.send)
        assert value == "b:ok"
        clock.advance(0.05)
    return sum(1 for name, _ in script.log if name == "a"), events


def test_an_outage_costs_the_sick_route_a_bounded_share_of_retries() -> None:
    unbounded, _ = _outage_run(None, 100)
    bounded, events = _outage_run(RetryBudget(ratio=0.2, minimum=3, window=10), 100)
    assert unbounded == 300  # every call: 1 attempt + 2 retries
    # 100 first attempts allow 20 retries in the window (the first calls ran on the minimum).
    assert bounded == 100 + 20
    denied = [e for e in events if isinstance(e, RouteSkipped) and "budget" in e.reason]
    # Each call denied a retry fails over at once: all but the first, which had the minimum.
    assert len(denied) == 99
