"""Full fidelity on Gemini routes: through the engine and the real google-genai SDK over
HTTP to the chaos server, checked in what the server says each request carried."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from resilient_llm import ChatChunk, ChatResponse, Provider, ResilientLLM, RetryPolicy
from resilient_llm.content import Audio, Document, Image, Reasoning, Text, join_reasoning
from resilient_llm.errors import ConfigurationError, ResilientLLMError
from resilient_llm.messages import Message, Tool, ToolCall
from resilient_llm.testing.chaos import ChaosServer, RequestRecord
from resilient_llm.testing.chaos.signing import sign
from resilient_llm.testing.chaos.wire import digest

MODES = ("chat", "achat", "stream", "astream")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
PDF = b"%PDF-1.4\n" + bytes(range(255, -1, -1))
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
_TAGS = itertools.count()


def _route(server: ChaosServer, kind: str, model: str, tag: int, **options: Any) -> Provider:
    name = f"{kind}-fid{tag}"
    return Provider(
        kind,  # type: ignore[arg-type]
        model,
        base_url=server.base_url(name),
        api_key="test-key",
        name=name,
        **options,
    )


class Bench:
    """An engine over chaos routes; its log is the last route's (the Gemini one)."""

    def __init__(self, server: ChaosServer, *providers: Provider) -> None:
        self.server = server
        self.name = providers[-1].name
        self.llm = ResilientLLM(list(providers), retry=RetryPolicy(max_retries=0), jitter_seed=0)

    def run(self, mode: str, messages: Any, **options: Any) -> ChatResponse:
        """One call in ``mode``; a stream's chunks are folded into a reply."""
        if mode == "chat":
            return self.llm.chat(messages, **options)
        if mode == "achat":
            return asyncio.run(self.llm.achat(messages, **options))
        if mode == "stream":
            return _fold(list(self.llm.stream(messages, **options)))

        async def drain() -> list[ChatChunk]:
            return [c async for c in self.llm.astream(messages, **options)]

        return _fold(asyncio.run(drain()))

    def log(self) -> list[RequestRecord]:
        return [r for r in self.server.log if r.provider == self.name]

    def close(self) -> None:
        self.llm.close()


def _fold(chunks: list[ChatChunk]) -> ChatResponse:
    last = chunks[-1]
    return ChatResponse(
        content="".join(c.delta for c in chunks),
        provider=last.provider,
        model=last.model,
        tool_calls=tuple(call for c in chunks for call in c.tool_calls),
        usage=last.usage,
        finish_reason=last.finish_reason,
        refusal="".join(c.refusal or "" for c in chunks) or None,
        reasoning=join_reasoning(piece for c in chunks for piece in c.reasoning),
    )


@pytest.fixture
def bench(server: ChaosServer) -> Iterator[Any]:
    made: list[Bench] = []

    def make(model: str = "chaos-model", **options: Any) -> Bench:
        made.append(Bench(server, _route(server, "gemini", model, next(_TAGS), **options)))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.mark.parametrize("mode", MODES)
def test_gemini_media_bytes_and_urls_arrive_byte_identical(bench: Any, mode: str) -> None:
    route = bench()
    content = (
        Text("Describe these."),
        Image(data=PNG, mime_type="image/png"),
        Document(data=PDF),
        Audio(data=WAV, mime_type="audio/wav"),
        Image(url="https://example.com/cat.jpg"),
        Document(url="gs://bucket/report.pdf"),
        Audio(url="https://example.com/talk.mp3"),
    )
    reply = route.run(mode, [Message("user", content)])
    assert reply.content.startswith("Echo: Describe these.")
    assert route.log()[-1].carried.parts == (
        ("image", "image/png", digest(PNG), "message"),
        ("document", "application/pdf", digest(PDF), "message"),
        ("audio", "audio/wav", digest(WAV), "message"),
        ("image", "image/jpeg", "url:https://example.com/cat.jpg", "message"),
        ("document", "application/pdf", "url:gs://bucket/report.pdf", "message"),
        ("audio", "audio/mpeg", "url:https://example.com/talk.mp3", "message"),
    )


def _tool_history(result: tuple[Any, ...], signature: str | None = None) -> list[Message]:
    family = None if signature is None else "gemini"
    call = ToolCall("c1", "get_weather", {"city": "Oslo"}, signature=signature, family=family)
    return [
        Message("user", "Weather in Oslo?"),
        Message("assistant", tool_calls=(call,)),
        Message("tool", (Text('{"temp": 3}'), *result), tool_call_id="c1"),
    ]


