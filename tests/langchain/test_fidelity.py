"""Full fidelity through ``ChatResilientLLM`` with real LangChain against the chaos server:
media delivered byte-identical (after a failover too), routes that cannot take a part
skipped without a call, parameters as the wire received them, thinking tool loops whose
signatures go back as received, usage details and refusals."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent

from langchain_resilient import ChatResilientLLM
from resilient_llm import Provider, RetryPolicy
from resilient_llm.testing.chaos import ChaosServer, RequestRecord
from resilient_llm.testing.chaos.wire import digest

from . import _media

MODES = ("invoke", "ainvoke", "stream", "astream")
PNG, PDF, WAV = _media.png(), _media.pdf(), _media.wav()
PNG64, PDF64, WAV64 = (base64.b64encode(b).decode() for b in (PNG, PDF, WAV))
IMAGE = {"type": "image", "base64": PNG64, "mime_type": "image/png"}
GEMINI_3 = "gemini-3-flash-preview"


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


@pytest.fixture
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _route(server: ChaosServer, kind: str, model: str, name: str | None = None) -> Provider:
    return Provider(
        kind,  # type: ignore[arg-type]
        model,
        name=name or kind,
        base_url=server.base_url(name or kind),
        api_key="chaos",
    )


def _model(*routes: Provider, **fields: Any) -> ChatResilientLLM:
    retry = RetryPolicy(max_retries=1, base=0.01, cap=0.02)
    return ChatResilientLLM(providers=list(routes), retry=retry, timeout=20, **fields)


def _run(model: Any, mode: str, messages: list[BaseMessage], **kwargs: Any) -> AIMessage:
    """One call in ``mode``; a stream's chunks added up, as LangGraph does."""
    if mode == "invoke":
        out = model.invoke(messages, **kwargs)
    elif mode == "ainvoke":
        out = asyncio.run(model.ainvoke(messages, **kwargs))
    else:
        if mode == "stream":
            chunks = list(model.stream(messages, **kwargs))
        else:

            async def drain() -> list[AIMessageChunk]:
                return [c async for c in model.astream(messages, **kwargs)]

            chunks = asyncio.run(drain())
        out = chunks[0]
        for chunk in chunks[1:]:
            out = out + chunk
    assert isinstance(out, AIMessage)
    return out


def _sent(server: ChaosServer, name: str) -> list[RequestRecord]:
    return [r for r in server.log if r.provider == name and r.status == 200]


def _prompt(*blocks: Any) -> list[BaseMessage]:
    return [HumanMessage(["What is in this?", *blocks])]


@pytest.mark.parametrize("mode", MODES)
def test_an_image_question_fails_over_and_the_image_arrives_byte_identical(
    server: ChaosServer, mode: str
) -> None:
    server.script("openai", "server_error", "server_error")
    model = _model(
        _route(server, "openai", "gpt-4o-mini"), _route(server, "gemini", "gemini-2.5-flash")
    )
    reply = _run(model, mode, _prompt(IMAGE))
    assert reply.response_metadata["provider"] == "gemini"
    assert reply.response_metadata["failovers"]
    assert [r.status for r in server.log if r.provider == "openai"] == [500, 500]
    (record,) = _sent(server, "gemini")
    assert record.carried.parts == (("image", "image/png", digest(PNG), "message"),)


_PDF_DATA_URL = f"data:application/pdf;base64,{PDF64}"
_GOT_IMAGE, _GOT_PDF, _GOT_WAV = (
    ("image", "image/png", PNG),
    ("document", "application/pdf", PDF),
    ("audio", "audio/wav", WAV),
)
_FORMS = [
    (
        "gpt-4o-mini",
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}},
        _GOT_IMAGE,
    ),
    (
        "gpt-4o-mini",
        {"type": "file", "base64": PDF64, "mime_type": "application/pdf", "filename": "a.pdf"},
        _GOT_PDF,
    ),
    (
        "gpt-4o-audio-preview",
        {"type": "audio", "base64": WAV64, "mime_type": "audio/wav"},
        _GOT_WAV,
    ),
    (
        "gpt-4o-audio-preview",
        {"type": "input_audio", "input_audio": {"data": WAV64, "format": "wav"}},
        _GOT_WAV,
    ),
    (
        "gemini-2.5-flash",
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG64}},
        _GOT_IMAGE,
    ),
    (
        "gemini-2.5-flash",
        {"type": "file", "file": {"filename": "b.pdf", "file_data": _PDF_DATA_URL}},
        _GOT_PDF,
    ),
    (
        "gemini-2.5-flash",
        {"type": "audio", "source_type": "base64", "data": WAV64, "mime_type": "audio/wav"},
        _GOT_WAV,
    ),
]


