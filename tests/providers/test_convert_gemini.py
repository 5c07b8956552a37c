"""The pure Gemini request/response converters (no I/O, no SDK calls)."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest

from resilient_llm.errors import ProviderUnavailable
from resilient_llm.messages import ChatRequest, Message, ToolCall
from resilient_llm.providers.gemini import convert as gc
from resilient_llm.providers.gemini import reply as gr

from .samples import HISTORY, WEATHER


def test_gemini_contents_roles_and_function_parts() -> None:
    system, contents = gc.build_contents(HISTORY)
    assert system == "Be brief.\n\nUse metric."
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0] == {
        "function_call": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}
    }
    responses = contents[2]["parts"]
    assert responses[0] == {
        "function_response": {"id": "call_1", "name": "get_weather", "response": {"temp": 21}}
    }
    assert responses[1]["function_response"]["response"] == {"result": "cold"}
    assert responses[1]["function_response"]["name"] == "get_weather"
    assert responses[2] == {"text": "And so?"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ("get_weather", {"mode": "ANY", "allowed_function_names": ["get_weather"]}),
    ],
)
def test_gemini_tool_choice(choice: str, expected: dict[str, Any]) -> None:
    request = ChatRequest((Message("user", "hi"),), tools=(WEATHER,), tool_choice=choice)
    config = gc.build_config(request, None, {})
    assert config["tool_config"] == {"function_calling_config": expected}
    declaration = config["tools"][0]["function_declarations"][0]
    assert declaration["parameters_json_schema"] == dict(WEATHER.parameters)


def test_gemini_config_options() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = ChatRequest(
        (Message("user", "x"),), response_schema=schema, temperature=0.5, max_tokens=9, stop=("S",)
    )
    config = gc.build_config(request, "sys", {"timeout": 500})
    assert config["system_instruction"] == "sys"
    assert config["response_mime_type"] == "application/json"
    assert config["response_json_schema"] == schema
    assert (config["temperature"], config["max_output_tokens"]) == (0.5, 9)
    assert config["stop_sequences"] == ["S"]
    assert config["http_options"] == {"timeout": 500}
    json_only = gc.build_config(ChatRequest((Message("user", "x"),), json_mode=True), None, {})
    assert json_only["response_mime_type"] == "application/json"
    assert "response_json_schema" not in json_only


def _gem(parts: list[Any], finish: str | None, **extra: Any) -> Any:
    candidate = NS(content=NS(parts=parts), finish_reason=finish)
    return NS(candidates=[candidate], model_version="gemini-x", **extra)


def test_gemini_response_and_finish_reasons() -> None:
    call = NS(id=None, name="get_weather", args={"city": "Oslo"})
    response = _gem(
        [
            NS(text="thinking", thought=True, function_call=None),
            NS(text=None, thought=None, function_call=call),
        ],
        "STOP",
        usage_metadata=NS(prompt_token_count=4, candidates_token_count=2, thoughts_token_count=3),
        prompt_feedback=None,
    )
    reply = gr.response_from_generate(response, "r", "fallback", None)
    assert reply.content == ""
    assert reply.tool_calls == (ToolCall("call_get_weather", "get_weather", {"city": "Oslo"}),)
    assert reply.finish_reason == "tool_calls"
    assert reply.usage is not None
    assert reply.usage.output_tokens == 5
    assert reply.model == "gemini-x"
    assert gr.finish_reason("MAX_TOKENS") == "length"
    assert gr.finish_reason("SAFETY") == "refusal"


def test_gemini_stream_state_needs_a_terminal_finish_reason() -> None:
    state = gr.GeminiStreamState("r", "fallback")
    text = NS(text="Hi", thought=None, function_call=None)
    assert [c.delta for c in state.feed(_gem([text], None, usage_metadata=None))] == ["Hi"]
    state.feed(_gem([], "CONTINUATION", usage_metadata=None))
    with pytest.raises(ProviderUnavailable, match="terminal event"):
        state.finish()
    state.feed(_gem([], "STOP", usage_metadata=NS(prompt_token_count=1, candidates_token_count=1)))
    (last,) = state.finish()
    assert last.finish_reason == "stop"
    assert last.usage is not None
    assert last.usage.total_tokens == 2
