"""Full fidelity across families: media fail over intact, routes that cannot take a part are
skipped without a call, and reasoning signatures never reach a family that did not issue
them, checked in what the chaos providers received (``RequestRecord.carried``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from resilient_llm import (
    Audio,
    ChatResponse,
    Document,
    Image,
    Message,
    Provider,
    ResilientLLM,
    Text,
)
from resilient_llm.errors import BadRequest
from resilient_llm.events import RouteSkipped
from resilient_llm.testing.chaos import ChaosServer, Plan, RequestRecord
from resilient_llm.testing.chaos.wire import digest

from .conftest import FALLBACK, KINDS, MODES, RETRY, Bench

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(512)
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _route(bench: Bench, kind: str, role: str, model: str | None = None) -> Provider:
    name = f"{kind}-{bench.tag}-{role}"
    bench.server.set_plan(name, Plan())
    bench.names.append(name)
    return Provider(
        kind,  # type: ignore[arg-type]
        model or MODELS[kind],
        base_url=bench.server.base_url(name),
        api_key="test-key",
        name=name,
    )


def _engine(bench: Bench, *providers: Provider) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers), retry=RETRY, timeout=10.0, jitter_seed=0, on_event=bench.events.append
    )
    bench.engines.append(llm)
    return llm


def _records(server: ChaosServer, provider: Provider) -> list[RequestRecord]:
    return [r for r in server.log if r.provider == provider.name]


def _call(bench: Bench, llm: ResilientLLM, mode: str, messages: Any, **options: Any) -> str:
    """The answer's text, in ``mode``."""
    if mode == "chat":
        return llm.chat(messages, **options).content
    if mode == "achat":
        return bench.runner.run(llm.achat(messages, **options)).content
    if mode == "stream":
        return "".join(c.delta for c in llm.stream(messages, **options))

    async def drain(chunks: AsyncIterator[Any]) -> str:
        return "".join([c.delta async for c in chunks])

    return bench.runner.run(drain(llm.astream(messages, **options)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_an_image_question_fails_over_to_another_family_intact(
    bench: Bench, kind: str, mode: str
) -> None:
    primary = _route(bench, kind, "primary")
    fallback = _route(bench, FALLBACK[kind], "fallback")
    bench.script(primary, "server_error", "server_error")
    llm = _engine(bench, primary, fallback)
    question = Message("user", ("What is in this picture?", Image(data=PNG, mime_type="image/png")))

    assert _call(bench, llm, mode, [question])
    expected = (("image", "image/png", digest(PNG), "message"),)
    tried = _records(bench.server, primary)
    answered = _records(bench.server, fallback)
    assert [r.carried.parts for r in tried] == [expected] * 2
    assert [(r.status, r.carried.parts) for r in answered] == [(200, expected)]


@pytest.mark.parametrize("mode", ["chat", "astream"])
def test_audio_skips_anthropic_without_a_call_and_reaches_gemini(bench: Bench, mode: str) -> None:
    claude = _route(bench, "anthropic", "claude")
    gemini = _route(bench, "gemini", "gemini")
    llm = _engine(bench, claude, gemini)
    question = Message("user", (Text("Transcribe this."), Audio(data=WAV, mime_type="audio/wav")))

    assert _call(bench, llm, mode, [question])
    assert _records(bench.server, claude) == []
    skipped = [e for e in bench.of(RouteSkipped) if e.route == claude.name]
    assert len(skipped) == 1
    assert "audio" in skipped[0].reason
    (record,) = _records(bench.server, gemini)
    assert record.carried.parts == (("audio", "audio/wav", digest(WAV), "message"),)


def test_a_part_no_route_can_take_raises_before_any_call(bench: Bench) -> None:
    claude = _route(bench, "anthropic", "claude")
    llm = _engine(bench, claude)
    question = Message("user", ("Transcribe", Audio(data=WAV, mime_type="audio/wav")))
    with pytest.raises(BadRequest, match="audio"):
        llm.chat([question])
    assert _records(bench.server, claude) == []


def test_a_pdf_by_url_skips_chat_completions_and_reaches_anthropic(bench: Bench) -> None:
    gpt = _route(bench, "openai", "gpt")
    claude = _route(bench, "anthropic", "claude")
    llm = _engine(bench, gpt, claude)
    url = "https://example.com/report.pdf"
    question = Message("user", ("Summarise", Document(url=url)))

    assert llm.chat([question]).provider == claude.name
    assert _records(bench.server, gpt) == []
    (record,) = _records(bench.server, claude)
    # Anthropic's URL source names no media type: the provider reads it from the file.
    assert record.carried.parts == (("document", None, f"url:{url}", "message"),)


def _tool_loop_step_one(bench: Bench, llm: ResilientLLM, **options: Any) -> list[Any]:
    """The history after the first step of a tool loop: question, the reply, its result."""
    question = Message("user", "What is the weather in Paris?")
    reply: ChatResponse = llm.chat([question], tools=[WEATHER], **options)
    assert reply.tool_calls, reply
    result = Message("tool", "18 C and sunny", tool_call_id=reply.tool_calls[0].id)
    return [question, reply.message, result]


def test_claude_thinking_history_fails_over_to_gemini_without_its_signatures(
    bench: Bench,
) -> None:
    claude = _route(bench, "anthropic", "claude")
    gemini = _route(bench, "gemini", "gemini", model="gemini-3-pro-preview")
    history = _tool_loop_step_one(bench, _engine(bench, claude), reasoning_effort="low")
    assert history[1].content[0].family == "anthropic"
    signatures = {p.signature for p in history[1].content if getattr(p, "signature", None)}
    assert signatures

    bench.script(claude, "rate_limit")
    reply = _engine(bench, claude, gemini).chat(history, tools=[WEATHER], reasoning_effort="low")
    assert reply.provider == gemini.name
    (record,) = _records(bench.server, gemini)
    assert record.status == 200
    assert not signatures & set(record.carried.signatures)


def test_gemini_3_history_fails_over_to_claude_thinking_without_its_signatures(
    bench: Bench,
) -> None:
    gemini = _route(bench, "gemini", "gemini", model="gemini-3-pro-preview")
    claude = _route(bench, "anthropic", "claude")
    history = _tool_loop_step_one(bench, _engine(bench, gemini))
    call = history[1].tool_calls[0]
    assert call.family == "gemini"
    assert call.signature

    bench.script(gemini, "rate_limit")
    llm = _engine(bench, gemini, claude)
    reply = llm.chat(history, tools=[WEATHER], reasoning_effort="low")
    assert reply.provider == claude.name
    claude_records = _records(bench.server, claude)
    assert [r.status for r in claude_records] == [200]
    assert call.signature not in claude_records[0].carried.signatures
