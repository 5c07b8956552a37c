"""Real replies with reasoning, signatures and detailed usage, read through the engine.

Each recording (see PROVENANCE.md) is replayed through the official SDK in the modes its
form allows (a JSON reply in chat and achat, an SSE stream in stream and astream); what
the engine gives back must be what the provider said, as ``recorded.said`` reads it from
the body: the reasoning text, every signature exactly as sent, tool-call signatures,
and usage details by the neutral rules.
"""

from __future__ import annotations

import pytest

from resilient_llm import ChatResponse

from .conftest import STREAMS, Bench
from .recorded import Said, said
from .server import Recording

# recording -> the model it was made with
REPLIES = {
    "anthropic/message_thinking_tool_use": "claude-sonnet-4-0",
    "anthropic/message_redacted_thinking": "claude-sonnet-4-5",
    "anthropic/message_cache_usage": "claude-sonnet-4-5",
    "anthropic/stream_thinking": "claude-sonnet-4-0",
    "anthropic/stream_redacted_thinking": "claude-sonnet-4-5",
    "gemini/generate_thinking": "gemini-3-pro-preview",
    "gemini/generate_function_call": "gemini-2.5-pro",
    "gemini/generate_parallel_calls": "gemini-3-flash-preview",
    "gemini/generate_cached_usage": "gemini-2.5-flash",
    "gemini/generate_image_inline": "gemini-2.5-flash",
    "gemini/stream_thinking": "gemini-2.5-pro",
    "gemini/stream_function_call": "gemini-3-pro-preview",
    "openai/chat_reasoning_tokens": "o3-mini",
    "openai/chat_cached_usage": "gpt-5.6-sol",
    "openai/chat_cache_write_usage": "gpt-5.6-sol",
}


def _cases() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for name in sorted(REPLIES):
        modes = STREAMS if Recording.load(name).is_sse else ("chat", "achat")
        cases.extend((name, mode) for mode in modes)
    return cases


def check_reasoning(reply: ChatResponse, expected: Said, kind: str) -> None:
    """The blocks' text and signatures, in order, exactly as the provider sent them."""
    assert "".join(r.text for r in reply.reasoning) == expected.thoughts
    assert [r.signature for r in reply.reasoning if r.signature is not None] == (
        expected.signatures
    )
    assert [r.signature for r in reply.reasoning if r.redacted] == expected.redacted
    assert all(r.family == kind for r in reply.reasoning), reply.reasoning
    if kind == "anthropic":
        # One Reasoning per thinking block: a block and its signature stay together.
        assert len(reply.reasoning) == len(expected.signatures)


@pytest.mark.parametrize(("name", "mode"), _cases())
def test_a_recorded_reply_reads_in_full(bench: Bench, name: str, mode: str) -> None:
    kind = name.split("/", 1)[0]
    recording = Recording.load(name)
    route = bench.route(kind, "only", REPLIES[name])
    bench.serve(route, recording)
    reply = bench.call(bench.engine(route), mode, "Go on.").response
    expected = said(recording)

    assert reply.content == expected.content
    check_reasoning(reply, expected, kind)
    assert [(c.name, dict(c.arguments), c.signature) for c in reply.tool_calls] == [
        (c.name, c.arguments, c.signature) for c in expected.calls
    ]
    for call in reply.tool_calls:
        assert call.family == (kind if call.signature is not None else call.family)
    assert reply.usage == expected.usage
    assert reply.finish_reason == ("tool_calls" if expected.calls else "stop")


def test_the_recordings_show_what_the_cases_are_for() -> None:
    """Each case's recording really holds the feature it is here for (no vacuous pass)."""
    got = {name: said(Recording.load(name)) for name in REPLIES}
    for name in ("anthropic/message_thinking_tool_use", "anthropic/stream_thinking"):
        assert got[name].thoughts
        assert got[name].signatures
    assert got["anthropic/message_thinking_tool_use"].calls
    assert len(got["anthropic/message_redacted_thinking"].redacted) == 1
    assert len(got["anthropic/stream_redacted_thinking"].redacted) == 2
    for name in ("gemini/generate_thinking", "gemini/stream_thinking"):
        assert got[name].thoughts
        assert got[name].signatures
    for name in ("gemini/generate_function_call", "gemini/stream_function_call"):
        assert all(c.signature for c in got[name].calls)
    parallel = [c.signature is not None for c in got["gemini/generate_parallel_calls"].calls]
    assert parallel == [True, False, False]  # Gemini signs the first call of a turn only
    details = {
        "anthropic/message_cache_usage": ("cached_input_tokens", "cache_write_tokens"),
        "gemini/generate_cached_usage": ("cached_input_tokens", "reasoning_tokens"),
        "gemini/generate_image_inline": ("cached_input_tokens", "reasoning_tokens"),
        "openai/chat_reasoning_tokens": ("reasoning_tokens",),
        "openai/chat_cached_usage": ("cached_input_tokens",),
        "openai/chat_cache_write_usage": ("cache_write_tokens",),
    }
    for name, fields in details.items():
        usage = got[name].usage
        assert usage is not None
        for name_of_field in fields:
            assert getattr(usage, name_of_field) > 0, (name, name_of_field)


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_langchain_shows_recorded_reasoning_and_usage_details(bench: Bench, mode: str) -> None:
    """ChatAnthropic's forms: thinking blocks in content, cache and reasoning details."""
    from langchain_core.messages import AIMessage, BaseMessage

    from langchain_resilient import ChatResilientLLM

    name = "anthropic/stream_thinking" if mode == "stream" else "anthropic/message_cache_usage"
    recording = Recording.load(name)
    route = bench.route("anthropic", "only")
    bench.serve(route, recording)
    model = ChatResilientLLM(engine=bench.engine(route))
    message: BaseMessage
    if mode == "stream":
        chunks = list(model.stream("Go on."))
        message = chunks[0]
        for chunk in chunks[1:]:
            message = message + chunk
    else:
        message = model.invoke("Go on.")
    assert isinstance(message, AIMessage)
    expected = said(recording)
    assert expected.usage is not None
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == expected.usage.input_tokens
    assert usage["output_tokens"] == expected.usage.output_tokens
    details = usage.get("input_token_details", {})
    assert details.get("cache_read", 0) == expected.usage.cached_input_tokens
    assert details.get("cache_creation", 0) == expected.usage.cache_write_tokens
    if expected.signatures:
        blocks = [b for b in message.content if isinstance(b, dict) and b.get("type") == "thinking"]
        assert "".join(b["thinking"] for b in blocks) == expected.thoughts
        assert [b["signature"] for b in blocks if b.get("signature")] == expected.signatures
