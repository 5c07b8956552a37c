"""Several windows at once: requests, input, output and total tokens, per minute and per day.

Every call passes ``now``; nothing reads a clock.
"""

from __future__ import annotations

import pickle

import pytest

from resilient_llm.errors import ConfigurationError, RequestTooLarge
from resilient_llm.messages import Usage
from resilient_llm.policies.limiter import (
    DAY,
    DEFAULT_IN_FLIGHT,
    MAX_IN_FLIGHT,
    SLICES,
    Limiter,
    RateLimit,
    Window,
    settled_tokens,
)
from resilient_llm.policies.quota import Tokens


def ask(total: int, output: int) -> Tokens:
    return Tokens(total, input=total - output, output=output)


def test_the_named_windows_and_the_general_form_combine_with_or() -> None:
    limit = RateLimit(
        requests_per_minute=50,
        input_tokens_per_minute=30_000,
        output_tokens_per_minute=8_000,
        requests_per_day=1_000,
    ) | RateLimit.window(3600, tokens=500_000)
    assert limit.windows == (
        Window(60.0, 50, None, 30_000, 8_000),
        Window(DAY, 1_000),
        Window(3600.0, tokens=500_000),
    )
    assert (limit.window, limit.requests_per_minute) == (60.0, 50), "read as before"
    assert limit.several
    assert not RateLimit(requests_per_minute=5, tokens_per_minute=9, window=30).several
    alone = RateLimit.window(10, requests=3)
    assert (alone.window, alone.requests_per_minute) == (10.0, 3)
    assert "RateLimit.window(3600.0, tokens=500000)" in repr(limit)


@pytest.mark.parametrize(
    "build",
    [
        lambda: RateLimit(requests_per_day=0),
        lambda: RateLimit(output_tokens_per_minute=-1),
        lambda: RateLimit.window(0, requests=1),
        lambda: RateLimit.window(10, tokens=True),
        lambda: RateLimit(more=["nope"]),  # type: ignore[list-item]
    ],
)
def test_invalid_windows_are_refused(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


def test_every_window_must_fit_and_all_admit_at_once() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=10) | RateLimit.window(10, requests=2))
    assert [limiter.reserve(1, 0.0).at for _ in range(3)] == [0.0, 0.0, 10.0]
    # The third holds the ten-second window; the minute window counted it too.
    assert limiter.snapshot(0.0).windows[0].requests_used == 3


def test_output_is_charged_as_its_allowance_and_binds_on_its_own() -> None:
    limiter = Limiter(RateLimit(input_tokens_per_minute=1_000, output_tokens_per_minute=300))
    first = limiter.reserve(ask(150, 100), 0.0)
    limiter.reserve(ask(150, 100), 1.0)
    limiter.reserve(ask(150, 100), 2.0)
    assert limiter.reserve(ask(150, 100), 3.0).at == 60.0, "output binds; input is far"
    # The first reply produced 20 output tokens: 80 go back to the output window.
    first.settle(Tokens(70, input=50, output=20))
    # 320 output counted with the queued one: the entry of 1.0 must leave too, at 61.
    assert limiter.peek(ask(150, 100), 3.0) == 58.0
    assert limiter.snapshot(3.0).windows[0].output_tokens_used == 320


def test_cache_reads_are_left_out_of_input_where_the_family_says_so() -> None:
    limiter = Limiter(RateLimit(input_tokens_per_minute=1_000))
    reservation = limiter.reserve(ask(900, 0), 0.0)
    usage = Usage(input_tokens=900, output_tokens=0, cached_input_tokens=800).total_tokens
    reservation.settle(usage, cached_counts=False)
    assert limiter.snapshot(0.0).windows[0].input_tokens_used == 100
    reservation.settle(usage)
    assert limiter.snapshot(0.0).windows[0].input_tokens_used == 900


