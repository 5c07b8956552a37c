"""The pure OpenAI request/response converters (no I/O, no SDK calls)."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest

from resilient_llm.errors import ProviderUnavailable
from resilient_llm.messages import ChatRequest, Message, ToolCall
from resilient_llm.providers.openai import convert as oc

from .samples import HISTORY, WEATHER, provider


def test_openai_params_history_tools_and_options() -> None:
    request = ChatRequest(
        HISTORY,
        tools=(WEATHER,),
        tool_choice="get_weather",
        temperature=0.2,
        max_tokens=50,
        stop=("END",),
    )
    params = oc.build_params(request, provider("openai"))
    assert params["model"] == "m-1"
    roles = [m["role"] for m in params["messages"]]
    assert roles == ["system", "system", "user", "assistant", "tool", "tool", "user"]
    assistant = params["messages"][3]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert params["messages"][4] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"temp": 21}',
    }
    assert params["tools"][0]["function"]["parameters"] == dict(WEATHER.parameters)
    assert params["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert params["max_completion_tokens"] == 50
    assert "max_tokens" not in params
    assert params["stop"] == ["END"]
    assert params["temperature"] == 0.2


def test_openai_compatible_base_url_gets_max_tokens_and_model_override() -> None:
    request = ChatRequest((Message("user", "hi"),), model="other", max_tokens=5)
    params = oc.build_params(request, provider("openai", "http://127.0.0.1:1/v1"))
    assert params["max_tokens"] == 5
    assert params["model"] == "other"


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_openai_tool_choice_keywords(choice: str) -> None:
    request = ChatRequest((Message("user", "hi"),), tools=(WEATHER,), tool_choice=choice)
    assert oc.build_params(request, provider("openai"))["tool_choice"] == choice


def test_openai_tool_choice_without_tools_is_dropped() -> None:
    request = ChatRequest((Message("user", "hi"),), tool_choice="auto")
    assert "tool_choice" not in oc.build_params(request, provider("openai"))


def test_openai_structured_output_and_json_mode() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    params = oc.build_params(
        ChatRequest((Message("user", "x"),), response_schema=schema), provider("openai")
    )
    assert params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": False},
    }
    params = oc.build_params(
        ChatRequest((Message("user", "x"),), json_mode=True), provider("openai")
    )
    assert params["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        ("weird", "stop"),
        (None, None),
    ],
)
def test_openai_finish_reason(raw: str | None, normal: str | None) -> None:
    assert oc.finish_reason(raw) == normal


def _oa_chunk(**delta: Any) -> Any:
    finish = delta.pop("finish", None)
    usage = delta.pop("usage", None)
    choices = (
        []
        if delta.pop("empty", False)
        else [
            NS(
                delta=NS(content=delta.get("content"), tool_calls=delta.get("tool_calls")),
                finish_reason=finish,
            )
        ]
    )
    return NS(model="gpt-x", usage=usage, choices=choices)


def test_openai_stream_state_assembles_tool_calls_and_usage() -> None:
    state = oc.OpenAIStreamState("r")
    fn = NS(name="get_weather", arguments='{"ci')
    out = state.feed(_oa_chunk(content="He"))
    out += state.feed(_oa_chunk(tool_calls=[NS(index=0, id="c1", function=fn)]))
    out += state.feed(
        _oa_chunk(
            tool_calls=[NS(index=0, id=None, function=NS(name=None, arguments='ty": "Oslo"}'))]
        )
    )
    out += state.feed(_oa_chunk(finish="tool_calls"))
    out += state.feed(_oa_chunk(empty=True, usage=NS(prompt_tokens=3, completion_tokens=4)))
    out += state.finish()
    assert [c.delta for c in out] == ["He", ""]
    last = out[-1]
    assert last.tool_calls == (ToolCall("c1", "get_weather", {"city": "Oslo"}),)
    assert last.usage is not None
    assert (last.usage.input_tokens, last.usage.output_tokens) == (3, 4)
    assert last.finish_reason == "tool_calls"
    assert last.provider == "r"
    assert last.model == "gpt-x"


def test_openai_stream_without_finish_reason_is_cut() -> None:
    state = oc.OpenAIStreamState("r")
    state.feed(_oa_chunk(content="partial"))
    with pytest.raises(ProviderUnavailable, match="terminal event"):
        state.finish()


def test_openai_response_without_choices_is_unavailable() -> None:
    with pytest.raises(ProviderUnavailable):
        oc.response_from_completion(NS(choices=[], usage=None, model="m", id="x"), "r", None)  # type: ignore[arg-type]
