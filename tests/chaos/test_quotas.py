"""Each kind of quota, per window, with each family's own headers and 429 bodies.

The state tests are pure; the wire tests drive the official SDKs over HTTP against a
server on a fake clock, so windows move only when the test says.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from google.genai import errors

from resilient_llm import FakeClock
from resilient_llm.policies.hints import retry_delay_from_gemini_error
from resilient_llm.testing.chaos import ChaosServer, Plan
from resilient_llm.testing.chaos.state import Route

from .sdk import PROMPT, anthropic_client, gemini_client

MODEL = "gemini-2.5-flash"


def test_input_and_output_count_apart_and_output_settles_to_what_was_made() -> None:
    route = Route(Plan(input_tpm=100, output_tpm=300, latency=1.0), epoch=0.0)
    assert route.decide(0.0, 0, input=60, output=(200, 10)).label == "ok"
    refused = route.decide(0.5, 0, input=10, output=(200, 10))
    assert refused.label == "quota"
    assert refused.violation is not None
    assert refused.violation.what == "output_tokens"
    assert "output tokens per minute (OTPM)" in refused.message
    # Once the first reply is made it counts 10 output tokens, not its max_tokens.
    assert route.decide(1.0, 0, input=10, output=(200, 10)).label == "ok"
    over = route.decide(2.0, 0, input=40, output=(10, 10))
    assert over.violation is not None
    assert over.violation.what == "input_tokens"
    view = route.view(2.0)
    assert view is not None
    assert (view.limit_input_tokens, view.remaining_input_tokens) == (100, 30)


def test_a_day_window_of_its_own_length_names_its_quota() -> None:
    route = Route(Plan(rpm=10, rpd=2, day=30.0), epoch=0.0)
    assert [route.decide(t, 1).label for t in (0.0, 1.0, 2.0)] == ["ok", "ok", "quota"]
    refused = route.decide(2.0, 1)
    assert refused.violation is not None
    assert refused.violation.gemini_id == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    assert refused.fault.retry_after == pytest.approx(28.0)
    assert route.decide(30.0, 1).label == "ok"
    with pytest.raises(Exception, match=r"Plan\.day"):
        Plan(day=0)


@pytest.fixture
def clocked_server() -> Iterator[tuple[ChaosServer, FakeClock]]:
    clock = FakeClock(1000.0)
    with ChaosServer(clock=clock.now) as server:
        yield server, clock


def test_gemini_daily_429_carries_quota_failure_and_retry_info(
    clocked_server: tuple[ChaosServer, FakeClock],
) -> None:
    server, _ = clocked_server
    server.set_plan("gemini", Plan(rpd=1, day=600.0))
    client = gemini_client(server)
    client.models.generate_content(model=MODEL, contents=PROMPT)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    assert caught.value.code == 429
    details = caught.value.details["error"]["details"]
    failure = next(d for d in details if d["@type"].endswith("QuotaFailure"))
    assert failure["violations"][0]["quotaId"] == (
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    )
    assert retry_delay_from_gemini_error(caught.value.details) == pytest.approx(600.0)


def test_anthropic_headers_state_input_and_output_limits(
    clocked_server: tuple[ChaosServer, FakeClock],
) -> None:
    server, _ = clocked_server
    server.set_plan("anthropic", Plan(rpm=50, input_tpm=1000, output_tpm=400))
    with anthropic_client(server) as client:
        raw = client.messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": PROMPT}],
        )
        headers = raw.headers
        assert headers["anthropic-ratelimit-requests-limit"] == "50"
        assert headers["anthropic-ratelimit-input-tokens-limit"] == "1000"
        assert headers["anthropic-ratelimit-output-tokens-limit"] == "400"
        # max_tokens is held while the reply is made (no latency here: already settled).
        assert int(headers["anthropic-ratelimit-output-tokens-remaining"]) > 300
        for _ in range(3):
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=100,
                messages=[{"role": "user", "content": PROMPT}],
            )
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=400,
                messages=[{"role": "user", "content": PROMPT}],
            )
    assert "output tokens per minute" in str(caught.value)
    assert caught.value.response.headers["anthropic-ratelimit-output-tokens-limit"] == "400"
    assert caught.value.response.headers.get("retry-after") is not None


def test_plans_take_every_quota_from_json() -> None:
    plan = Plan.from_dict({"input_tpm": 5, "output_tpm": 6, "rpd": 7, "tpd": 8, "day": 9})
    assert (plan.input_tpm, plan.output_tpm, plan.rpd, plan.tpd, plan.day) == (5, 6, 7, 8, 9.0)
    with pytest.raises(Exception, match=r"Plan\.rpd"):
        Plan(rpd=0)
