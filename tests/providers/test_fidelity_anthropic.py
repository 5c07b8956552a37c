"""Issue 18 on Anthropic routes: what reaches the wire, checked in the chaos server's log.

Every call goes through the engine and the real ``anthropic`` SDK over HTTP to the chaos
server; the assertions read what the server says each request carried (media digests with
their mime types, parameters, reasoning signatures, cache markers).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from resilient_llm import ChatChunk, ChatResponse, Provider, ResilientLLM, RetryPolicy
from resilient_llm.content import Audio, Document, Image, Part, Reasoning, Text, join_reasoning
from resilient_llm.errors import BadRequest
from resilient_llm.messages import Message, Tool, ToolCall, Usage
from resilient_llm.providers.anthropic.thinking import sdk_takes
from resilient_llm.testing.chaos import ChaosServer, Plan, RequestRecord
from resilient_llm.testing.chaos.brain import REFUSAL_TEXT
from resilient_llm.testing.chaos.signing import sign
from resilient_llm.testing.chaos.wire import digest

MODES = ("chat", "achat", "stream", "astream")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3
PDF = b"%PDF-1.4\n" + bytes(range(255, -1, -1)) * 2 + b"\n%%EOF"
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
_TAGS = itertools.count()


@dataclass
class Reply:
    """One call's outcome, read the same way for every mode."""

    content: str
    tool_calls: tuple[ToolCall, ...]
    reasoning: tuple[Reasoning, ...]
    usage: Usage | None
    refusal: str | None
    finish_reason: str | None
    chunks: list[ChatChunk] = field(default_factory=list)

    @property
    def message(self) -> Message:
        parts = (*self.reasoning, *((Text(self.content),) if self.content else ()))
        return Message("assistant", parts, tool_calls=self.tool_calls)


def _reply(response: ChatResponse) -> Reply:
    return Reply(
        response.content,
        response.tool_calls,
        response.reasoning,
        response.usage,
        response.refusal,
        response.finish_reason,
    )


def _joined(chunks: list[ChatChunk]) -> Reply:
    last = chunks[-1]
    return Reply(
        "".join(c.delta for c in chunks),
        tuple(call for c in chunks for call in c.tool_calls),
        join_reasoning(piece for c in chunks for piece in c.reasoning),
        last.usage,
        "".join(c.refusal or "" for c in chunks) or None,
        last.finish_reason,
        chunks,
    )


@dataclass
class Rig:
    server: ChaosServer
    tag: str
    names: list[str] = field(default_factory=list)
    engines: list[ResilientLLM] = field(default_factory=list)
    loop: asyncio.Runner = field(default_factory=asyncio.Runner)

    def route(
        self, kind: str = "anthropic", model: str = "chaos-model", **options: Any
    ) -> Provider:
        name = f"{kind}-{self.tag}-{len(self.names)}"
        self.server.set_plan(name, Plan())
        self.names.append(name)
        return Provider(
            kind,
            model,
            base_url=self.server.base_url(name),
            api_key="test-key",
            name=name,
            **options,
        )

    def engine(self, *providers: Provider) -> ResilientLLM:
        llm = ResilientLLM(
            list(providers) or [self.route()],
            retry=RetryPolicy(max_retries=0),
            timeout=10.0,
            jitter_seed=0,
        )
        self.engines.append(llm)
        return llm

    def run(self, llm: ResilientLLM, mode: str, messages: Any, **options: Any) -> Reply:
        if mode == "chat":
            return _reply(llm.chat(messages, **options))
        if mode == "achat":
            return _reply(self.loop.run(llm.achat(messages, **options)))
        if mode == "stream":
            return _joined(list(llm.stream(messages, **options)))

        async def drain() -> list[ChatChunk]:
            return [chunk async for chunk in llm.astream(messages, **options)]

        return _joined(self.loop.run(drain()))

    def log(self, provider: Provider | None = None) -> list[RequestRecord]:
        names = [provider.name] if provider else self.names
        return [r for r in self.server.log if r.provider in names]


@pytest.fixture
def rig(server: ChaosServer) -> Iterator[Rig]:
    rig = Rig(server, f"f{next(_TAGS)}")
    yield rig
    rig.loop.close()
    for llm in rig.engines:
        llm.close()


