"""Quotas as providers define them, on the Redis backend, through the engine, the real SDKs
and the chaos server, against quotas equal to the configured ones (no margin).

As ``tests/engine/test_quota_windows.py`` does for memory, server and engines share one fake
clock (``RedisState(time="client")``: Redis decides on the engine's time), so whole minutes
and shortened days pass in an instant and every figure is a count. Two engines, each with
its own ``RedisState`` (its own route objects, exchange and fallback: what a second process
has), share each quota and take turns; ``test_redis_processes.py`` has real processes.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from resilient_llm import FakeClock, Provider, RateLimit, ResilientLLM, RetryPolicy
from resilient_llm.state.redis import RedisState
from resilient_llm.testing.chaos import ChaosServer, Plan

from .conftest import RedisServer

QUESTION = "What is the capital of France?"
MAX_TOKENS = 8  # the chaos answer is 8 tokens: the reply uses its whole allowance
DAY = 7200.0  # the shortened day, on both sides: longer than an hour, so kept in slices
_TAGS = itertools.count()


@pytest.fixture
def clocked() -> Iterator[tuple[ChaosServer, FakeClock]]:
    clock = FakeClock(1000.0)
    with ChaosServer(clock=clock.now) as server:
        yield server, clock


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> RedisServer | None:
    """Redis, and memory beside it for the figures compared (one engine takes every turn:
    memory state is one process's)."""
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server


def _engines(
    server: RedisServer | None, clock: FakeClock, *providers: Provider
) -> tuple[list[ResilientLLM], list[RedisState]]:
    prefix = f"qw{os.getpid()}x{next(_TAGS)}"
    states = (
        [RedisState(server.url, prefix=prefix, time="client") for _ in range(2)] if server else []
    )
    engines = [
        ResilientLLM(
            list(providers),
            state=state,
            retry=RetryPolicy(max_retries=0),
            timeout=120.0,
            clock=clock,
            jitter_seed=0,
        )
        for state in (states or [None])
    ]
    return engines * (2 // len(engines)), states


def _close(engines: list[ResilientLLM], states: list[RedisState]) -> None:
    for llm in set(engines):
        llm.close()
    for state in states:
        state.close()


def _provider(server: ChaosServer, kind: str, name: str, limit: RateLimit | None) -> Provider:
    return Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=server.base_url(name),
        api_key="test-key",
        name=name,
        rate_limit=limit,
    )


def test_anthropic_style_output_binds_with_no_429_and_the_quota_used_by_two_engines(
    backend: RedisServer | None, clocked: tuple[ChaosServer, FakeClock]
) -> None:
    server, clock = clocked
    server.set_plan("anthropic-rq", Plan(rpm=50, input_tpm=2_000, output_tpm=80))
    limit = RateLimit(
        requests_per_minute=50, input_tokens_per_minute=2_000, output_tokens_per_minute=80
    )
    engines, states = _engines(
        backend, clock, _provider(server, "anthropic", "anthropic-rq", limit)
    )
    start = clock.now()
    for i in range(60):
        reply = engines[i % 2].chat(QUESTION, max_tokens=MAX_TOKENS)
        assert reply.usage is not None
        assert reply.usage.output_tokens == MAX_TOKENS
    elapsed = clock.now() - start
    snapshot = engines[1].snapshot().routes[0].limiter
    _close(engines, states)
    log = [r for r in server.log if r.provider == "anthropic-rq"]
    rejected = sum(r.status == 429 for r in log)
    kind = "memory" if backend is None else "redis"
    served = sum(r.status == 200 for r in log)
    # Output binds: 10 replies of 8 tokens a minute. The windows begun cover the calls.
    used = served * MAX_TOKENS / (80 * (elapsed / 60.0 + 1))
    print(f"\n{kind}, anthropic-style: {rejected} 429s, {used:.1%} of the output quota used")
    assert rejected == 0
    assert served == 60
    assert used >= 0.9, (served, elapsed)
    assert [w.name for w in snapshot.windows] == ["requests+input_tokens+output_tokens/1min"]
    assert snapshot.windows[0].output_tokens_used <= 80


def test_gemini_style_day_quota_holds_the_route_for_both_engines_and_it_is_skipped(
    backend: RedisServer | None, clocked: tuple[ChaosServer, FakeClock]
) -> None:
    server, clock = clocked
    server.set_plan("gemini-rq", Plan(rpm=10, rpd=25, day=DAY))
    limit = RateLimit(requests_per_minute=10) | RateLimit.window(DAY, requests=25)
    gemini = _provider(server, "gemini", "gemini-rq", limit)
    spare = _provider(server, "openai", "openai-spare-rq", None)
    engines, states = _engines(backend, clock, gemini, spare)
    start = clock.now()
    held: list[tuple[str | None, float]] = []
    turn = 0
    while clock.now() - start < 3 * DAY:
        llm = engines[turn % 2]
        turn += 1
        reply = llm.chat(QUESTION, max_tokens=MAX_TOKENS)
        if reply.provider == "openai-spare-rq":
            snap = llm.snapshot().routes[0].limiter
            held.append((snap.held_by, snap.held_for))
            clock.advance(60.0)  # the caller comes back later; nothing waited for the day
    elapsed = clock.now() - start
    _close(engines, states)
    log = [r for r in server.log if r.provider == "gemini-rq"]
    rejected = sum(r.status == 429 for r in log)
    kind = "memory" if backend is None else "redis"
    served = sum(r.status == 200 for r in log)
    used = served / (25 * elapsed / DAY)
    print(f"\n{kind}, gemini-style: {rejected} 429s, {used:.1%} of the daily quota used")
    assert rejected == 0
    assert used >= 0.9, (served, elapsed)
    daily = [seconds for name, seconds in held if name == "requests/120min"]
    assert daily, held
    assert {name for name, _ in held} <= {"requests/1min", "requests/120min"}
    assert all(0 < seconds <= DAY * 1.01 for seconds in daily)


def test_a_daily_429_learnt_by_one_engine_holds_the_route_for_the_other(
    backend: RedisServer | None, clocked: tuple[ChaosServer, FakeClock]
) -> None:
    """The quota is unknown to the client: the 429 one engine meets (QuotaFailure names
    the daily window and its limit) goes to Redis, and the other never meets one."""
    server, clock = clocked
    server.set_plan("gemini-rq-unknown", Plan(rpd=5))  # a real day: the fake clock runs it
    gemini = _provider(server, "gemini", "gemini-rq-unknown", None)
    spare = _provider(server, "openai", "openai-spare-rq2", None)
    engines, states = _engines(backend, clock, gemini, spare)
    first, second = engines
    while not any(r.status == 429 for r in server.log if r.provider == "gemini-rq-unknown"):
        first.chat(QUESTION)
        clock.advance(600.0)
    for _ in range(10):
        assert second.chat(QUESTION).provider == "openai-spare-rq2"
        clock.advance(600.0)
    snap = second.snapshot().routes[0].limiter
    for _ in range(3 * 24 * 4):  # three days, a call every 15 minutes, in turns
        first.chat(QUESTION)
        second.chat(QUESTION)
        clock.advance(900.0)
    _close(engines, states)
    statuses = [r.status for r in server.log if r.provider == "gemini-rq-unknown"]
    assert statuses.count(429) == 1
    assert statuses.count(200) >= 3 * 5
    assert snap.held_by == "requests/1d"
    assert any(w.window.seconds == 86400.0 and w.window.requests == 5 for w in snap.windows)