@pytest.mark.parametrize(("model_name", "block", "expected"), _FORMS)
def test_each_form_of_each_media_kind_reaches_a_family_that_takes_it(
    server: ChaosServer,
    model_name: str,
    block: dict[str, Any],
    expected: tuple[str, str, bytes],
) -> None:
    kind = "gemini" if model_name.startswith("gemini") else "openai"
    _run(_model(_route(server, kind, model_name)), "invoke", _prompt(block))
    (record,) = _sent(server, kind)
    media, mime, data = expected
    assert record.carried.parts == ((media, mime, digest(data), "message"),)


@pytest.mark.parametrize("mode", MODES)
def test_audio_skips_an_anthropic_route_without_a_call(server: ChaosServer, mode: str) -> None:
    model = _model(
        _route(server, "anthropic", "claude-haiku-4-5"),
        _route(server, "gemini", "gemini-2.5-flash"),
    )
    audio = {"type": "audio", "base64": WAV64, "mime_type": "audio/wav"}
    reply = _run(model, mode, _prompt(audio))
    assert reply.response_metadata["provider"] == "gemini"
    assert [r.provider for r in server.log] == ["gemini"]
    assert server.log[0].carried.parts == (("audio", "audio/wav", digest(WAV), "message"),)


def test_media_in_a_tool_result_arrive_as_tool_results(server: ChaosServer) -> None:
    model = _model(_route(server, "gemini", "gemini-2.5-flash")).bind_tools([get_weather])
    history: list[BaseMessage] = [
        HumanMessage("Show me the weather map."),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Lyon"}, "id": "c1"}]),
        ToolMessage(
            [IMAGE, {"type": "file", "base64": PDF64, "mime_type": "application/pdf"}],
            tool_call_id="c1",
        ),
    ]
    _run(model, "invoke", history)
    (record,) = _sent(server, "gemini")
    assert record.carried.parts == (
        ("image", "image/png", digest(PNG), "tool_result"),
        ("document", "application/pdf", digest(PDF), "tool_result"),
    )


