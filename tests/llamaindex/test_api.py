"""The package's public names, metadata, and the pure converters."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.llms.function_calling import FunctionCallingLLM

import llamaindex_resilient
from llamaindex_resilient import ResilientLLM, model_limits
from llamaindex_resilient._convert import to_messages, tool_selections
from resilient_llm import Capabilities, ConfigurationError, Message, Provider, ToolCall

from .conftest import Routes


def test_exported_names() -> None:
    assert sorted(llamaindex_resilient.__all__) == [
        "ResilientAttemptEvent",
        "ResilientBreakerEvent",
        "ResilientEngineEvent",
        "ResilientEvent",
        "ResilientFailoverEvent",
        "ResilientLLM",
        "ResilientRetryEvent",
        "dispatch_event",
        "model_limits",
    ]
    for name in llamaindex_resilient.__all__:
        assert getattr(llamaindex_resilient, name) is not None
    assert issubclass(ResilientLLM, FunctionCallingLLM)
    assert ResilientLLM.class_name() == "ResilientLLM"


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o-mini",
        "gpt-4.1-nano",
        "gpt-5-mini",
        "o4-mini",
        "claude-haiku-4-5",
        "claude-opus-4-1",
        "claude-3-5-haiku-latest",
        "gemini-2.5-flash",
        "gemini-2.0-flash-lite",
        "openai/gpt-4o",
    ],
)
def test_metadata_is_the_engines_table(model: str) -> None:
    """One table: LlamaIndex's metadata is what the engine routes by."""
    caps = Capabilities.for_model(model)
    assert caps.context_window is not None
    assert caps.max_output is not None
    assert model_limits(model) == (caps.context_window, caps.max_output)
    llm = ResilientLLM(Provider("openai", model, base_url="http://127.0.0.1:9/v1", api_key="x"))
    assert (llm.metadata.context_window, llm.metadata.num_output) == (
        caps.context_window,
        caps.max_output,
    )


def test_metadata_follows_the_routes_capabilities_and_unknown_models() -> None:
    narrowed = Capabilities(context_window=32_000, max_output=2_000)
    llm = ResilientLLM(
        Provider(
            "openai",
            "gpt-5-mini",
            base_url="http://127.0.0.1:9/v1",
            api_key="x",
            capabilities=narrowed,
        )
    )
    assert (llm.metadata.context_window, llm.metadata.num_output) == (32_000, 2_000)
    assert model_limits("llama-3.3-70b") == (128_000, 4_096), "what the table does not know"


def test_metadata(routes: Routes) -> None:
    llm = routes.llm()
    meta = llm.metadata
    assert meta.is_chat_model
    assert meta.is_function_calling_model
    assert meta.model_name == llm.model
    assert (meta.context_window, meta.num_output) == model_limits(llm.model)
    custom = routes.llm(context_window=1000, max_tokens=10).metadata
    assert (custom.context_window, custom.num_output) == (1000, 10)
    assert "ResilientLLM" in repr(llm.engine)
    assert "chaos-test" not in repr(llm) + str(llm.to_dict())  # no key in dumps


def test_messages_convert_with_tool_calls_and_results() -> None:
    call = ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs='{"a": 2}')
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
        ChatMessage(role=MessageRole.USER, content="Multiply 2"),
        ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text="ok"), call]),
        ChatMessage(role=MessageRole.TOOL, content="4", additional_kwargs={"tool_call_id": "c1"}),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            content=None,
            additional_kwargs={
                "tool_calls": [{"id": "c2", "function": {"name": "f", "arguments": "{}"}}]
            },
        ),
    ]
    assert to_messages(messages) == [
        Message("system", "Be brief."),
        Message("user", "Multiply 2"),
        Message("assistant", "ok", tool_calls=(ToolCall("c1", "multiply", {"a": 2}),)),
        Message("tool", "4", tool_call_id="c1"),
        Message("assistant", "", tool_calls=(ToolCall("c2", "f", {}),)),
    ]


def test_blocks_the_engine_cannot_send_are_refused_by_name() -> None:
    video = ChatMessage(role=MessageRole.USER, blocks=[VideoBlock(url="http://x/y.mp4")])
    with pytest.raises(ConfigurationError, match=r"messages\[0\]\.blocks\[0\] is a VideoBlock"):
        to_messages([video])


def test_tool_selections_from_legacy_additional_kwargs() -> None:
    legacy = ChatResponse(
        message=ChatMessage(
            role=MessageRole.ASSISTANT,
            additional_kwargs={
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"x": 1}'}}]
            },
        )
    )
    (selection,) = tool_selections(legacy)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == ("c", "f", {"x": 1})


def test_single_tool_call_unless_parallel_allowed(routes: Routes) -> None:
    llm = routes.llm()
    blocks = [ToolCallBlock(tool_call_id=str(i), tool_name="f", tool_kwargs={}) for i in range(2)]
    response = ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, blocks=list(blocks)))
    kept = llm._validate_chat_with_tools_response(response, [], allow_parallel_tool_calls=False)
    assert [s.tool_id for s in llm.get_tool_calls_from_response(kept)] == ["0"]


def test_the_engines_snapshot_is_reachable(routes: Routes) -> None:
    llm = routes.llm()
    llm.chat([ChatMessage(role="user", content="What is the capital of France?")])
    snapshot = llm.snapshot()
    names = [p.name for p in llm.engine.providers]
    assert [route.name for route in snapshot] == names
    assert snapshot[names[0]].limiter.requests_used == 1
