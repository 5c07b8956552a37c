"""The context-window check through the engine: prompt plus ``max_tokens``, counted once.

The first route's model is ``gpt-4`` (8,192 tokens in the built-in table, counted exactly
by tiktoken); prompts are built to the token, so a request that fits exactly goes to it and
one a token longer is skipped for the fallback without a call.
"""

from __future__ import annotations

import pytest

from resilient_llm import ChatRequest, Message, Provider, estimate_tokens
from resilient_llm.events import RouteSkipped
from resilient_llm.policies.tokens import reserved_output

from .conftest import Bench

WINDOW = 8192


def _request(prompt_tokens: int, max_tokens: int) -> ChatRequest:
    text = "word " * prompt_tokens
    for _ in range(5):
        request = ChatRequest(messages=(Message("user", text),), max_tokens=max_tokens)
        prompt = estimate_tokens(request, "gpt-4") - reserved_output(request)
        if prompt == prompt_tokens:
            return request
        text = "word " * (text.count("word ") + prompt_tokens - prompt)
    raise AssertionError("could not build a prompt of the exact size")


def _gpt4(bench: Bench) -> Provider:
    name = f"openai-{bench.tag}-gpt4"
    bench.names.append(name)
    return Provider(
        "openai", "gpt-4", base_url=bench.server.base_url(name), api_key="test-key", name=name
    )


def _answer(bench: Bench, request: ChatRequest, mode: str) -> str:
    primary, fallback = _gpt4(bench), bench.route("anthropic", "fallback")
    llm = bench.engine(primary, fallback)
    if mode == "chat":
        return llm.chat(request).provider
    return next(iter(llm.stream(request))).provider


@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("max_tokens", [3000, 192])
def test_a_request_that_fills_the_window_exactly_is_sent(
    bench: Bench, mode: str, max_tokens: int
) -> None:
    request = _request(WINDOW - max_tokens, max_tokens)
    assert _answer(bench, request, mode) == f"openai-{bench.tag}-gpt4"
    assert bench.of(RouteSkipped) == []


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_one_token_over_the_window_skips_the_route_without_a_call(bench: Bench, mode: str) -> None:
    request = _request(WINDOW - 3000 + 1, 3000)
    assert _answer(bench, request, mode) == f"anthropic-{bench.tag}-fallback"
    assert [name for name, _, _ in bench.calls(1)] == [f"anthropic-{bench.tag}-fallback"]
    (skipped,) = bench.of(RouteSkipped)
    assert "~5193 tokens (+3000 out) exceed its 8192-token window" in skipped.reason


def test_a_3000_token_prompt_with_3000_out_goes_to_an_8k_model(bench: Bench) -> None:
    assert _answer(bench, _request(3000, 3000), "chat") == f"openai-{bench.tag}-gpt4"
