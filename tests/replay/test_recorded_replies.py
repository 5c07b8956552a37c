"""Real recorded replies of the three APIs, through the official SDKs and the engine.

The replies, tool calls and streams below were recorded from the providers themselves
(see PROVENANCE.md): the engine must read them as it reads our chaos server's.
"""

from __future__ import annotations

import json

import pytest

from resilient_llm import Usage

from .conftest import KINDS, MODES, STREAMS, Bench, answer
from .server import RECORDINGS, Recording

# What each recorded plain answer says, and the usage it reports.
TEXT = {
    "openai/chat_text": ("The capital of France is Paris.", Usage(14, 7)),
    "openai/stream_text_usage": ("The capital of the UK is London.", Usage(78, 9)),
    "anthropic/message_text": ("The capital of France is Paris.", Usage(20, 10)),
    "anthropic/stream_text": ("2", Usage(20, 5)),
    "gemini/generate_text": ("Hello! How can I help you today?", None),
    "gemini/stream_text": ("The capital of France is Paris.\n", Usage(13, 8)),
}
# The path each SDK posts to, under the route's prefix.
PATHS = {
    ("openai", False): "/v1/chat/completions",
    ("openai", True): "/v1/chat/completions",
    ("anthropic", False): "/v1/messages",
    ("anthropic", True): "/v1/messages",
    ("gemini", False): "/v1beta/models/gemini-2.5-flash:generateContent",
    ("gemini", True): "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
}
# Where each SDK puts the key (anthropic 2.x sends it as a bearer token).
KEY_HEADERS = {
    "openai": ("authorization",),
    "anthropic": ("x-api-key", "authorization"),
    "gemini": ("x-goog-api-key",),
}


def test_every_recording_loads_and_names_its_origin() -> None:
    files = sorted(RECORDINGS.glob("*/*.json"))
    assert len(files) >= 25
    provenance = (RECORDINGS.parent / "PROVENANCE.md").read_text(encoding="utf-8")
    for path in files:
        name = f"{path.parent.name}/{path.stem}"
        recording = Recording.load(name)
        assert 200 <= recording.status < 600
        assert recording.origin, name
        assert f"`{name}`" in provenance, f"{name} is not in PROVENANCE.md"
        if recording.status != 200 or not recording.is_sse:
            # Non-stream bodies are JSON as the providers send them.
            json.loads(recording.body)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_recorded_answer_reads_right(bench: Bench, kind: str, mode: str) -> None:
    route = bench.route(kind, "only")
    name = answer(kind, mode)
    bench.serve(route, name)
    result = bench.run(bench.engine(route), mode)

    text, usage = TEXT[name]
    assert result.text == text
    assert result.finish_reason == "stop"
    assert result.refusal is None
    assert result.provider == route.name
    got = result.reply.usage if result.reply is not None else result.chunks[-1].usage
    assert got is not None
    assert got.total_tokens > 0
    if usage is not None:
        assert got == usage
    (sent,) = bench.requests(route)
    assert sent.path == f"/{route.name}{PATHS[kind, mode in STREAMS]}"
    keys = [sent.headers[h] for h in KEY_HEADERS[kind] if h in sent.headers]
    assert [k.removeprefix("Bearer ") for k in keys] == ["test-key"]
    if kind == "gemini" and mode in STREAMS:
        assert sent.query == "alt=sse"
    if kind == "openai" and mode in STREAMS:
        assert sent.json()["stream_options"] == {"include_usage": True}


TOOL_CALLS = {
    ("openai", "chat"): ("openai/chat_tool_call", "get_capital", {"country": "England"}),
    ("openai", "stream"): ("openai/stream_tool_call", "get_capital", {"country": "UK"}),
    ("anthropic", "chat"): ("anthropic/message_tool_use", "get_user_country", {}),
    ("gemini", "chat"): ("gemini/generate_function_call", "get_capital", {"country": "France"}),
}


@pytest.mark.parametrize("achat", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("kind", "kind_mode"), sorted(TOOL_CALLS))
def test_a_recorded_tool_call_reads_right(
    bench: Bench, kind: str, kind_mode: str, achat: bool
) -> None:
    name, tool, arguments = TOOL_CALLS[kind, kind_mode]
    mode = ("a" if achat else "") + kind_mode
    route = bench.route(kind, "only")
    bench.serve(route, name)
    result = bench.run(bench.engine(route), mode)

    calls = (
        result.reply.tool_calls
        if result.reply is not None
        else tuple(c for chunk in result.chunks for c in chunk.tool_calls)
    )
    assert [(c.name, dict(c.arguments)) for c in calls] == [(tool, arguments)]
    assert calls[0].id
    assert result.finish_reason == "tool_calls"


@pytest.mark.parametrize("kind", KINDS)
def test_langchain_reads_a_recorded_tool_call(bench: Bench, kind: str) -> None:
    from langchain_resilient import ChatResilientLLM

    name, tool, arguments = TOOL_CALLS[kind, "chat"]
    route = bench.route(kind, "only")
    bench.serve(route, name)
    model = ChatResilientLLM(engine=bench.engine(route))
    schema = {"type": "object", "properties": {"country": {"type": "string"}}}
    bound = model.bind_tools([{"name": tool, "description": "look up", "parameters": schema}])
    message = bound.invoke("What is the capital of France?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [(tool, arguments)]
    assert message.response_metadata["provider"] == route.name


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream_chat"])
@pytest.mark.parametrize("kind", KINDS)
def test_llamaindex_reads_a_recorded_answer(bench: Bench, kind: str, streamed: bool) -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole

    from llamaindex_resilient import ResilientLLM as LlamaResilientLLM

    name = answer(kind, "stream" if streamed else "chat")
    route = bench.route(kind, "only")
    bench.serve(route, name)
    llm = LlamaResilientLLM(engine=bench.engine(route))
    messages = [ChatMessage(role=MessageRole.USER, content="What is the capital of France?")]
    if streamed:
        *_, response = llm.stream_chat(messages)
    else:
        response = llm.chat(messages)
    assert response.message.content == TEXT[name][0]
    assert response.raw["finish_reason"] == "stop"
    assert "refusal" not in response.message.additional_kwargs
