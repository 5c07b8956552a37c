"""Quotas as providers define them, through the engine, the real SDKs and the chaos server.

Server and engine share one fake clock: a limiter's wait moves both at once, so whole
minutes and shortened days pass in an instant and every figure is a count, not a time.
The chaos quotas equal the configured ones: same numbers, same windows, no margin.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilient_llm import (
    FakeClock,
    Provider,
    RateLimit,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.testing.chaos import ChaosServer, Plan

QUESTION = "What is the capital of France?"
MAX_TOKENS = 8  # the chaos answer is 8 tokens: the reply uses its whole allowance
DAY = 300.0  # the shortened day, on both sides


@pytest.fixture
def clocked() -> Iterator[tuple[ChaosServer, FakeClock]]:
    clock = FakeClock(1000.0)
    with ChaosServer(clock=clock.now) as server:
        yield server, clock


def _engine(clock: FakeClock, *providers: Provider) -> ResilientLLM:
    return ResilientLLM(
        list(providers),
        retry=RetryPolicy(max_retries=0),
        timeout=120.0,
        clock=clock,
        jitter_seed=0,
    )


def _provider(server: ChaosServer, kind: str, name: str, limit: RateLimit | None) -> Provider:
    return Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=server.base_url(name),
        api_key="test-key",
        name=name,
        rate_limit=limit,
    )


def test_anthropic_style_output_tokens_bind_with_no_429_and_the_quota_used(
    clocked: tuple[ChaosServer, FakeClock],
) -> None:
    server, clock = clocked
    server.set_plan("anthropic-q", Plan(rpm=50, input_tpm=2_000, output_tpm=80))
    limit = RateLimit(
        requests_per_minute=50, input_tokens_per_minute=2_000, output_tokens_per_minute=80
    )
    llm = _engine(clock, _provider(server, "anthropic", "anthropic-q", limit))
    start = clock.now()
    for _ in range(45):
        reply = llm.chat(QUESTION, max_tokens=MAX_TOKENS)
        assert reply.usage is not None
        assert reply.usage.output_tokens == MAX_TOKENS
    elapsed = clock.now() - start
    llm.close()
    log = [r for r in server.log if r.provider == "anthropic-q"]
    assert sum(r.status == 429 for r in log) == 0
    served = sum(r.status == 200 for r in log)
    assert served == 45
    # Output binds: 10 replies of 8 tokens a minute. The windows begun cover the calls.
    windows = elapsed / 60.0 + 1
    used = served * MAX_TOKENS / (80 * windows)
    assert used >= 0.9, (served, elapsed)
    snapshot = llm.snapshot().routes[0].limiter
    assert [w.name for w in snapshot.windows] == ["requests+input_tokens+output_tokens/1min"]


def test_gemini_style_day_quota_holds_the_route_and_it_is_skipped_not_queued(
    clocked: tuple[ChaosServer, FakeClock],
) -> None:
    server, clock = clocked
    server.set_plan("gemini-q", Plan(rpm=10, rpd=25, day=DAY))
    limit = RateLimit(requests_per_minute=10) | RateLimit.window(DAY, requests=25)
    gemini = _provider(server, "gemini", "gemini-q", limit)
    spare = _provider(server, "openai", "openai-spare", None)
    llm = _engine(clock, gemini, spare)
    start = clock.now()
    answered_by: list[str] = []
    held: list[tuple[str | None, float]] = []
    while clock.now() - start < 3 * DAY:
        reply = llm.chat(QUESTION, max_tokens=MAX_TOKENS)
        answered_by.append(reply.provider)
        if reply.provider == "openai-spare":
            snap = llm.snapshot().routes[0].limiter
            held.append((snap.held_by, snap.held_for))
            clock.advance(5.0)  # the caller comes back later; nothing waited for the day
    elapsed = clock.now() - start
    llm.close()
    log = [r for r in server.log if r.provider == "gemini-q"]
    assert sum(r.status == 429 for r in log) == 0
    served = sum(r.status == 200 for r in log)
    days = elapsed / DAY
    assert served >= 0.9 * 25 * days, (served, days)
    # The spare answered while a window held the route: the minute's (a wait longer than
    # the spill-over) or the day's, which the snapshot names with its end.
    daily = [seconds for name, seconds in held if name == "requests/5min"]
    assert daily, held
    assert {name for name, _ in held} <= {"requests/1min", "requests/5min"}
    assert all(0 < seconds <= DAY * 1.01 for seconds in daily)


def test_a_day_out_of_quota_with_no_other_route_fails_at_once_without_a_request(
    clocked: tuple[ChaosServer, FakeClock],
) -> None:
    server, clock = clocked
    server.set_plan("gemini-only", Plan(rpd=2, day=DAY))
    gemini = _provider(server, "gemini", "gemini-only", RateLimit.window(DAY, requests=2))
    llm = _engine(clock, gemini)
    llm.chat(QUESTION)
    llm.chat(QUESTION)
    before = clock.now()
    with pytest.raises(ResilientLLMError):
        llm.chat(QUESTION)
    assert clock.now() == before, "nothing was waited for"
    llm.close()
    assert [r.status for r in server.log if r.provider == "gemini-only"] == [200, 200]


def test_a_daily_quota_unknown_to_the_client_is_learnt_from_its_first_429(
    clocked: tuple[ChaosServer, FakeClock],
) -> None:
    server, clock = clocked
    server.set_plan("gemini-unknown", Plan(rpd=5))  # a real day: the fake clock runs it
    gemini = _provider(server, "gemini", "gemini-unknown", None)
    spare = _provider(server, "openai", "openai-spare2", None)
    llm = _engine(clock, gemini, spare)
    for _ in range(80):  # three days and more, a call every hour
        llm.chat(QUESTION)
        clock.advance(3600.0)
    held = llm.snapshot().routes[0].limiter
    llm.close()
    statuses = [r.status for r in server.log if r.provider == "gemini-unknown"]
    # One 429 teaches the day's window (QuotaFailure names it, with its limit); no other.
    assert statuses.count(429) == 1
    assert statuses.count(200) >= 3 * 5
    assert any(w.window.seconds == 86400.0 and w.window.requests == 5 for w in held.windows)


def test_anthropic_input_and_output_limits_unknown_to_the_client_are_learnt_from_headers(
    clocked: tuple[ChaosServer, FakeClock],
) -> None:
    server, clock = clocked
    server.set_plan("anthropic-unknown", Plan(rpm=50, input_tpm=2_000, output_tpm=80))
    llm = _engine(clock, _provider(server, "anthropic", "anthropic-unknown", None))
    for _ in range(30):
        llm.chat(QUESTION, max_tokens=MAX_TOKENS)
    limit = llm.snapshot().routes[0].limiter.windows[0].window
    llm.close()
    statuses = [r.status for r in server.log if r.provider == "anthropic-unknown"]
    assert statuses.count(429) <= 1
    assert statuses.count(200) == 30
    assert (limit.requests, limit.input_tokens, limit.output_tokens) == (50, 2_000, 80)


def test_an_openai_daily_quota_unknown_to_the_client_costs_one_429(
    clocked: tuple[ChaosServer, FakeClock],
) -> None:
    server, clock = clocked
    server.set_plan("openai-unknown", Plan(rpd=4))
    primary = _provider(server, "openai", "openai-unknown", None)
    spare = _provider(server, "anthropic", "anthropic-spare3", None)
    llm = ResilientLLM(
        [primary, spare],
        retry=RetryPolicy(max_retries=0),
        timeout=120.0,
        clock=clock,
    )
    for _ in range(80):
        llm.chat(QUESTION)
        clock.advance(3600.0)
    windows = llm.snapshot().routes[0].limiter.windows
    llm.close()
    # The 429's message ("requests per day (RPD): Limit 4") named the window.
    assert any(w.window.seconds == 86400.0 and w.window.requests == 4 for w in windows)
    statuses = [r.status for r in server.log if r.provider == "openai-unknown"]
    assert statuses.count(429) == 1
    assert statuses.count(200) >= 3 * 4