def test_a_request_larger_than_any_window_is_refused_at_once() -> None:
    limiter = Limiter(RateLimit(output_tokens_per_minute=100))
    with pytest.raises(RequestTooLarge, match="output tokens"):
        limiter.reserve(ask(500, 101), 0.0)
    assert limiter.too_large(ask(500, 100)) is None


def test_a_day_keeps_one_entry_per_slice_and_never_admits_past_its_limit() -> None:
    limiter = Limiter(RateLimit(requests_per_day=5_000))
    step = DAY / 10_000
    granted = []
    longest = 0
    for i in range(30_000):  # three days of callers who go elsewhere rather than queue
        if limiter.peek(1, i * step) == 0:
            granted.append(limiter.reserve(1, i * step).at)
        longest = max(longest, len(limiter._lanes[1].entries))
    assert longest <= SLICES + 1
    # No day-long window holds more than the limit, counting each admission from its time.
    for i, start in enumerate(granted):
        assert sum(1 for a in granted[i : i + 5_001] if a < start + DAY) <= 5_000
    # The day is used: at most a slice of it left idle between one day's quota and the next.
    assert granted[4_999] == 4_999 * step
    assert granted[5_000] <= granted[0] + DAY * (1 + 1 / SLICES)
    assert len(granted) >= 3 * 5_000 * 0.98


def test_a_daily_hold_shows_in_the_snapshot_with_its_end() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=100, requests_per_day=2))
    limiter.reserve(1, 0.0)
    limiter.reserve(1, 10.0)
    snap = limiter.snapshot(20.0)
    assert snap.held_by == "requests/1d"
    assert DAY - 20.0 <= snap.held_for <= DAY * (1 + 1 / SLICES)
    assert limiter.snapshot(1.0).windows[1].requests_used == 2, "the one admitted ahead too"


def test_in_flight_time_is_counted_when_asked_and_learnt_from_answers() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=1))
    limiter.count_in_flight()
    assert limiter.in_flight == DEFAULT_IN_FLIGHT
    first = limiter.reserve(1, 0.0)
    assert limiter.peek(1, 0.0) == 60.0 + DEFAULT_IN_FLIGHT
    first.answered(0.05)
    assert limiter.in_flight == 0.05
    assert limiter.peek(1, 0.0) == 60.05
    first.answered(100.0)
    assert limiter.in_flight == MAX_IN_FLIGHT


def test_estimates_and_usage_keep_their_split_through_settlement_and_pickles() -> None:
    usage = Usage(input_tokens=30, output_tokens=10, cached_input_tokens=5).total_tokens
    assert (int(usage), usage.input, usage.output, usage.cached) == (40, 30, 10, 5)
    assert (f"{usage}", repr(usage)) == ("40", "40")
    again = pickle.loads(pickle.dumps(usage))
    assert (again.input, again.output) == (30, 10)
    charged = settled_tokens(usage, ask(100, 50), None, below_estimate=False)
    assert isinstance(charged, Tokens)
    assert (int(charged), charged.output) == (100, 50), "the whole allowance, as OpenAI"
    bounded = settled_tokens(Tokens(10_000, input=9_000, output=1_000), ask(100, 50), 200)
    assert isinstance(bounded, Tokens)
    assert (int(bounded), bounded.output + bounded.input) == (200, 200)


def test_a_provider_named_window_is_adopted_beside_the_configured_ones() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=10))
    limiter.adopt(Window(DAY, requests=1))
    limiter.reserve(1, 0.0)
    assert limiter.peek(1, 0.0) >= DAY
    limiter.adopt(Window(60.0, requests=20))  # looser than configured: the tighter stays
    assert limiter.limit.requests_per_minute == 10
    assert Window(DAY, requests=1) in limiter.limit.windows


