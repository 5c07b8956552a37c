"""OpenAI's usage details, as the real API reports them, through the SDK and the engine."""

from __future__ import annotations

import pytest

from resilient_llm import Usage

from .conftest import MODES, Bench, answer


def test_reasoning_tokens_of_a_reasoning_model_are_read(bench: Bench) -> None:
    route = bench.route("openai", "only", model="o3-mini")
    bench.serve(route, "openai/chat_reasoning_usage")
    result = bench.run(bench.engine(route), "chat")
    assert result.text == "Hello there! How can I help you today?"
    assert result.reply is not None
    # completion_tokens (87) already holds the 64 reasoning tokens.
    assert result.reply.usage == Usage(7, 87, reasoning_tokens=64)


@pytest.mark.parametrize("mode", MODES)
def test_zero_details_of_plain_replies_read_as_zero(bench: Bench, mode: str) -> None:
    route = bench.route("openai", "only")
    bench.serve(route, answer("openai", mode))
    result = bench.run(bench.engine(route), mode)
    usage = result.reply.usage if result.reply is not None else result.chunks[-1].usage
    assert usage is not None
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (0, 0)
