"""The pure Anthropic request/response converters (no I/O, no SDK calls)."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS
from typing import Any

import pytest

from resilient_llm.errors import ProviderUnavailable
from resilient_llm.messages import ChatRequest, Message, ToolCall
from resilient_llm.providers.anthropic import convert as ac
from resilient_llm.providers.anthropic.thinking import sdk_takes

from .samples import HISTORY, WEATHER, provider


def test_anthropic_system_and_tool_results_merge_into_one_user_turn() -> None:
    system, messages = ac.messages_to_anthropic(HISTORY)
    assert system == "Be brief.\n\nUse metric."
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp": 21}'},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "cold"},
        {"type": "text", "text": "And so?"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
def test_anthropic_tool_choice(choice: str, expected: dict[str, Any]) -> None:
    request = ChatRequest((Message("user", "hi"),), tools=(WEATHER,), tool_choice=choice)
    params = ac.build_params(request, provider("anthropic"))
    assert params["tool_choice"] == expected
    assert params["tools"][0]["input_schema"] == dict(WEATHER.parameters)


def test_anthropic_defaults_and_options() -> None:
    request = ChatRequest((Message("user", "hi"),), temperature=1.5, stop=("X",))
    params = ac.build_params(request, provider("anthropic"))
    assert params["max_tokens"] == ac.DEFAULT_MAX_TOKENS
    # Capped at 1 where the SDK still takes it; SDK 2's API version removed it: not sent.
    assert params.get("temperature") == (1.0 if sdk_takes("temperature") else None)
    assert params["stop_sequences"] == ["X"]
    assert "system" not in params
    assert "tools" not in params


def test_anthropic_structured_output_is_a_forced_tool() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    request = ChatRequest((Message("user", "x"),), response_schema=schema)
    params = ac.build_params(request, provider("anthropic"))
    assert params["tools"] == [
        {
            "name": ac.STRUCTURED_TOOL,
            "description": "Give the final answer as the input of this tool.",
            "input_schema": schema,
        }
    ]
    assert params["tool_choice"] == {"type": "tool", "name": ac.STRUCTURED_TOOL}
    message = NS(
        content=[NS(type="tool_use", id="t", name=ac.STRUCTURED_TOOL, input={"a": 1})],
        stop_reason="tool_use",
        model="claude-x",
        id="msg",
        usage=NS(input_tokens=5, output_tokens=6),
    )
    reply = ac.response_from_message(message, "r", {"retry-after": "1", "x-api-key": "k"})
    assert json.loads(reply.content) == {"a": 1}
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"
    assert reply.rate_limit_headers == {"retry-after": "1"}


def test_anthropic_structured_output_wraps_non_objects() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    request = ChatRequest((Message("user", "x"),), response_schema=schema)
    params = ac.build_params(request, provider("anthropic"))
    assert params["tools"][0]["input_schema"]["properties"]["value"] == schema
    assert ac.wraps_schema(request)
    assert ac.structured_text({"value": ["a"]}, wrapped=True) == '["a"]'


def test_anthropic_structured_output_with_user_tools_requires_a_tool_call() -> None:
    schema = {"type": "object", "properties": {}}
    request = ChatRequest((Message("user", "x"),), tools=(WEATHER,), response_schema=schema)
    params = ac.build_params(request, provider("anthropic"))
    assert params["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in params["tools"]] == ["get_weather", ac.STRUCTURED_TOOL]


def _ev(kind: str, **fields: Any) -> Any:
    return NS(type=kind, **fields)


def test_anthropic_stream_state() -> None:
    state = ac.AnthropicStreamState("r")
    events = [
        _ev(
            "message_start", message=NS(model="claude-x", usage=NS(input_tokens=7, output_tokens=1))
        ),
        _ev("content_block_start", index=0, content_block=NS(type="text")),
        _ev("content_block_delta", index=0, delta=NS(type="text_delta", text="Hi")),
        _ev("content_block_stop", index=0),
        _ev(
            "content_block_start",
            index=1,
            content_block=NS(type="tool_use", id="tu", name="get_weather"),
        ),
        _ev(
            "content_block_delta",
            index=1,
            delta=NS(type="input_json_delta", partial_json='{"city"'),
        ),
        _ev(
            "content_block_delta",
            index=1,
            delta=NS(type="input_json_delta", partial_json=': "Oslo"}'),
        ),
        _ev("content_block_stop", index=1),
        _ev("message_delta", delta=NS(stop_reason="tool_use"), usage=NS(output_tokens=9)),
        _ev("message_stop"),
    ]
    out = [chunk for event in events for chunk in state.feed(event)] + state.finish()
    assert [c.delta for c in out] == ["Hi", ""]
    assert out[-1].tool_calls == (ToolCall("tu", "get_weather", {"city": "Oslo"}),)
    assert out[-1].usage is not None
    assert (out[-1].usage.input_tokens, out[-1].usage.output_tokens) == (7, 9)
    assert out[-1].finish_reason == "tool_calls"
    assert out[-1].model == "claude-x"


def test_anthropic_stream_without_message_stop_is_cut() -> None:
    state = ac.AnthropicStreamState("r")
    state.feed(_ev("message_delta", delta=NS(stop_reason="end_turn"), usage=NS(output_tokens=1)))
    with pytest.raises(ProviderUnavailable, match="terminal event"):
        state.finish()


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "refusal"),
    ],
)
def test_anthropic_finish_reason(raw: str, normal: str) -> None:
    assert ac.finish_reason(raw) == normal