def test_a_429_naming_a_window_counts_it_full_but_the_slot_its_wait_frees() -> None:
    limiter = Limiter(RateLimit())
    limiter.exhausted("requests", DAY, 5, 100.0, 50.0)
    assert limiter.peek(1, 100.0) == 50.0, "the slot the provider's wait frees"
    limiter.reserve(1, 150.0)
    assert limiter.peek(1, 150.0) == DAY - 50.0, "the rest: a window after the 429"
    limiter.exhausted("requests", 60.0, None, 100.0, 5.0)  # no limit said: nothing learnt
    assert [w.seconds for w in limiter.limit.windows] == [60.0, DAY]


def test_gemini_quota_failures_name_the_kind_span_and_limit() -> None:
    from resilient_llm.policies.hints import quotas_from_gemini_error

    body = {
        "error": {
            "code": 429,
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                            "quotaValue": "250",
                        },
                        {"quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier"},
                        {"quotaId": "SomethingElse"},
                        "junk",
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"},
            ],
        }
    }
    assert quotas_from_gemini_error(body) == (
        ("requests", DAY, 250),
        ("input_tokens", 60.0, None),
    )
    assert quotas_from_gemini_error("not json") == ()
    assert quotas_from_gemini_error({"error": {"details": 5}}) == ()


def test_a_queued_request_waking_into_an_overdraft_queues_again() -> None:
    """Requests that took longer to answer than the allowance the queue was built with:
    the one due next gives its slot back rather than reach the provider too early."""
    from resilient_llm.clock import FakeClock
    from resilient_llm.flow.effects import FlowPolicy
    from resilient_llm.run.drivers import run_sync

    from .scripted import Script, flow_for, make_routes

    route = make_routes("a", limits={"a": RateLimit(requests_per_minute=1)})[0]
    route.limiter.count_in_flight()
    first = route.limiter.reserve(1, 0.0)
    queued = route.limiter.reserve(1, 0.0)
    assert queued.at == 60.0 + DEFAULT_IN_FLIGHT
    first.answered(1.5)  # it was in flight far longer than allowed for
    assert route.limiter.overdrawn(queued.at)
    assert route.acquire(queued.at) is None
    queued.cancel()
    assert not route.limiter.overdrawn(queued.at)
    # Through the flow: the call decides again and goes once the first has left.
    clock = FakeClock(queued.at)
    script = Script(clock, {})
    value, _ = run_sync(flow_for([route], clock, policy=FlowPolicy()), clock, script.send)
    assert value == "a:ok"
    assert script.log == [("a", 61.5)]


def test_a_limit_of_several_windows_survives_langchain_serialization() -> None:
    pytest.importorskip("langchain_core")
    from langchain_resilient._serde import _rate_limit
    from resilient_llm import Window as PublicWindow

    limit = RateLimit(requests_per_minute=5, output_tokens_per_minute=9) | RateLimit.window(
        DAY, requests=100
    )
    data = _rate_limit(limit)
    assert data["more"] == [
        {
            "seconds": DAY,
            "requests": 100,
            "tokens": None,
            "input_tokens": None,
            "output_tokens": None,
        }
    ]
    fields = dict(data)
    more = [PublicWindow(**w) for w in fields.pop("more")]
    assert RateLimit(**fields, more=more) == limit
    assert _rate_limit(RateLimit(requests_per_minute=5)) == {
        "requests_per_minute": 5,
        "tokens_per_minute": None,
        "window": 60.0,
    }


def test_openai_429_messages_name_the_quota_and_its_limit() -> None:
    from resilient_llm.policies.hints import quotas_from_openai_message

    text = (
        "Rate limit reached for gpt-4o-mini in organization org-x on requests per day (RPD): "
        "Limit 200, Used 200, Requested 1. Please try again in 7m12s."
    )
    assert quotas_from_openai_message(text) == (("requests", DAY, 200),)
    tokens = "Rate limit reached on tokens per min (TPM): Limit 30000, Used 29990, Requested 50."
    assert quotas_from_openai_message(tokens) == (("tokens", 60.0, 30000),)
    assert quotas_from_openai_message("Rate limit reached.") == ()
    assert quotas_from_openai_message(None) == ()