def test_params_reach_the_wire_from_fields_model_kwargs_bind_and_call(server: ChaosServer) -> None:
    model = _model(
        _route(server, "openai", "o3-mini"),
        top_p=0.9,
        seed=7,
        model_kwargs={"max_completion_tokens": 300, "stop_sequences": ["END"]},
        provider_options={"openai": {"logit_bias": {"50256": -100}}, "anthropic": {"top_k": 3}},
    )
    bound = model.bind_tools([get_weather], parallel_tool_calls=False).bind(reasoning_effort="low")
    _run(bound, "invoke", [HumanMessage("Weather in 'Lyon'?")], temperature=0.5)
    params = _sent(server, "openai")[0].carried.params
    expected = {"temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["END"], "max_tokens": 300}
    assert {k: params[k] for k in expected} == expected
    assert (params["reasoning_effort"], params["parallel_tool_calls"]) == ("low", False)
    assert params["logit_bias"] == {"50256": -100}
    assert "top_k" not in params


def test_reasoning_effort_reaches_gemini_as_its_thinking_config(server: ChaosServer) -> None:
    model = _model(_route(server, "gemini", "gemini-2.5-pro"), reasoning_effort="high")
    reply = _run(model, "invoke", [HumanMessage("Hello")])
    params = _sent(server, "gemini")[0].carried.params
    assert params["thinking_config"] == {"include_thoughts": True, "thinking_budget": 24576}
    # The thoughts come back the way ChatGoogleGenerativeAI shows them.
    assert isinstance(reply.content, list)
    assert reply.content[0]["type"] == "thinking"
    assert reply.response_metadata["model_provider"] == "google_genai"


@pytest.mark.parametrize("mode", MODES)
def test_usage_details_from_a_thinking_model_with_a_cached_prompt(
    server: ChaosServer, mode: str
) -> None:
    model = _model(_route(server, "gemini", "gemini-2.5-flash"), reasoning_effort="high")
    prompt = "Summarise: " + "lorem ipsum dolor sit amet " * 300
    usage = _run(model, mode, [HumanMessage(prompt)]).usage_metadata
    assert usage is not None
    assert usage["output_token_details"]["reasoning"] > 0  # type: ignore[typeddict-item]
    assert usage["input_token_details"]["cache_read"] == usage["input_tokens"] // 1024 * 1024  # type: ignore[typeddict-item]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


@pytest.mark.parametrize("kind", ["openai", "gemini"])
@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_refusal_is_in_additional_kwargs(server: ChaosServer, kind: str, mode: str) -> None:
    model_name = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash"}[kind]
    reply = _run(_model(_route(server, kind, model_name)), mode, [HumanMessage("[refuse] Do it.")])
    assert reply.additional_kwargs["refusal"]
    assert reply.response_metadata["finish_reason"] == "refusal"


@pytest.mark.parametrize("mode", MODES)
def test_a_gemini_3_thinking_tool_loop_sends_its_signatures_back(
    server: ChaosServer, mode: str
) -> None:
    model = _model(_route(server, "gemini", GEMINI_3), reasoning_effort="low").bind_tools(
        [get_weather]
    )
    history: list[BaseMessage] = [HumanMessage("What's the weather in 'Lyon'?")]
    first = _run(model, mode, history)
    signed = first.additional_kwargs["__gemini_function_call_thought_signatures__"]
    (call,) = first.tool_calls
    assert set(signed) == {call["id"]}
    history += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    second = _run(model, mode, history)
    assert not second.tool_calls
    _, second_sent = _sent(server, "gemini")
    # Sent back exactly as received (the log shows a signature's decoded bytes).
    assert base64.b64decode(signed[call["id"]]).decode() in second_sent.carried.signatures
    assert isinstance(first.content, list)
    assert first.content[0]["type"] == "thinking"
    assert [r.status for r in server.log] == [200, 200]
    assert second.text


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_a_langgraph_agent_loops_on_gemini_3(server: ChaosServer) -> None:
    model = _model(_route(server, "gemini", GEMINI_3), reasoning_effort="low")
    agent = create_react_agent(model, [get_weather])
    out = agent.invoke({"messages": [HumanMessage("What's the weather in 'Lyon'?")]})
    assert "Sunny in Lyon." in [m.content for m in out["messages"]]
    assert [r.status for r in server.log] == [200, 200]
    assert _sent(server, "gemini")[1].carried.signatures


def test_a_mid_conversation_failover_carries_no_signatures(server: ChaosServer) -> None:
    model = _model(_route(server, "gemini", GEMINI_3), _route(server, "openai", "gpt-4o-mini"))
    bound = model.bind_tools([get_weather], reasoning_effort="low")
    history: list[BaseMessage] = [HumanMessage("What's the weather in 'Lyon'?")]
    first = _run(bound, "invoke", history)
    (call,) = first.tool_calls
    history += [first, ToolMessage("Sunny.", tool_call_id=call["id"])]
    server.script("gemini", "server_error", "server_error")
    second = _run(bound, "invoke", history)
    assert second.response_metadata["provider"] == "openai"
    (record,) = _sent(server, "openai")
    assert record.carried.signatures == ()


@pytest.mark.parametrize("mode", MODES)
def test_a_reasoners_reasoning_content_shows_and_is_not_sent_back(
    server: ChaosServer, mode: str
) -> None:
    model = _model(_route(server, "openai", "deepseek-reasoner"))
    history: list[BaseMessage] = [HumanMessage("Hello")]
    first = _run(model, mode, history)
    assert first.additional_kwargs["reasoning_content"]
    assert isinstance(first.content, str)
    assert first.content_blocks[0]["type"] == "reasoning"
    # The wire answers 400 to reasoning_content sent back: the history must leave it out.
    _run(model, mode, [*history, first, HumanMessage("And then?")])
    assert [r.status for r in server.log] == [200, 200]


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_gemini_3_tool_loop_in_langchains_v1_output(server: ChaosServer, mode: str) -> None:
    model = _model(_route(server, "gemini", GEMINI_3), reasoning_effort="low", output_version="v1")
    bound = model.bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("What's the weather in 'Lyon'?")]
    first = _run(bound, mode, history)
    assert isinstance(first.content, list)
    assert first.content[0]["type"] == "reasoning"
    (call,) = first.tool_calls
    history += [first, ToolMessage("Sunny.", tool_call_id=call["id"])]
    _run(bound, mode, history)
    assert [r.status for r in server.log] == [200, 200]
    assert _sent(server, "gemini")[1].carried.signatures


CLAUDE = "claude-haiku-4-5"  # the budget form of thinking (4.6 and later: the effort control)