@pytest.mark.parametrize(
    ("model", "where"),
    [("gemini-3-flash-preview", "inside"), ("gemini-2.5-flash", "beside")],
)
@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_gemini_media_in_tool_results(bench: Any, model: str, where: str, mode: str) -> None:
    """A Gemini 3 model takes image and PDF bytes inside the function response; other
    models, and URLs or audio on any, get them beside it in the same user turn."""
    route = bench(model)
    result = (
        Image(data=PNG, mime_type="image/png"),
        Document(data=PDF),
        Audio(data=WAV, mime_type="audio/wav"),
    )
    reply = route.run(mode, _tool_history(result), tools=[WEATHER])
    assert reply.content.startswith("The tool returned:")
    record = route.log()[-1]
    assert record.carried.parts == (
        ("image", "image/png", digest(PNG), "tool_result"),
        ("document", "application/pdf", digest(PDF), "tool_result"),
        ("audio", "audio/wav", digest(WAV), "tool_result"),
    )
    # The placeholder a Gemini 3 model needs for a call it did not sign.
    assert record.carried.signatures == (
        ("skip_thought_signature_validator",) if model.startswith("gemini-3") else ()
    )


@pytest.mark.parametrize("mode", MODES)
def test_gemini_3_tool_loop_sends_the_signature_back_as_received(bench: Any, mode: str) -> None:
    route = bench("gemini-3-pro-preview")
    question = [Message("user", "What is the weather in 'Oslo'?")]
    first = route.run(mode, question, tools=[WEATHER])
    (call,) = first.tool_calls
    assert (call.name, call.family) == ("get_weather", "gemini")
    assert call.signature is not None
    issued = base64.b64decode(call.signature).decode()
    assert issued.startswith("chaos-gemini-")
    history = [*question, first.message, Message("tool", '{"temp": 3}', tool_call_id=call.id)]
    second = route.run(mode, history, tools=[WEATHER])
    assert second.content.startswith("The tool returned:")
    record = route.log()[-1]
    assert record.status == 200
    assert record.carried.signatures == (issued,)
    # The answer's text is signed too (the last text part), kept for the next turn.
    assert [r.text for r in second.reasoning] == [""]
    assert second.reasoning[0].family == "gemini"


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_gemini_3_history_from_another_family_gets_the_placeholder(bench: Any, mode: str) -> None:
    """A mid-conversation failover: the calls another family made carry no gemini
    signature (theirs are left out), and Gemini 3 takes Google's placeholder for them."""
    route = bench("gemini-3-flash-preview")
    foreign = ToolCall("t1", "get_weather", {"city": "Oslo"}, signature="sig-x", family="claude")
    history = [
        Message("user", "Weather in Oslo?"),
        Message(
            "assistant",
            (Reasoning("pondering", "anthropic-sig", "anthropic"), Text("Checking.")),
            tool_calls=(foreign,),
        ),
        Message("tool", '{"temp": 3}', tool_call_id="t1"),
    ]
    reply = route.run(mode, history, tools=[WEATHER])
    assert reply.content.startswith("The tool returned:")
    assert route.log()[-1].carried.signatures == ("skip_thought_signature_validator",)


def test_gemini_3_rejects_a_signature_it_did_not_issue(bench: Any) -> None:
    route = bench("gemini-3-pro-preview")
    forged = base64.b64encode(sign("anthropic", "x").encode()).decode()
    call = ToolCall("c1", "get_weather", {"city": "Oslo"}, signature=forged, family="gemini")
    history = [
        Message("user", "Weather in Oslo?"),
        Message("assistant", tool_calls=(call,)),
        Message("tool", '{"temp": 3}', tool_call_id="c1"),
    ]
    with pytest.raises(ResilientLLMError, match="Corrupted thought signature"):
        route.run("chat", history, tools=[WEATHER])
    assert route.log()[-1].status == 400


@pytest.mark.parametrize("mode", MODES)
def test_gemini_params_as_received(bench: Any, mode: str) -> None:
    route = bench("gemini-2.5-flash", options={"top_k": 7})
    route.run(
        mode,
        "Hello",
        temperature=0.3,
        top_p=0.9,
        seed=42,
        stop=["END"],
        max_tokens=300,
        parallel_tool_calls=False,
        reasoning_effort="low",
        provider_options={"gemini": {"candidateCount": 1}, "openai": {"logprobs": True}},
    )
    params = dict(route.log()[-1].carried.params)
    assert params == {
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["END"],
        "max_tokens": 300,
        "thinking_config": {"include_thoughts": True, "thinking_budget": 1024},
        "top_k": 7,
        "candidate_count": 1,
    }


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-3-flash-preview", "minimal", {"thinking_level": "MINIMAL"}),
        ("gemini-3-pro-preview", "minimal", {"thinking_level": "LOW"}),
        ("gemini-3-pro-preview", "medium", {"thinking_level": "HIGH"}),
        ("gemini-3.1-pro-preview", "medium", {"thinking_level": "MEDIUM"}),
        ("gemini-2.5-flash", "minimal", {"thinking_budget": 0}),
        ("gemini-2.5-pro", "minimal", {"thinking_budget": 128}),
        ("gemini-2.5-pro", "high", {"thinking_budget": 24576}),
        ("gemini-2.0-flash", "high", None),
    ],
)
def test_gemini_reasoning_effort_as_thinking_config(
    bench: Any, model: str, effort: str, thinking: dict[str, Any] | None
) -> None:
    route = bench(model)
    route.run("chat", "Hello", reasoning_effort=effort)
    params = route.log()[-1].carried.params
    expected = None if thinking is None else {"include_thoughts": True, **thinking}
    assert params.get("thinking_config") == expected


