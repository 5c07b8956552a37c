"""The bound on what a reply's reported usage may charge a route (``usage_ceiling``,
``settled_tokens``): a decision, tested without I/O."""

from __future__ import annotations

import pytest

from resilient_llm.messages import ChatRequest, Message
from resilient_llm.policies.limiter import settled_tokens
from resilient_llm.policies.tokens import (
    DEFAULT_OUTPUT_RESERVE,
    UNKNOWN_OUTPUT_LIMIT,
    USAGE_INPUT_FACTOR,
    USAGE_INPUT_SLACK,
    usage_ceiling,
)

ASK = (Message("user", "What is the capital of France?"),)


def test_the_ceiling_is_the_prompt_with_margin_plus_max_tokens() -> None:
    request = ChatRequest(ASK, max_tokens=100)
    ceiling = usage_ceiling(request, 130)  # 30 prompt + 100 reserved
    assert ceiling == 30 * USAGE_INPUT_FACTOR + USAGE_INPUT_SLACK + 100


def test_the_prompt_never_counts_past_the_context_window() -> None:
    request = ChatRequest(ASK, max_tokens=100)
    assert usage_ceiling(request, 3_100, context_window=8_192) == 8_192 + 100


@pytest.mark.parametrize(
    ("max_output", "window", "output"),
    [(16_384, 128_000, 16_384), (None, 8_192, 8_192), (None, None, UNKNOWN_OUTPUT_LIMIT)],
)
def test_without_max_tokens_the_output_is_bounded_by_the_model(
    max_output: int | None, window: int | None, output: int
) -> None:
    request = ChatRequest(ASK)
    estimate = 30 + DEFAULT_OUTPUT_RESERVE
    prompt = 30 * USAGE_INPUT_FACTOR + USAGE_INPUT_SLACK
    if window is not None:
        prompt = min(prompt, window)
    ceiling = usage_ceiling(request, estimate, context_window=window, max_output=max_output)
    assert ceiling == prompt + output


def test_the_ceiling_is_never_below_the_estimate() -> None:
    request = ChatRequest(ASK, max_tokens=10)
    assert usage_ceiling(request, 50_000, context_window=1_000) == 50_000


@pytest.mark.parametrize(
    ("reported", "estimate", "ceiling", "below", "charged"),
    [
        (40, 100, 5_000, True, 40),  # an honest reply settles to its usage
        (10**15, 100, 5_000, True, 5_000),  # a claim past what the request could cost
        (10**20, 100, 5_000, False, 5_000),
        (40, 100, 5_000, False, 100),  # charged up front: never below the estimate
        (-5, 100, 5_000, True, 0),
        (10**15, 100, None, True, 10**15),  # no ceiling known: the claim stands
        (10**15, 6_000, 5_000, True, 6_000),  # a ceiling below the estimate is the estimate
    ],
)
def test_settled_tokens(
    reported: int, estimate: int, ceiling: int | None, below: bool, charged: int
) -> None:
    assert settled_tokens(reported, estimate, ceiling, below_estimate=below) == charged