@pytest.mark.parametrize("mode", MODES)
def test_a_claude_thinking_tool_loop_sends_the_thinking_back(
    server: ChaosServer, mode: str
) -> None:
    model = _model(_route(server, "anthropic", CLAUDE), reasoning_effort="low")
    bound = model.bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("What's the weather in 'Paris'?")]
    first = _run(bound, mode, history)
    # ChatAnthropic's shape: the thinking block with its signature first.
    assert isinstance(first.content, list)
    thinking = first.content[0]
    assert thinking["type"] == "thinking"
    assert thinking["thinking"] == "Considering: What's the weather in 'Paris'?"
    (call,) = first.tool_calls
    history += [first, ToolMessage("21C and sunny", tool_call_id=call["id"])]
    second = _run(bound, mode, history)
    assert second.text == "The tool returned: 21C and sunny"
    assert [r.status for r in server.log] == [200, 200]
    assert server.log[1].carried.signatures == (thinking["signature"],)
    assert server.log[1].carried.params["thinking"] == {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
@pytest.mark.parametrize("stream", [False, True])
def test_a_langgraph_agent_loops_on_claude_with_thinking(server: ChaosServer, stream: bool) -> None:
    model = _model(_route(server, "anthropic", CLAUDE), reasoning_effort="low")
    agent = create_react_agent(model, [get_weather])
    question = {"messages": [HumanMessage("What's the weather in 'Lyon'?")]}
    if stream:
        # Token streaming: LangGraph adds the chunks up into the history it sends back.
        for _ in agent.stream(question, stream_mode="messages"):
            pass
    else:
        agent.invoke(question)
    assert [r.status for r in server.log] == [200, 200]
    assert len(server.log[1].carried.signatures) == 1


def test_a_claude_tool_loop_fails_over_to_gemini_3_without_foreign_signatures(
    server: ChaosServer,
) -> None:
    claude, gemini = _route(server, "anthropic", CLAUDE), _route(server, "gemini", GEMINI_3)
    bound = _model(claude, gemini, reasoning_effort="low").bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("What's the weather in 'Oslo'?")]
    first = _run(bound, "stream", history)
    (call,) = first.tool_calls
    history += [first, ToolMessage("Cold.", tool_call_id=call["id"])]
    server.script("anthropic", "overloaded", "overloaded")
    second = _run(bound, "stream", history)
    assert second.response_metadata["provider"] == "gemini"
    (record,) = _sent(server, "gemini")
    # Gemini 3 takes a call it did not make with its documented placeholder, never
    # Anthropic's signature.
    assert all(not s.startswith("chaos-anthropic") for s in record.carried.signatures)


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_cache_markers_reach_anthropic_and_cache_usage_comes_back(
    server: ChaosServer, mode: str
) -> None:
    marker = {"type": "ephemeral"}
    pick = {
        "name": "pick",
        "description": "Pick a color.",
        "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
        "cache_control": marker,
    }
    model = _model(_route(server, "anthropic", CLAUDE)).bind_tools([pick], tool_choice="none")
    history: list[BaseMessage] = [
        SystemMessage([{"type": "text", "text": "You are terse. " * 20, "cache_control": marker}]),
        HumanMessage(
            [{"type": "text", "text": "Long context " * 40, "cache_control": marker}, "Question?"]
        ),
    ]
    usage = _run(model, mode, history).usage_metadata
    assert server.log[0].carried.cache_markers == 3
    assert usage is not None
    prompt = usage["input_tokens"]
    details = usage["input_token_details"]
    assert (details["cache_read"], details["cache_creation"]) == (prompt // 2, prompt // 4)  # type: ignore[typeddict-item]


def test_anthropic_receives_what_it_takes_of_the_params(server: ChaosServer) -> None:
    model = _model(
        _route(server, "anthropic", CLAUDE),
        seed=7,
        max_tokens=9000,
        stop=["END"],
        provider_options={"anthropic": {"metadata": {"user_id": "u-1"}}, "openai": {"user": "x"}},
    )
    _run(model, "invoke", [HumanMessage("Hi")], reasoning_effort="medium")
    params = server.log[0].carried.params
    assert params["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert (params["max_tokens"], params["stop"]) == (9000, ["END"])
    assert params["metadata"] == {"user_id": "u-1"}
    assert "seed" not in params  # Anthropic has none
    assert "user" not in params


@pytest.mark.parametrize("mode", ["invoke", "astream"])
def test_a_pdf_and_an_image_in_a_tool_result_reach_anthropic(
    server: ChaosServer, mode: str
) -> None:
    model = _model(_route(server, "anthropic", CLAUDE)).bind_tools([get_weather])
    history: list[BaseMessage] = [
        HumanMessage("Show me the weather report."),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Lyon"}, "id": "c1"}]),
        ToolMessage(
            [IMAGE, {"type": "file", "base64": PDF64, "mime_type": "application/pdf"}],
            tool_call_id="c1",
        ),
    ]
    _run(model, mode, history)
    assert server.log[0].carried.parts == (
        ("image", "image/png", digest(PNG), "tool_result"),
        ("document", "application/pdf", digest(PDF), "tool_result"),
    )


def test_an_image_question_in_an_lcel_chain_fails_over(server: ChaosServer) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Describe images in one line."),
            (
                "user",
                [
                    {"type": "text", "text": "{question}"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,{image}"}},
                ],
            ),
        ]
    )
    server.script("anthropic", "overloaded", "overloaded")
    model = _model(_route(server, "anthropic", CLAUDE), _route(server, "openai", "gpt-4o-mini"))
    answer = (prompt | model | StrOutputParser()).invoke(
        {"question": "What is it?", "image": PNG64}
    )
    assert answer.startswith("Echo: ")
    (record,) = _sent(server, "openai")
    assert record.carried.parts == (("image", "image/png", digest(PNG), "message"),)
