"""The pure converters and the model's configuration rules, without any server."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

import langchain_resilient
from langchain_resilient import ChatResilientLLM
from langchain_resilient._convert import to_ai_message, to_chunk, to_messages, tool_choice
from resilient_llm import (
    ChatChunk,
    ChatResponse,
    Message,
    ResilientLLM,
    RetryBudget,
    RetryPolicy,
    StreamTimeouts,
    ToolCall,
    Usage,
)
from resilient_llm.extras.cache import ResponseCache
from resilient_llm.run.hedge import Hedge

from ._chaos import MODELS


def _provider(kind: str = "openai") -> object:
    from resilient_llm import Provider

    return Provider(kind, MODELS[kind], api_key="k", base_url="http://127.0.0.1:9/v1")  # type: ignore[arg-type]


def test_exported_names() -> None:
    assert langchain_resilient.__all__ == ["ChatResilientLLM"]


def test_messages_convert_to_neutral_ones() -> None:
    out = to_messages(
        [
            SystemMessage("be brief"),
            HumanMessage([{"type": "text", "text": "hi "}, "there"], name="ann"),
            AIMessage(
                [{"type": "text", "text": "calling"}, {"type": "tool_use", "id": "1"}],
                tool_calls=[{"name": "f", "args": {"x": 1}, "id": "1", "type": "tool_call"}],
            ),
            ToolMessage("42", tool_call_id="1"),
            ChatMessage(role="developer", content="rules"),
        ]
    )
    assert out == [
        Message("system", "be brief"),
        Message("user", "hi there", name="ann"),
        Message("assistant", "calling", tool_calls=(ToolCall("1", "f", {"x": 1}),)),
        Message("tool", "42", tool_call_id="1"),
        Message("system", "rules"),
    ]


def test_content_no_route_takes_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"messages\[0\].content\[1\]: 'video'"):
        to_messages([HumanMessage(["hi", {"type": "video", "url": "https://x/v.mp4"}])])
    with pytest.raises(ValueError, match="unknown content block type 'hologram'"):
        to_messages([HumanMessage([{"type": "hologram"}])])


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("any", "required"),
        ("required", "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("f", "f"),
        (True, "f"),
        (None, None),
        ({"type": "function", "function": {"name": "f"}}, "f"),
    ],
)
def test_tool_choice_spellings(choice: object, expected: str | None) -> None:
    assert tool_choice(choice, ["f"]) == expected


def test_reply_and_chunk_convert_back() -> None:
    reply = ChatResponse(
        "hi",
        provider="anthropic",
        model="m",
        tool_calls=(ToolCall("c1", "f", {"a": 1}),),
        usage=Usage(3, 4),
        finish_reason="tool_calls",
        metadata={"attempt_count": 2, "failovers": [{"from": "openai", "to": "anthropic"}]},
    )
    message = to_ai_message(reply)
    assert message.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]
    assert message.usage_metadata == {
        "input_tokens": 3,
        "output_tokens": 4,
        "total_tokens": 7,
        "input_token_details": {"cache_read": 0, "cache_creation": 0},
        "output_token_details": {"reasoning": 0},
    }
    meta = message.response_metadata
    assert (meta["provider"], meta["model_name"], meta["attempt_count"]) == ("anthropic", "m", 2)
    chunk = to_chunk(ChatChunk(tool_calls=(ToolCall("c2", "g", {"b": "é"}),)), 1)
    assert chunk.tool_call_chunks[0]["index"] == 1
    assert chunk.tool_calls == [{"name": "g", "args": {"b": "é"}, "id": "c2", "type": "tool_call"}]


def test_max_retries_maps_onto_the_engines_retry_policy() -> None:
    model = ChatResilientLLM(providers=[_provider()], max_retries=5)
    assert model.resilient_engine.retry.max_retries == 5
    with pytest.raises(ValueError, match="contradicts"):
        ChatResilientLLM(providers=[_provider()], max_retries=1, retry=RetryPolicy(max_retries=2))


def test_a_shared_engine_is_used_as_given() -> None:
    engine = ResilientLLM([_provider()])
    model = ChatResilientLLM(engine=engine, temperature=0.2)
    assert model.resilient_engine is engine
    assert ChatResilientLLM(engine=engine).resilient_engine is engine
    with pytest.raises(ValueError, match="either engine="):
        ChatResilientLLM(engine=engine, max_retries=2)


def test_engine_options_reach_the_engine_only_when_set() -> None:
    cache = ResponseCache()
    model = ChatResilientLLM(
        providers=[_provider()],
        retry_budget=None,
        hedge=Hedge(0.2),
        stream_timeouts=StreamTimeouts(idle=5),
        adaptive_limits=False,
        response_cache=cache,
    )
    engine = model.resilient_engine
    assert engine.retry_budget is None, "an explicit None turns the budget off"
    assert engine.hedge == Hedge(0.2)
    assert engine.stream_timeouts == StreamTimeouts(idle=5)
    assert engine.adaptive_limits is False
    assert engine.cache is cache
    defaults = ChatResilientLLM(providers=[_provider()]).resilient_engine
    assert defaults.retry_budget == RetryBudget()
    assert (defaults.hedge, defaults.cache, defaults.adaptive_limits) == (Hedge(), None, True)
    assert ChatResilientLLM(providers=[_provider()], hedge=False).resilient_engine.hedge is None
    with pytest.raises(ValueError, match="either engine="):
        ChatResilientLLM(engine=engine, hedge=Hedge(1))


def test_unknown_keywords_are_errors() -> None:
    with pytest.raises(ValueError, match="api_key"):
        ChatResilientLLM(providers=[_provider()], api_key="sk-...")  # type: ignore[call-arg]


def test_ls_params_name_the_primary_model_and_overrides() -> None:
    model = ChatResilientLLM(providers=[_provider("gemini")], temperature=0.5, stop=["x"])
    params = model._get_ls_params()
    assert params["ls_provider"] == "resilient-llm"
    assert params["ls_model_name"] == "gemini-2.5-flash"
    assert (params["ls_temperature"], params["ls_stop"]) == (0.5, ["x"])
    assert model._get_ls_params(model="other")["ls_model_name"] == "other"