def test_gemini_unknown_passthrough_is_named(bench: Any) -> None:
    route = bench(options={"thinking": {"type": "enabled"}})
    with pytest.raises(ConfigurationError, match="'thinking' is not a GenerateContentConfig"):
        route.run("chat", "Hello")
    assert route.log() == []


@pytest.mark.parametrize("mode", MODES)
def test_gemini_thoughts_and_usage_details(bench: Any, mode: str) -> None:
    route = bench("gemini-3-flash-preview")
    prompt = "Tell me about Paris. " + "context " * 600
    reply = route.run(mode, prompt, reasoning_effort="high")
    thought, signed = reply.reasoning if mode in ("chat", "achat") else (reply.reasoning[0], None)
    assert thought.text.startswith("Thinking about: Tell me about Paris.")
    assert thought.family == "gemini"
    if signed is not None:
        assert (signed.text, signed.family) == ("", "gemini")
        assert signed.signature is not None
    usage = reply.usage
    assert usage is not None
    assert usage.reasoning_tokens > 0
    assert usage.input_tokens >= 1024
    assert usage.cached_input_tokens == usage.input_tokens // 1024 * 1024
    answer_tokens = -(-len(reply.content) // 4)
    assert usage.output_tokens == answer_tokens + usage.reasoning_tokens


def test_gemini_reply_message_round_trips_its_parts(bench: Any) -> None:
    """A reply's ``.message`` sent back carries each signature on the part it came on."""
    route = bench("gemini-3-flash-preview")
    first = route.run("chat", "Tell me about Paris.", reasoning_effort="low")
    thought, signed = first.reasoning
    assert thought.text
    assert signed.signature is not None
    history = [Message("user", "Tell me about Paris."), first.message, Message("user", "Lyon?")]
    route.run("chat", history)
    issued = base64.b64decode(signed.signature).decode()
    assert route.log()[-1].carried.signatures == (issued,)


@pytest.mark.parametrize("mode", MODES)
def test_gemini_refusal(bench: Any, mode: str) -> None:
    route = bench()
    reply = route.run(mode, "[refuse] Tell me how.")
    assert (reply.finish_reason, reply.refusal, reply.content) == (
        "refusal",
        "blocked: SAFETY",
        "",
    )


@pytest.mark.parametrize("mode", MODES)
def test_gemini_3_takes_over_a_tool_loop_another_family_started(
    server: ChaosServer, mode: str
) -> None:
    """OpenAI made the call; it then fails, and the Gemini 3 fallback answers the tool
    result: its history holds a call with no gemini signature, sent with the placeholder."""
    tag = next(_TAGS)
    primary = _route(server, "openai", "gpt-4o", tag)
    route = Bench(server, primary, _route(server, "gemini", "gemini-3-flash-preview", tag))
    names = (primary.name, route.name)
    try:
        question = [Message("user", "What is the weather in 'Oslo'?")]
        first = route.run(mode, question, tools=[WEATHER])
        assert first.provider == names[0]
        (call,) = first.tool_calls
        server.script(names[0], "server_error")
        history = [*question, first.message, Message("tool", '{"t": 3}', tool_call_id=call.id)]
        second = route.run(mode, history, tools=[WEATHER])
        assert second.provider == names[1]
        assert second.content.startswith("The tool returned:")
        assert route.log()[-1].carried.signatures == ("skip_thought_signature_validator",)
    finally:
        route.close()


def test_gemini_route_skipped_for_a_url_of_unknown_type(bench: Any) -> None:
    route = bench()
    with pytest.raises(ResilientLLMError, match="type cannot be told"):
        route.run("chat", [Message("user", (Text("see"), Image(url="https://x.test/pic")))])
    assert route.log() == []


def test_gemini_passthrough_values_are_checked_before_a_call(bench: Any) -> None:
    route = bench()
    with pytest.raises(ConfigurationError, match="do not validate"):
        route.run("chat", "Hello", provider_options={"gemini": {"top_k": "many"}})
    route.run(
        "chat", "Hello", provider_options={"gemini": {"thinkingConfig": {"thinkingBudget": 5}}}
    )
    assert route.log()[-1].carried.params["thinking_config"] == {"thinking_budget": 5}