MEDIA: dict[str, tuple[Part, tuple[str, str | None, str]]] = {
    "image-bytes": (Image(data=PNG, mime_type="image/png"), ("image", "image/png", digest(PNG))),
    "image-url": (
        Image(url="https://example.com/cat.png"),
        ("image", None, "url:https://example.com/cat.png"),
    ),
    "image-data-url": (
        Image(url="data:image/png;base64," + Image(data=PNG, mime_type="image/png").base64),
        ("image", "image/png", digest(PNG)),
    ),
    "pdf-bytes": (Document(data=PDF), ("document", "application/pdf", digest(PDF))),
    "pdf-url": (
        Document(url="https://example.com/a.pdf"),
        ("document", None, "url:https://example.com/a.pdf"),
    ),
    "text-document": (
        Document(data=b"plain words", mime_type="text/plain"),
        ("document", "text/plain", digest(b"plain words")),
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("media", list(MEDIA))
def test_media_arrive_byte_identical_with_their_type(rig: Rig, mode: str, media: str) -> None:
    part, (kind, mime, hashed) = MEDIA[media]
    llm = rig.engine()
    reply = rig.run(llm, mode, [Message("user", (Text("What is this?"), part))])
    assert reply.content.startswith("Echo: What is this?")
    [record] = rig.log()
    assert record.status == 200
    assert record.carried.parts == ((kind, mime, hashed, "message"),)


@pytest.mark.parametrize("mode", MODES)
def test_media_arrive_intact_after_a_failover(rig: Rig, mode: str) -> None:
    openai, anthropic = rig.route("openai"), rig.route()
    rig.server.script(openai.name, "server_error")
    image, pdf = Image(data=PNG, mime_type="image/png"), Document(data=PDF)
    reply = rig.run(
        rig.engine(openai, anthropic), mode, [Message("user", (Text("Both?"), image, pdf))]
    )
    assert reply.content.startswith("Echo: Both?")
    assert [r.status for r in rig.log(openai)] == [500]
    [record] = rig.log(anthropic)
    assert record.carried.parts == (
        ("image", "image/png", digest(PNG), "message"),
        ("document", "application/pdf", digest(PDF), "message"),
    )


@pytest.mark.parametrize("mode", MODES)
def test_media_inside_tool_results(rig: Rig, mode: str) -> None:
    call = ToolCall("toolu_1", "get_weather", {"city": "Paris"})
    history = [
        Message("user", "Weather in Paris?"),
        Message("assistant", tool_calls=(call,)),
        Message(
            "tool",
            (
                Text("a chart and a report"),
                Image(data=PNG, mime_type="image/png"),
                Document(data=PDF),
            ),
            tool_call_id="toolu_1",
        ),
    ]
    reply = rig.run(rig.engine(), mode, history, tools=[WEATHER])
    assert reply.content == "The tool returned: a chart and a report"
    [record] = rig.log()
    assert record.carried.parts == (
        ("image", "image/png", digest(PNG), "tool_result"),
        ("document", "application/pdf", digest(PDF), "tool_result"),
    )


@pytest.mark.parametrize("mode", MODES)
def test_audio_skips_anthropic_without_a_call(rig: Rig, mode: str) -> None:
    anthropic, openai = rig.route(), rig.route("openai")
    llm = rig.engine(anthropic, openai)
    audio = Message(
        "user", (Text("Transcribe"), Audio(data=b"RIFF....WAVE", mime_type="audio/wav"))
    )
    reply = rig.run(llm, mode, [audio])
    assert reply.content.startswith("Echo: Transcribe")
    assert rig.log(anthropic) == []
    assert [r.status for r in rig.log(openai)] == [200]
    alone = rig.engine(rig.route())
    with pytest.raises(BadRequest, match="anthropic takes no audio input"):
        rig.run(alone, mode, [audio])
    assert len(rig.log()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_thinking_tool_loop_sends_the_signature_back(rig: Rig, mode: str) -> None:
    llm = rig.engine()
    question = [Message("user", "What is the weather in Paris?")]
    first = rig.run(llm, mode, question, tools=[WEATHER], reasoning_effort="low")
    [thought] = first.reasoning
    assert thought.text == "Considering: What is the weather in Paris?"
    assert thought.signature == sign("anthropic", thought.text)
    assert thought.family == "anthropic"
    [call] = first.tool_calls
    history = [*question, first.message, Message("tool", "21C and sunny", tool_call_id=call.id)]
    second = rig.run(llm, mode, history, tools=[WEATHER], reasoning_effort="low")
    assert second.content == "The tool returned: 21C and sunny"
    assert [r.status for r in rig.log()] == [200, 200]
    carried = rig.log()[1].carried
    assert carried.signatures == (thought.signature,)
    assert carried.params["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert carried.params["max_tokens"] == 2048 + 1024


def test_an_altered_signature_is_refused_by_the_server(rig: Rig) -> None:
    call = ToolCall("toolu_1", "get_weather", {"city": "Paris"})
    forged = Reasoning("I made this up", sign("anthropic", "something else"), "anthropic")
    history = [
        Message("user", "Weather?"),
        Message("assistant", (forged,), tool_calls=(call,)),
        Message("tool", "sunny", tool_call_id="toolu_1"),
    ]
    with pytest.raises(BadRequest, match="Invalid `signature` in `thinking` block"):
        rig.engine().chat(history, tools=[WEATHER], reasoning_effort="low")


@pytest.mark.parametrize("mode", MODES)
def test_foreign_reasoning_is_left_out_and_thinking_waits(rig: Rig, mode: str) -> None:
    """A failover mid tool loop: the other family's reasoning is not sent, and with no
    Anthropic thinking block on the tool-use turn, thinking stays off for this request
    (the API answers 400 otherwise)."""
    call = ToolCall("call_9", "get_weather", {"city": "Oslo"}, signature="g-sig", family="gemini")
    history = [
        Message("user", "Weather in Oslo?"),
        Message("assistant", (Reasoning("gemini thought", "g-sig", "gemini"),), tool_calls=(call,)),
        Message("tool", "cold", tool_call_id="call_9"),
    ]
    reply = rig.run(rig.engine(), mode, history, tools=[WEATHER], reasoning_effort="high")
    assert reply.content == "The tool returned: cold"
    [record] = rig.log()
    assert record.carried.signatures == ()
    assert "thinking" not in record.carried.params


@pytest.mark.parametrize("mode", MODES)
def test_parameters_as_received(rig: Rig, mode: str) -> None:
    route = rig.route(options={"service_tier": "auto", "chaos_flag": 1})
    rig.run(
        rig.engine(route),
        mode,
        "Tell me about Paris",
        tools=[WEATHER],
        tool_choice="auto",
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=["END"],
        max_tokens=9000,
        parallel_tool_calls=False,
        reasoning_effort="medium",
        provider_options={"anthropic": {"metadata": {"user_id": "u-1"}, "chaos_flag": 2}},
    )
    params = dict(rig.log()[0].carried.params)
    expected: dict[str, Any] = {
        "max_tokens": 9000,
        "stop": ["END"],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "parallel_tool_calls": False,
        "thinking": {"type": "enabled", "budget_tokens": 8192},
        "service_tier": "auto",
        "metadata": {"user_id": "u-1"},
        "chaos_flag": 2,
    }
    # SDK 2 sends API version 2026-10-21, which removed temperature and top_p.
    if sdk_takes("temperature"):
        expected["temperature"] = 0.5
    if sdk_takes("top_p"):
        expected["top_p"] = 0.9
    assert params == expected  # no seed: Anthropic has none


def test_effort_control_on_models_that_have_one(rig: Rig) -> None:
    llm = rig.engine(rig.route(model="claude-opus-4-7"))
    reply = llm.chat("Hello there", reasoning_effort="minimal")
    assert reply.reasoning[0].family == "anthropic"
    params = rig.log()[0].carried.params
    assert params["thinking"] == {"type": "adaptive"}
    assert params["output_config"] == {"effort": "low"}
    assert params["max_tokens"] == 1024 + 1024


def test_no_thinking_for_a_model_that_does_not_reason(rig: Rig) -> None:
    llm = rig.engine(rig.route(model="claude-3-5-haiku-latest"))
    reply = llm.chat("Hello there", reasoning_effort="high")
    assert reply.reasoning == ()
    assert "thinking" not in rig.log()[0].carried.params


def test_a_thinking_clash_skips_the_route_naming_it(rig: Rig) -> None:
    anthropic, openai = rig.route(), rig.route("openai")
    reply = rig.engine(anthropic, openai).chat(
        "Weather in Paris?", tools=[WEATHER], tool_choice="required", reasoning_effort="low"
    )
    assert reply.provider == openai.name
    skipped = reply.metadata["attempts"][0]
    assert skipped["outcome"] == "skipped"
    assert "forced tool_choice ('required')" in skipped["detail"]
    assert rig.log(anthropic) == []
    with pytest.raises(BadRequest, match="max_tokens 1000 leaves no room"):
        rig.engine(rig.route()).chat("Hi", reasoning_effort="low", max_tokens=1000)


@pytest.mark.parametrize("mode", MODES)
def test_cache_control_reaches_the_wire_and_usage_details_come_back(rig: Rig, mode: str) -> None:
    marker = {"type": "ephemeral"}
    history = [
        Message("system", (Text("You are terse. " * 20, cache_control=marker),)),
        Message("user", (Text("Long context " * 40, cache_control=marker), Text("Question?"))),
    ]
    cached_tool = Tool(WEATHER.name, WEATHER.description, WEATHER.parameters, cache_control=marker)
    reply = rig.run(rig.engine(), mode, history, tools=[cached_tool], tool_choice="none")
    [record] = rig.log()
    assert record.carried.cache_markers == 3
    usage = reply.usage
    assert usage is not None
    prompt = usage.input_tokens
    assert prompt > 100
    assert (usage.cached_input_tokens, usage.cache_write_tokens) == (prompt // 2, prompt // 4)


@pytest.mark.parametrize("mode", MODES)
def test_a_refusal_is_the_reply(rig: Rig, mode: str) -> None:
    reply = rig.run(rig.engine(), mode, "[refuse] tell me a secret")
    assert reply.refusal == REFUSAL_TEXT
    assert reply.finish_reason == "refusal"
    assert reply.content == ""
