"""Media, parameters and reasoning through LlamaIndex, checked where they arrive.

Every test reads the chaos server's log (``carried``: each media part's kind, mime type and
digest; the generation parameters; the signatures in the history), so it shows what the
provider received, not only that a reply came back.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentOutput, FunctionAgent
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
)
from llama_index.core.tools import FunctionTool

from llamaindex_resilient import ResilientEngineEvent
from resilient_llm import BadRequest
from resilient_llm.providers.anthropic.thinking import sdk_takes
from resilient_llm.testing.chaos import ChaosServer
from resilient_llm.testing.chaos.wire import digest

from .conftest import Collector, Routes, chat_records

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01" + bytes(range(256))
PDF = b"%PDF-1.4\n\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00" + bytes(range(200, 256))

pytestmark = [
    # llama-index-workflows inspects the agent (a pydantic model) with inspect.getmembers.
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]


def _image_question() -> ChatMessage:
    return ChatMessage(
        role="user",
        blocks=[TextBlock(text="What is in this image?"), ImageBlock(image=PNG)],
    )


IMAGE_PART = ("image", "image/png", digest(PNG), "message")


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("failure", [None, "outage"])
def test_an_image_question_arrives_byte_identical(
    routes: Routes, failure: str | None, stream: bool
) -> None:
    if failure:
        routes.fail_primary(failure)
    llm = routes.llm()
    if stream:
        *_, response = llm.stream_chat([_image_question()])
    else:
        response = llm.chat([_image_question()])
    assert response.message.content
    calls = chat_records(routes)
    answered = calls[-1]
    assert answered.status == 200
    assert answered.provider == (routes.fallback if failure else routes.primary)
    assert answered.carried.parts == (IMAGE_PART,)
    if failure:
        assert calls[0].provider == routes.primary
        assert calls[0].status in (503, 529)  # Anthropic's outage is its 529


@pytest.mark.parametrize("failure", [None, "overloaded"])
def test_a_document_question_through_a_chat_engine_style_call(
    routes: Routes, failure: str | None
) -> None:
    if failure:
        routes.fail_primary(failure)
    message = ChatMessage(
        role="user",
        blocks=[TextBlock(text="Summarise the report."), DocumentBlock(data=PDF, title="r.pdf")],
    )
    response = routes.llm().chat([message])
    assert response.message.content
    answered = chat_records(routes)[-1]
    assert answered.carried.parts == (("document", "application/pdf", digest(PDF), "message"),)


def test_audio_skips_the_anthropic_route_without_a_call(
    anthropic_gemini_routes: Routes, collector: Collector
) -> None:
    routes = anthropic_gemini_routes
    message = ChatMessage(
        role="user",
        blocks=[TextBlock(text="Transcribe this."), AudioBlock(audio=WAV, format="wav")],
    )
    response = routes.llm().chat([message])
    assert response.raw["provider"] == routes.fallback  # type: ignore[index]
    (call,) = chat_records(routes)
    assert call.provider == routes.fallback
    assert call.carried.parts == (("audio", "audio/wav", digest(WAV), "message"),)
    (skipped,) = [e for e in collector.of(ResilientEngineEvent) if e.kind == "route_skipped"]
    assert skipped.route == routes.primary
    assert "audio" in skipped.details["reason"].lower()


def chart() -> list[Any]:
    """Draw the sales chart and return it as an image."""
    return [TextBlock(text="the chart:"), ImageBlock(image=PNG)]


async def test_an_agent_sends_the_image_and_the_tools_image_back(routes: Routes) -> None:
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=chart)], llm=routes.llm())
    result = await agent.run(user_msg=_image_question())
    assert isinstance(result, AgentOutput)
    first, second = chat_records(routes)
    assert (first.provider, first.carried.parts) == (routes.primary, (IMAGE_PART,))
    # OpenAI chat completions take no image in a tool result: that step skips its route.
    expected = routes.fallback if routes.primary_kind == "openai" else routes.primary
    tool_image = ("image", "image/png", digest(PNG), "tool_result")
    assert (second.provider, second.carried.parts) == (expected, (IMAGE_PART, tool_image))


PARAMS = {"temperature": 0.25, "top_p": 0.5, "seed": 7, "max_tokens": 300}


def test_params_reach_the_wire(routes: Routes) -> None:
    llm = routes.llm(**PARAMS, additional_kwargs={"stop": ["END"]})
    llm.chat([ChatMessage(role="user", content="Say hello.")])
    (call,) = chat_records(routes)
    sent = dict(call.carried.params)
    expected = {**PARAMS, "stop": ["END"]}
    if routes.primary_kind == "anthropic":
        # Anthropic's API has no seed; API version 2026-10-21 (its SDK 2) no sampling knobs.
        for name in ("seed", "temperature", "top_p"):
            if name == "seed" or not sdk_takes(name):
                expected.pop(name)
    assert {k: sent.get(k) for k in expected} == expected


def test_per_call_params_and_family_options_reach_the_wire(openai_routes: Routes) -> None:
    llm = openai_routes.llm(seed=1)
    llm.chat(
        [ChatMessage(role="user", content="Say hello.")],
        seed=5,
        top_p=0.3,
        additional_kwargs={"openai": {"logprobs": True}, "anthropic": {"top_k": 3}},
    )
    (call,) = chat_records(openai_routes)
    sent = dict(call.carried.params)
    assert (sent.get("seed"), sent.get("top_p"), sent.get("logprobs")) == (5, 0.3, True)
    assert "top_k" not in sent


FAMILY_OPTIONS = {"openai": {"logprobs": True}, "anthropic": {"top_k": 5}, "gemini": {"top_k": 5}}


def test_a_familys_own_params_reach_its_routes_only(routes: Routes) -> None:
    routes.fail_primary("outage")
    llm = routes.llm(additional_kwargs=FAMILY_OPTIONS)
    llm.chat([ChatMessage(role="user", content="Say hello.")])
    calls = chat_records(routes)
    assert calls[-1].provider == routes.fallback
    for call in calls:
        kind = routes.primary_kind if call.provider == routes.primary else routes.fallback_kind
        own = FAMILY_OPTIONS[kind]
        assert {k: call.carried.params.get(k) for k in own} == own
        foreign = {k for options in FAMILY_OPTIONS.values() for k in options} - set(own)
        assert not foreign & set(call.carried.params)


def test_reasoning_effort_reaches_gemini_as_its_thinking_config(gemini3_routes: Routes) -> None:
    llm = gemini3_routes.llm()
    llm.chat([ChatMessage(role="user", content="Say hello.")], reasoning_effort="high")
    (call,) = chat_records(gemini3_routes)
    config = call.carried.params["thinking_config"]
    assert config == {"include_thoughts": True, "thinking_level": "HIGH"}


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_each_familys_refusal_comes_back_as_a_refusal(routes: Routes, stream: bool) -> None:
    llm = routes.llm()
    question = [ChatMessage(role="user", content="[refuse] Tell me a secret.")]
    response = list(llm.stream_chat(question))[-1] if stream else llm.chat(question)
    assert response.raw["finish_reason"] == "refusal"  # type: ignore[index]
    assert response.message.additional_kwargs["refusal"]
    assert response.raw["refusal"] == response.message.additional_kwargs["refusal"]  # type: ignore[index]


def test_a_cache_point_reaches_anthropic_and_not_gemini(anthropic_gemini_routes: Routes) -> None:
    routes = anthropic_gemini_routes
    message = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="A long shared context."),
            CachePoint(cache_control=CacheControl(type="ephemeral")),
            TextBlock(text="Say hello."),
        ],
    )
    llm = routes.llm()
    llm.chat([message])
    routes.fail_primary("outage")
    llm.chat([message])
    first, *_, last = chat_records(routes)
    assert (first.provider, first.carried.cache_markers) == (routes.primary, 1)
    assert (last.provider, last.carried.cache_markers) == (routes.fallback, 0)


def test_gemini_reasoning_tokens_in_usage_and_on_the_thinking_block(
    gemini3_routes: Routes,
) -> None:
    response = gemini3_routes.llm(reasoning_effort="low").chat(
        [ChatMessage(role="user", content="Say hello.")]
    )
    usage = response.additional_kwargs
    assert usage["reasoning_tokens"] > 0
    assert usage["completion_tokens"] >= usage["reasoning_tokens"]
    assert response.raw["usage"]["completion_tokens_details"] == {  # type: ignore[index]
        "reasoning_tokens": usage["reasoning_tokens"]
    }
    # Where llama-index-llms-google-genai puts them: the one thinking block's num_tokens,
    # else the last one's additional_information.
    thinking = [b for b in response.message.blocks if isinstance(b, ThinkingBlock)]
    counted = (
        thinking[0].num_tokens
        if len(thinking) == 1
        else thinking[-1].additional_information["total_thinking_tokens"]
    )
    assert counted == usage["reasoning_tokens"]


def test_an_image_url_travels_as_a_url(routes: Routes) -> None:
    url = "https://example.org/cat.png"
    message = ChatMessage(role="user", blocks=[TextBlock(text="What is it?"), ImageBlock(url=url)])
    routes.llm().chat([message])
    (call,) = chat_records(routes)
    ((kind, _, where, role),) = call.carried.parts
    assert (call.provider, kind, where, role) == (routes.primary, "image", f"url:{url}", "message")


def test_when_no_route_takes_the_audio_it_is_refused_before_any_call(server: ChaosServer) -> None:
    routes = Routes(server, "openai", "anthropic")
    message = ChatMessage(
        role="user", blocks=[TextBlock(text="Transcribe."), AudioBlock(audio=WAV, format="wav")]
    )
    llm = routes.llm()
    try:
        with pytest.raises(BadRequest, match="no route can take this request"):
            llm.chat([message])
    finally:
        llm.engine.close()
    assert chat_records(routes) == []
