"""Capability-aware routing and the retry budget, through the real SDKs on the chaos server."""

from __future__ import annotations

import asyncio

import pytest

from resilient_llm import (
    BadRequest,
    BreakerPolicy,
    Capabilities,
    DeadlineExceeded,
    FakeClock,
    ResilientLLM,
    RetryBudget,
    RetryPolicy,
    Tool,
)
from resilient_llm.events import RouteSkipped
from resilient_llm.run.bulkhead import BulkheadSnapshot
from resilient_llm.testing.chaos import Fault, Plan

from .conftest import KINDS, QUESTION, Bench, cutting

WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.mark.parametrize("kind", KINDS)
def test_a_tool_call_skips_a_model_without_tools_without_calling_it(
    bench: Bench, kind: str
) -> None:
    plain = bench.route(kind, "plain", capabilities=Capabilities(tools=False))
    tooled = bench.route(kind, "tooled")
    llm = bench.engine(plain, tooled)

    reply = llm.chat("What is the weather in Paris?", tools=[WEATHER])

    assert [c.name for c in reply.tool_calls] == ["get_weather"]
    assert reply.provider == tooled.name
    assert bench.calls(1) == [(tooled.name, 200, "ok")]
    assert [(e.route, e.reason) for e in bench.of(RouteSkipped)] == [
        (plain.name, "cannot take the request: the model takes no tools")
    ]
    # A request without tools still prefers the first route.
    assert llm.chat(QUESTION).provider == plain.name


def test_a_prompt_longer_than_every_window_is_refused_without_a_call(bench: Bench) -> None:
    small = Capabilities(context_window=50)
    llm = bench.engine(
        bench.route("openai", "a", capabilities=small),
        bench.route("anthropic", "b", capabilities=small),
    )
    with pytest.raises(BadRequest, match="no route can take this request") as info:
        llm.chat("word " * 400)
    assert "50-token window" in str(info.value)
    assert bench.calls() == []


def test_a_long_prompt_goes_to_the_route_whose_window_fits(bench: Bench) -> None:
    small = bench.route("openai", "small", capabilities=Capabilities(context_window=50))
    large = bench.route("gemini", "large", capabilities=Capabilities(context_window=100_000))
    llm = bench.engine(small, large)
    reply = llm.chat("word " * 400 + QUESTION)
    assert reply.provider == large.name
    assert bench.calls(1) == [(large.name, 200, "ok")]


def _primary_attempts_during_outage(bench: Bench, tag: str, budget: RetryBudget | None) -> int:
    primary = bench.route("openai", f"down-{tag}")
    fallback = bench.route("anthropic", f"up-{tag}")
    bench.script(primary, *(["server_error"] * 200))
    # A breaker that never opens, so the budget alone bounds the retries.
    llm = ResilientLLM(
        [primary, fallback],
        retry=RetryPolicy(max_retries=2, base=0.001, cap=0.002),
        breaker=BreakerPolicy(failure_threshold=10_000),
        retry_budget=budget,
        timeout=5.0,
    )
    bench.engines.append(llm)
    for _ in range(30):
        assert llm.chat(QUESTION).provider == fallback.name
    return sum(1 for name, _, _ in bench.calls(30) if name == primary.name)


def test_the_retry_budget_bounds_the_load_on_a_provider_that_is_down(bench: Bench) -> None:
    unbounded = _primary_attempts_during_outage(bench, "none", None)
    bounded = _primary_attempts_during_outage(
        bench, "budget", RetryBudget(ratio=0.2, minimum=3, window=60)
    )
    assert unbounded == 30 * 3  # 3x the load: each call's attempt and its 2 retries
    # 30 first attempts earn 6 retries (20 %); the minimum of 3 comes first.
    assert bounded == 30 + 6


def _arrivals(bench: Bench, name: str, count: int) -> list[float]:
    bench.calls(count)
    return sorted(r.at for r in bench.server.log if r.provider == name)


@pytest.mark.parametrize("limit", [None, 2])
def test_a_bulkhead_keeps_calls_in_flight_at_its_limit(bench: Bench, limit: int | None) -> None:
    slow = bench.route("openai", f"slow{limit}", max_concurrency=limit)
    bench.plan(slow, Plan(latency=0.3))
    llm = bench.engine(slow, timeout=10.0)

    async def burst() -> list[str]:
        replies = await asyncio.gather(*(llm.achat(QUESTION) for _ in range(6)))
        return [r.provider for r in replies]

    assert bench.runner.run(burst()) == [slow.name] * 6
    arrivals = _arrivals(bench, slow.name, 6)
    # A third request arrives only once one of the two before it was answered.
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[2:], strict=False)]
    if limit is None:
        assert max(gaps) < 0.2, "without a bulkhead all six go at once"
    else:
        assert min(gaps) >= 0.25
        assert llm.snapshot()[slow.name].bulkhead == BulkheadSnapshot(2, 0, 0)


def test_a_full_bulkhead_ends_the_wait_at_the_deadline(bench: Bench) -> None:
    clock = FakeClock()
    slow = bench.route("anthropic", "one", max_concurrency=1)
    bench.script(slow, Fault("ok", delay=60))  # held at the server until released
    llm = bench.engine(slow, timeout=5.0, clock=clock)

    async def burst() -> list[object]:
        # Tasks start in order: the first takes the one slot, the second queues for it.
        first = asyncio.create_task(llm.achat(QUESTION))
        [second] = await asyncio.gather(llm.achat(QUESTION, timeout=0.5), return_exceptions=True)
        bench.server.release(slow.name)
        return [await first, second]

    def holding_and_queued() -> int:
        bulkhead = llm.snapshot()[slow.name].bulkhead
        queued = bulkhead is not None and bulkhead.queued == 1
        return int(queued and any(r.provider == slow.name for r in bench.server.log))

    with cutting(clock, holding_and_queued) as cuts:
        first, second = bench.runner.run(burst())
    # The wait ends where an attempt would still have its minimum time: a tenth of this
    # 0.5 s call's timeout before its deadline (RetryPolicy.min_attempt_time's cap).
    assert cuts == [pytest.approx(0.45)], "the queued call gave up in time, on fake time"
    assert getattr(first, "provider", None) == slow.name
    assert isinstance(second, DeadlineExceeded)
    assert "no free slot" in str(second)
    assert len(bench.calls(1)) == 1
    assert llm.snapshot()[slow.name].bulkhead == BulkheadSnapshot(1, 0, 0)
