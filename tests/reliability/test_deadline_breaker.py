"""Our own deadline never opens the breaker of a healthy provider.

Calls queued behind the route's own limiter until their deadline nearly runs out used to
be sent with a fraction of a second left, time out, and count as the provider's failures;
a lone later call then met ``CircuitOpen``. Here the limiter's waits run on a fake clock
(the queue is deterministic), the attempts go over HTTP to a chaos provider that hangs,
and every assertion is on counts and states, never on durations.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401
from resilient_llm import (
    BreakerPolicy,
    CircuitState,
    DeadlineExceeded,
    FakeClock,
    Provider,
    RateLimit,
    ResilientLLM,
    RetryPolicy,
)
from resilient_llm.events import AttemptFinished, Event
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

QUESTION = "What is the capital of France?"
QUEUED = 4  # twice the breaker's threshold
TIME_LEFT = 0.3  # what a queued call has left when its limiter turn comes
_TAGS = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _engine(
    server: ChaosServer, kind: str, floor: float, events: list[Event]
) -> tuple[ResilientLLM, str]:
    name = f"{kind}-d{next(_TAGS)}"
    server.set_plan(name, Plan())
    provider = Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=server.base_url(name),
        api_key="test-key",
        name=name,
        rate_limit=RateLimit(requests_per_minute=1),
    )
    llm = ResilientLLM(
        [provider],
        retry=RetryPolicy(max_retries=2, base=0.01, min_attempt_time=floor),
        breaker=BreakerPolicy(failure_threshold=2, cooldown=30),
        # Each call queues a whole minute for its limiter turn, then has TIME_LEFT.
        timeout=60.0 + TIME_LEFT,
        retry_budget=None,
        clock=FakeClock(),
        on_event=events.append,
    )
    return llm, name


def _call(llm: ResilientLLM, mode: str) -> object:
    if mode == "chat":
        return llm.chat(QUESTION)
    return asyncio.run(llm.achat(QUESTION))


def _outcomes(events: list[Event]) -> list[str]:
    return [e.outcome for e in events if isinstance(e, AttemptFinished)]


@pytest.mark.parametrize("mode", ["chat", "achat"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_attempts_cut_by_the_deadline_never_open_the_breaker(
    server: ChaosServer, kind: str, mode: str
) -> None:
    """With no floor the queued calls are sent with 0.3 s left and cut by the deadline:
    they end ``DeadlineExceeded`` and the breaker stays closed for the next caller."""
    events: list[Event] = []
    llm, name = _engine(server, kind, 0.0, events)
    with llm:
        _call(llm, mode)  # takes the minute's one request
        # The provider is healthy but slower than the time left: every queued call hangs.
        server.script(name, *[Fault("hang", delay=30.0)] * QUEUED)
        for _ in range(QUEUED):
            with pytest.raises(DeadlineExceeded):
                _call(llm, mode)
        assert _outcomes(events) == ["ok"] + ["DeadlineExceeded"] * QUEUED
        assert llm.routes[0].breaker.state(llm.clock.now()) is CircuitState.CLOSED
        # A lone later call is sent and answered, not refused as CircuitOpen.
        llm.clock.advance(60.0)  # type: ignore[attr-defined]
        assert _call(llm, mode).content  # type: ignore[attr-defined]
        assert _outcomes(events)[-1] == "ok"


@pytest.mark.parametrize("mode", ["chat", "achat"])
def test_queued_calls_with_too_little_time_left_are_not_sent(
    server: ChaosServer, mode: str
) -> None:
    """With the default floor the queued calls never reach the provider at all."""
    events: list[Event] = []
    llm, name = _engine(server, "openai", RetryPolicy().min_attempt_time, events)
    with llm:
        _call(llm, mode)
        for _ in range(QUEUED):
            with pytest.raises(DeadlineExceeded, match="outlasts the deadline"):
                _call(llm, mode)
        assert _outcomes(events) == ["ok"]
        assert [r.provider for r in server.log].count(name) == 1
        assert llm.routes[0].breaker.state(llm.clock.now()) is CircuitState.CLOSED
        llm.clock.advance(60.0)  # type: ignore[attr-defined]
        assert _call(llm, mode).content  # type: ignore[attr-defined]
