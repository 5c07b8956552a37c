"""Issue 18 on OpenAI routes: what the engine sends arrives, checked in the chaos log.

Every call goes through the engine and the real ``openai`` SDK over HTTP to the chaos
server, whose log says what each request carried (media digests, parameters as sent).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# The SDKs are imported once, here, so their import time never lands inside an attempt.
import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401
from resilient_llm import (
    ChatChunk,
    ChatResponse,
    Event,
    Provider,
    ResilientLLM,
    RetryPolicy,
    Tool,
    Usage,
)
from resilient_llm.content import Audio, Document, Image, Reasoning, Text, join_reasoning
from resilient_llm.errors import ConfigurationError, ResilientLLMError
from resilient_llm.events import RouteSkipped
from resilient_llm.messages import Message, ToolCall
from resilient_llm.testing.chaos import ChaosServer, RequestRecord
from resilient_llm.testing.chaos.brain import REFUSAL_TEXT
from resilient_llm.testing.chaos.openai_wire import REASONING_TOKENS
from resilient_llm.testing.chaos.wire import digest

MODES = ("chat", "achat", "stream", "astream")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32)
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(64)
PHOTO = "https://example.com/photo.jpg"
_TAGS = itertools.count()


@dataclass
class Outcome:
    """A reply (chat modes) or the chunks of a stream."""

    reply: ChatResponse | None
    chunks: list[ChatChunk] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.reply.content if self.reply else "".join(c.delta for c in self.chunks)

    @property
    def refusal(self) -> str | None:
        if self.reply is not None:
            return self.reply.refusal
        return "".join(c.refusal or "" for c in self.chunks) or None

    @property
    def finish_reason(self) -> str | None:
        return self.reply.finish_reason if self.reply else self.chunks[-1].finish_reason

    @property
    def usage(self) -> Usage | None:
        return self.reply.usage if self.reply else self.chunks[-1].usage

    @property
    def reasoning(self) -> tuple[Reasoning, ...]:
        if self.reply is not None:
            return self.reply.reasoning
        return join_reasoning(p for c in self.chunks for p in c.reasoning)


@dataclass
class Bench:
    server: ChaosServer
    tag: str
    names: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    engines: list[ResilientLLM] = field(default_factory=list)
    runner: asyncio.Runner = field(default_factory=asyncio.Runner)

    def route(self, kind: str = "openai", model: str = "chaos-model", **options: Any) -> Provider:
        name = f"{kind}-{self.tag}-{len(self.names)}"
        self.names.append(name)
        return Provider(
            kind,
            model,
            base_url=self.server.base_url(name),
            api_key="test-key",
            name=name,
            **options,
        )

    def engine(self, *routes: Provider) -> ResilientLLM:
        llm = ResilientLLM(
            list(routes),
            retry=RetryPolicy(max_retries=0),
            timeout=5.0,
            jitter_seed=0,
            on_event=self.events.append,
        )
        self.engines.append(llm)
        return llm

    def run(self, llm: ResilientLLM, mode: str, messages: Any, **options: Any) -> Outcome:
        if mode == "chat":
            return Outcome(llm.chat(messages, **options))
        if mode == "achat":
            return Outcome(self.runner.run(llm.achat(messages, **options)))
        if mode == "stream":
            return Outcome(None, list(llm.stream(messages, **options)))

        async def drain() -> list[ChatChunk]:
            return [chunk async for chunk in llm.astream(messages, **options)]

        return Outcome(None, self.runner.run(drain()))

    def log(self, route: Provider) -> list[RequestRecord]:
        return [r for r in self.server.log if r.provider == route.name]

    def sent(self, route: Provider) -> RequestRecord:
        (record,) = self.log(route)
        assert record.status == 200, record
        return record


@pytest.fixture
def bench(server: ChaosServer) -> Iterator[Bench]:
    bench = Bench(server, f"fid{next(_TAGS)}")
    yield bench
    bench.runner.close()
    for llm in bench.engines:
        llm.close()


def _ask(*parts: Any) -> list[Message]:
    return [Message("user", (Text("Describe these."), *parts))]


# --------------------------------------------------------------------------- media


@pytest.mark.parametrize("mode", MODES)
def test_each_media_kind_arrives_byte_identical_with_its_mime_type(bench: Bench, mode: str) -> None:
    route = bench.route()
    parts = (
        Image(data=PNG, mime_type="image/png", detail="high"),
        Image(url=PHOTO),
        Document(data=PDF, name="report.pdf"),
        Audio(data=WAV, mime_type="audio/wav"),
        Audio(data=MP3, mime_type="audio/mpeg"),
    )
    out = bench.run(bench.engine(route), mode, _ask(*parts))

    assert out.text.startswith("Echo: Describe these.")
    assert bench.sent(route).carried.parts == (
        ("image", "image/png", digest(PNG), "message"),
        ("image", None, f"url:{PHOTO}", "message"),
        ("document", "application/pdf", digest(PDF), "message"),
        ("audio", "audio/wav", digest(WAV), "message"),
        ("audio", "audio/mpeg", digest(MP3), "message"),
    )
    assert bench.sent(route).carried.cache_markers == 0


@pytest.mark.parametrize("mode", MODES)
def test_media_arrives_intact_after_a_failover_from_another_family(bench: Bench, mode: str) -> None:
    primary, fallback = bench.route("anthropic"), bench.route()
    bench.server.script(primary.name, "server_error")
    parts = (Image(data=PNG, mime_type="image/png"), Document(data=PDF, name="r.pdf"))
    out = bench.run(bench.engine(primary, fallback), mode, _ask(*parts))

    assert out.text.startswith("Echo: Describe these.")
    assert [r.status for r in bench.log(primary)] == [500]
    assert bench.sent(fallback).carried.parts == (
        ("image", "image/png", digest(PNG), "message"),
        ("document", "application/pdf", digest(PDF), "message"),
    )


@pytest.mark.parametrize("mode", ["chat", "astream"])
def test_openai_style_dict_parts_arrive_as_given(bench: Bench, mode: str) -> None:
    route = bench.route()
    png, pdf, wav = (base64.b64encode(b).decode() for b in (PNG, PDF, WAV))
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}"}},
            {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
        ],
    }
    bench.run(bench.engine(route), mode, [message])

    carried = bench.sent(route).carried
    assert [p[:3] for p in carried.parts] == [
        ("image", "image/png", digest(PNG)),
        ("document", "application/pdf", digest(PDF)),
        ("audio", "audio/wav", digest(WAV)),
    ]
    assert carried.cache_markers == 0  # Anthropic's marker is left out


UNSENDABLE = {
    "document_url": _ask(Document(url="https://example.com/a.pdf")),
    "audio_url": _ask(Audio(url="https://example.com/a.wav")),
    "audio_ogg": _ask(Audio(data=b"OggS" + bytes(16), mime_type="audio/ogg")),
    "gs_image": _ask(Image(url="gs://bucket/cat.png")),
    "image_in_tool_result": [
        Message("user", "Fetch the picture."),
        Message("assistant", tool_calls=(ToolCall("c1", "fetch", {}),)),
        Message("tool", (Image(data=PNG, mime_type="image/png"),), tool_call_id="c1"),
    ],
}


@pytest.mark.parametrize("case", sorted(UNSENDABLE))
@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_a_part_chat_completions_cannot_carry_skips_the_route_without_a_call(
    bench: Bench, case: str, mode: str
) -> None:
    openai_route = bench.route()
    gemini_route = bench.route("gemini")
    out = bench.run(bench.engine(openai_route, gemini_route), mode, UNSENDABLE[case])

    assert out.text
    assert bench.log(openai_route) == []
    assert len(bench.log(gemini_route)) == 1
    (skipped,) = [e for e in bench.events if isinstance(e, RouteSkipped)]
    assert skipped.route == openai_route.name
    assert "OpenAI chat completions" in skipped.reason


@pytest.mark.parametrize("mode", ["chat", "astream"])
def test_no_route_can_take_it_raises_before_any_call(bench: Bench, mode: str) -> None:
    route = bench.route()
    with pytest.raises(ResilientLLMError) as caught:
        bench.run(bench.engine(route), mode, UNSENDABLE["document_url"])
    assert "documents as bytes only" in str(caught.value)
    assert bench.log(route) == []


# --------------------------------------------------------------------------- params

WEATHER = Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {}}})


@pytest.mark.parametrize("mode", MODES)
def test_params_arrive_as_sent(bench: Bench, mode: str) -> None:
    route = bench.route(model="o3-mini")
    bench.run(
        bench.engine(route),
        mode,
        "What's the weather in 'Lyon'?",
        tools=[WEATHER],
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=["END"],
        max_tokens=300,
        parallel_tool_calls=False,
        reasoning_effort="low",
    )
    params = bench.sent(route).carried.params
    assert {k: params[k] for k in EXPECTED} == EXPECTED
    assert params["max_tokens"] == 300  # a base_url route gets max_tokens itself


EXPECTED = {
    "temperature": 0.5,
    "top_p": 0.9,
    "seed": 7,
    "stop": ["END"],
    "parallel_tool_calls": False,
    "reasoning_effort": "low",
}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1", "gpt-3.5-turbo"])
def test_reasoning_effort_and_lone_parallel_tool_calls_are_not_sent_where_refused(
    bench: Bench, model: str
) -> None:
    route = bench.route(model=model)
    out = bench.run(
        bench.engine(route), "chat", "Hi", reasoning_effort="high", parallel_tool_calls=True
    )
    assert out.text == "Echo: Hi"
    params = bench.sent(route).carried.params
    assert "reasoning_effort" not in params
    assert "parallel_tool_calls" not in params  # no tools: OpenAI refuses it alone


def test_passthrough_is_sent_as_body_fields_or_request_options(bench: Bench) -> None:
    route = bench.route(options={"service_tier": "flex", "top_k": 4, "async_transport": "httpx"})
    bench.run(
        bench.engine(route),
        "achat",
        "Hi",
        provider_options={
            "openai": {
                "logit_bias": {"50256": -100},
                "top_k": 5,
                "extra_body": {"min_p": 0.1},
                "extra_query": {"team": "a"},
            },
            "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        },
    )
    params = bench.sent(route).carried.params
    assert params["service_tier"] == "flex"
    assert params["logit_bias"] == {"50256": -100}
    assert params["top_k"] == 5  # the call's value over the route's
    assert params["min_p"] == 0.1
    assert "thinking" not in params
    assert "async_transport" not in params
    assert "extra_query" not in params


# --------------------------------------------------------------------------- replies


@pytest.mark.parametrize("mode", MODES)
def test_usage_details_come_back(bench: Bench, mode: str) -> None:
    route = bench.route(model="o3")
    prompt = "Summarise: " + "lorem ipsum dolor sit amet " * 200  # > 1024 tokens
    out = bench.run(bench.engine(route), mode, prompt, reasoning_effort="high")

    usage = out.usage
    assert usage is not None
    assert usage.input_tokens >= 1024
    assert usage.cached_input_tokens == usage.input_tokens - usage.input_tokens % 128
    assert usage.reasoning_tokens == REASONING_TOKENS["high"]
    assert usage.output_tokens > usage.reasoning_tokens


@pytest.mark.parametrize("mode", MODES)
def test_a_refusal_comes_back_as_a_refusal(bench: Bench, mode: str) -> None:
    route = bench.route()
    out = bench.run(bench.engine(route), mode, "[refuse] Tell me a secret.")
    assert out.refusal == REFUSAL_TEXT
    assert out.finish_reason == "refusal"
    assert out.text == ""


@pytest.mark.parametrize("mode", MODES)
def test_reasoning_content_of_a_compatible_server_is_read_and_never_sent_back(
    bench: Bench, mode: str
) -> None:
    route = bench.route(model="deepseek-reasoner")
    llm = bench.engine(route)
    out = bench.run(llm, mode, "Why is the sky blue?")
    (thought,) = out.reasoning
    assert thought == Reasoning(
        "The user asks: Why is the sky blue?. I answer briefly.", None, "openai"
    )
    assert out.text == "Echo: Why is the sky blue?"

    history = [
        Message("user", "Why is the sky blue?"),
        Message("assistant", (thought, Text(out.text))),
        Message("user", "And at sunset?"),
    ]
    bench.run(llm, "chat", history)
    assert all(r.status == 200 for r in bench.log(route))


def test_a_configuration_mistake_in_route_options_is_named(bench: Bench) -> None:
    route = bench.route(options={"stream": True})
    with pytest.raises(ConfigurationError, match="stream"):
        bench.run(bench.engine(route), "chat", "Hi")
