"""Adaptive limits: a provider's rate-limit headers hold the route back before it 429s."""

from __future__ import annotations

import pytest

from resilient_llm import RateLimit, ResilientLLM, RetryPolicy, estimate_tokens
from resilient_llm.policies.adaptive import ProviderCap
from resilient_llm.policies.hints import RateLimitHints
from resilient_llm.testing.chaos import Plan

from .conftest import BREAKER, MODES, QUESTION, Bench


def _run(
    bench: Bench,
    tag: str,
    *,
    adaptive: bool,
    calls: int,
    kind: str = "openai",
    mode: str = "chat",
) -> tuple[int, int, ResilientLLM]:
    """``calls`` calls on a primary whose quota (5 a minute) the client was never told."""
    primary = bench.route(kind, f"quota-{tag}")
    bench.plan(primary, Plan(rpm=5))
    fallback = bench.route("anthropic", f"spare-{tag}")
    llm = ResilientLLM(
        [primary, fallback],
        retry=RetryPolicy(max_retries=1, base=0.01, cap=0.05),
        breaker=BREAKER,
        timeout=5.0,
        adaptive_limits=adaptive,
    )
    bench.engines.append(llm)
    for _ in range(calls):
        bench.run(llm, mode)
    log = [r for r in bench.server.log if r.provider == primary.name]
    return sum(r.status == 429 for r in log), sum(r.status == 200 for r in log), llm


@pytest.mark.parametrize("adaptive", [False, True])
def test_the_quota_the_headers_state_is_learnt_and_no_429_is_provoked(
    bench: Bench, adaptive: bool
) -> None:
    received, served, llm = _run(bench, str(adaptive), adaptive=adaptive, calls=12)
    assert served == 5, "the provider's quota is used in full either way"
    if adaptive:
        assert received == 0
        assert llm.snapshot().routes[0].limiter.requests_per_minute == 5
    else:
        # Without adaptation the sixth call finds out by a 429 (and pauses the route).
        assert received >= 1
        assert llm.snapshot().routes[0].limiter.requests_per_minute is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_streams_and_replies_alike_feed_the_quota_headers_to_the_route(
    bench: Bench, kind: str, mode: str
) -> None:
    # A stream's headers arrive with its first chunk; they count as much as a reply's.
    received, served, llm = _run(
        bench, f"{kind}-{mode}", adaptive=True, calls=8, kind=kind, mode=mode
    )
    assert (received, served) == (0, 5)
    route = llm.snapshot().routes[0]
    assert route.limiter.requests_per_minute == 5
    assert route.provider_quota is not None
    assert route.provider_quota.limit_requests == 5


def test_what_is_left_holds_requests_back_until_the_reset() -> None:
    cap = ProviderCap()
    cap.observe(RateLimitHints(remaining_requests=2, reset_requests=10.0), now=100.0)
    assert cap.not_before(1, 100.0) is None
    cap.consume(1, 100.0)
    cap.consume(1, 100.5)
    assert cap.not_before(1, 101.0) == 110.0, "none left: wait for the reset"
    assert cap.not_before(1, 110.0) is None, "after the reset the configured limits rule"


def test_tokens_left_hold_back_only_requests_that_do_not_fit() -> None:
    cap = ProviderCap()
    cap.observe(RateLimitHints(remaining_tokens=100, reset_tokens=5.0), now=0.0)
    assert cap.not_before(100, 0.0) is None
    assert cap.not_before(101, 0.0) == 5.0
    cap.consume(60, 0.0)
    assert cap.not_before(50, 1.0) == 5.0
    assert cap.not_before(40, 1.0) is None


def test_a_remaining_count_without_a_reset_is_no_reason_to_wait() -> None:
    cap = ProviderCap()
    cap.observe(RateLimitHints(remaining_requests=0), now=0.0)
    assert cap.not_before(1, 0.0) is None


def test_with_the_limit_known_the_quota_refills_gradually_until_the_reset() -> None:
    # 60 a minute, none left, full again in 60 s: one frees each second, not all at 60 s.
    cap = ProviderCap()
    hints = RateLimitHints(limit_requests=60, remaining_requests=0, reset_requests=60.0)
    cap.observe(hints, now=0.0)
    assert cap.not_before(1, 0.0) == 1.0
    assert cap.not_before(1, 1.0) is None
    cap.consume(1, 1.0)
    assert cap.not_before(1, 1.5) == 2.0
    assert cap.not_before(1, 60.0) is None, "replenished at the reset"


@pytest.mark.parametrize(("kind", "below"), [("openai", False), ("anthropic", True)])
def test_usage_settles_below_the_estimate_only_where_the_provider_does(
    bench: Bench, kind: str, below: bool
) -> None:
    # OpenAI charges prompt + max_tokens as the request arrives; Anthropic the output made.
    route = bench.route(kind, "settle", rate_limit=RateLimit(tokens_per_minute=100_000))
    llm = bench.engine(route)
    reply = llm.chat(QUESTION, max_tokens=500)
    assert reply.usage is not None
    estimate = estimate_tokens(llm.request(QUESTION, max_tokens=500), model=route.model)
    charged = llm.snapshot()[route.name].limiter.estimated_tokens
    assert charged == (reply.usage.total_tokens if below else estimate)
    assert reply.usage.total_tokens < estimate
