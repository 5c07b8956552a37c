"""The chaos Anthropic's thinking, refusals, cache usage and request log, driven by the
official ``anthropic`` SDK (no mocks): what the real API does, checked as it checks."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest

from resilient_llm.testing.chaos import ChaosServer
from resilient_llm.testing.chaos.brain import REFUSAL_TEXT
from resilient_llm.testing.chaos.signing import sign
from resilient_llm.testing.chaos.wire import digest

from .sdk import WEATHER_PROMPT, WEATHER_SCHEMA

MODEL = "claude-sonnet-4-5"
TOOLS: list[Any] = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
ASK: Any = {"role": "user", "content": WEATHER_PROMPT}


def _loop(ant: anthropic.Anthropic, first_turn: list[Any]) -> anthropic.types.Message:
    call = next(b for b in first_turn if b["type"] == "tool_use")
    return ant.messages.create(
        model=MODEL,
        max_tokens=2048,
        thinking=THINKING,
        tools=TOOLS,
        messages=[
            ASK,
            {"role": "assistant", "content": first_turn},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "sunny"}],
            },
        ],
    )


def test_thinking_reply_and_round_trip(ant: anthropic.Anthropic, chaos: ChaosServer) -> None:
    first = ant.messages.create(
        model=MODEL, max_tokens=2048, thinking=THINKING, tools=TOOLS, messages=[ASK]
    )
    thought, call = first.content
    assert thought.type == "thinking"
    assert thought.thinking == f"Considering: {WEATHER_PROMPT}"
    assert thought.signature == sign("anthropic", thought.thinking)
    assert call.type == "tool_use"
    turn = [block.model_dump(exclude_none=True) for block in first.content]
    second = _loop(ant, turn)
    assert second.content[-1].type == "text"
    assert chaos.log[-1].carried.signatures == (thought.signature,)


def test_streamed_thinking(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(
        model=MODEL, max_tokens=2048, thinking=THINKING, messages=[ASK]
    ) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        final = stream.get_final_message()
    assert ("content_block_delta", "thinking_delta") in kinds
    assert ("content_block_delta", "signature_delta") in kinds
    thought = final.content[0]
    assert thought.type == "thinking"
    assert thought.signature == sign("anthropic", thought.thinking)


@pytest.mark.parametrize(
    ("first_block", "message"),
    [
        (
            {"type": "thinking", "thinking": "changed", "signature": sign("anthropic", "orig")},
            "Invalid `signature` in `thinking` block",
        ),
        (
            {"type": "thinking", "thinking": "t", "signature": sign("gemini", "t")},
            "Invalid `signature` in `thinking` block",
        ),
        (
            {"type": "text", "text": "Let me look."},
            "Expected `thinking` or `redacted_thinking`, but found `text`. When `thinking` is "
            "enabled, a final `assistant` message must start with a thinking block",
        ),
    ],
)
def test_history_checked_as_the_real_api_does(
    ant: anthropic.Anthropic, first_block: dict[str, Any], message: str
) -> None:
    turn = [first_block, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        _loop(ant, turn)
    assert message in str(caught.value)


def test_without_thinking_a_bare_tool_turn_is_fine(ant: anthropic.Anthropic) -> None:
    turn: Any = [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]
    result: Any = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}
    reply = ant.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=TOOLS,
        messages=[
            ASK,
            {"role": "assistant", "content": turn},
            result,
        ],
    )
    assert reply.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"temperature": 0.5}, "`temperature` may only be set to 1"),
        ({"top_k": 5}, "`top_k` must be unset"),
        ({"tool_choice": {"type": "any"}, "tools": TOOLS}, "tool_choice forces tool use"),
        ({"max_tokens": 1024}, "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ],
)
def test_thinking_clashes_are_400s(
    ant: anthropic.Anthropic, extra: dict[str, Any], message: str
) -> None:
    body = {"model": MODEL, "max_tokens": 2048, "thinking": THINKING, "messages": [ASK], **extra}
    with pytest.raises(anthropic.BadRequestError, match=message):
        ant.post("/v1/messages", body=body, cast_to=anthropic.types.Message)


def test_refusal(ant: anthropic.Anthropic) -> None:
    reply = ant.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "[refuse] x"}]
    )
    assert reply.stop_reason == "refusal"
    assert reply.content == []
    assert reply.stop_details is not None
    assert reply.stop_details.explanation == REFUSAL_TEXT


def test_cache_usage_and_the_log(ant: anthropic.Anthropic, chaos: ChaosServer) -> None:
    png = b"\x89PNG fake"
    mark: Any = {"type": "ephemeral"}
    reply = ant.messages.create(
        model=MODEL,
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief. " * 30, "cache_control": mark}],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(png).decode(),
                        },
                        "cache_control": mark,
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
        stop_sequences=["END"],
    )
    usage = reply.usage
    reads, writes = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
    prompt = usage.input_tokens + reads + writes
    assert (reads, writes) == (prompt // 2, prompt // 4)
    carried = chaos.log[-1].carried
    assert carried.cache_markers == 2
    assert carried.parts == (
        ("image", "image/png", digest(png), "message"),
        ("document", None, "url:https://x/a.pdf", "message"),
    )
    assert carried.params == {"max_tokens": 100, "stop": ["END"]}
