"""Reasoning models' tool loops through LlamaIndex: signatures go back exactly as received.

The chaos providers sign their reasoning and answer 400, as the real APIs do, to a
signature missing (Gemini 3 function calls, Claude thinking in a tool loop) or not their
own; the log's ``carried.signatures`` shows what each request sent back.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentOutput, AgentStream, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock
from llama_index.core.tools import FunctionTool

from resilient_llm.testing.chaos import Fault
from resilient_llm.testing.chaos.signing import SKIP_SIGNATURES, signed_by

from .conftest import Routes, chat_records

pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


MULTIPLY = FunctionTool.from_defaults(fn=multiply)
ASK = "What is 6 times 7? Multiply 6 and 7."


def _gemini_signatures(message: ChatMessage) -> list[str]:
    """The signatures a reply holds, as the Gemini wire names them (their text)."""
    found = [
        b.additional_information.get("thought_signature")
        for b in message.blocks
        if isinstance(b, ThinkingBlock)
    ]
    found += message.additional_kwargs.get("thought_signatures") or []
    return [base64.b64decode(s).decode() for s in found if s]


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_gemini_3_reply_fed_back_carries_its_signatures(
    gemini3_routes: Routes, stream: bool
) -> None:
    routes = gemini3_routes
    llm = routes.llm(reasoning_effort="low")
    if stream:
        *_, response = llm.stream_chat_with_tools([MULTIPLY], user_msg=ASK)
    else:
        response = llm.chat_with_tools([MULTIPLY], user_msg=ASK)
    thinking = response.message.blocks[0]
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.content
    issued = _gemini_signatures(response.message)
    assert issued
    assert all(signed_by("gemini", s) for s in issued)
    (selection,) = llm.get_tool_calls_from_response(response)
    history = [
        ChatMessage(role="user", content=ASK),
        response.message,
        ChatMessage(
            role="tool",
            content=str(multiply(**selection.tool_kwargs)),
            additional_kwargs={"tool_call_id": selection.tool_id},
        ),
    ]
    final = llm.chat(history)
    assert "42" in (final.message.content or "")
    first, second = chat_records(routes)
    assert (first.status, second.status) == (200, 200)
    assert second.provider == routes.primary
    assert sorted(second.carried.signatures) == sorted(issued)


@pytest.mark.parametrize("streaming", [False, True])
async def test_gemini_3_agent_tool_loop(gemini3_routes: Routes, streaming: bool) -> None:
    routes = gemini3_routes
    agent = FunctionAgent(
        tools=[MULTIPLY], llm=routes.llm(reasoning_effort="low"), streaming=streaming
    )
    handler = agent.run(user_msg=ASK)
    thinking: list[str] = []
    async for event in handler.stream_events():
        if isinstance(event, AgentStream) and event.thinking_delta:
            thinking.append(event.thinking_delta)
    result = await handler
    assert isinstance(result, AgentOutput)
    assert "42" in str(result)
    assert bool(thinking) == streaming  # thinking deltas are a stream's
    calls = chat_records(routes)
    assert [(c.provider, c.status) for c in calls] == [(routes.primary, 200)] * 2
    assert calls[1].carried.signatures
    assert all(signed_by("gemini", s) for s in calls[1].carried.signatures)


async def test_a_failover_mid_loop_carries_no_signatures(gemini3_routes: Routes) -> None:
    routes = gemini3_routes
    routes.server.script(routes.primary, Fault("ok"), *[Fault("overloaded")] * 4)
    agent = FunctionAgent(tools=[MULTIPLY], llm=routes.llm(reasoning_effort="low"))
    result: Any = await agent.run(user_msg=ASK)
    assert "42" in str(result)
    calls = chat_records(routes)
    assert calls[0].provider == routes.primary
    assert calls[0].status == 200
    assert calls[-1].provider == routes.fallback
    assert calls[-1].status == 200
    assert calls[-1].carried.signatures == ()


def _anthropic_signatures(message: ChatMessage) -> list[str]:
    return [
        b.additional_information["signature"]
        for b in message.blocks
        if isinstance(b, ThinkingBlock) and b.additional_information.get("signature")
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_claude_thinking_reply_fed_back_carries_its_signature(
    claude_thinking_routes: Routes, stream: bool
) -> None:
    routes = claude_thinking_routes
    llm = routes.llm(reasoning_effort="low")
    if stream:
        *_, response = llm.stream_chat_with_tools([MULTIPLY], user_msg=ASK)
    else:
        response = llm.chat_with_tools([MULTIPLY], user_msg=ASK)
    thinking = response.message.blocks[0]
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.additional_information["type"] == "thinking"
    issued = _anthropic_signatures(response.message)
    assert issued
    assert all(signed_by("anthropic", s) for s in issued)
    (selection,) = llm.get_tool_calls_from_response(response)
    history = [
        ChatMessage(role="user", content=ASK),
        response.message,
        ChatMessage(
            role="tool",
            content=str(multiply(**selection.tool_kwargs)),
            additional_kwargs={"tool_call_id": selection.tool_id},
        ),
    ]
    final = llm.chat(history)
    assert "42" in (final.message.content or "")
    first, second = chat_records(routes)
    assert (first.provider, second.provider) == (routes.primary, routes.primary)
    assert (first.status, second.status) == (200, 200)
    assert list(second.carried.signatures) == issued


@pytest.mark.parametrize("streaming", [False, True])
async def test_claude_thinking_agent_tool_loop(
    claude_thinking_routes: Routes, streaming: bool
) -> None:
    routes = claude_thinking_routes
    agent = FunctionAgent(
        tools=[MULTIPLY], llm=routes.llm(reasoning_effort="low"), streaming=streaming
    )
    handler = agent.run(user_msg=ASK)
    thinking = [
        e.thinking_delta
        async for e in handler.stream_events()
        if isinstance(e, AgentStream) and e.thinking_delta
    ]
    result = await handler
    assert "42" in str(result)
    assert bool(thinking) == streaming
    calls = chat_records(routes)
    assert [(c.provider, c.status) for c in calls] == [(routes.primary, 200)] * 2
    assert calls[0].carried.params["thinking"]["type"] == "enabled"
    assert calls[1].carried.signatures
    assert all(signed_by("anthropic", s) for s in calls[1].carried.signatures)


async def test_a_failover_from_claude_mid_loop_carries_no_signatures(
    claude_thinking_routes: Routes,
) -> None:
    routes = claude_thinking_routes
    routes.server.script(routes.primary, Fault("ok"), *[Fault("overloaded")] * 4)
    agent = FunctionAgent(tools=[MULTIPLY], llm=routes.llm(reasoning_effort="low"))
    result: Any = await agent.run(user_msg=ASK)
    assert "42" in str(result)
    calls = chat_records(routes)
    assert (calls[0].provider, calls[0].status) == (routes.primary, 200)
    assert (calls[-1].provider, calls[-1].status) == (routes.fallback, 200)
    # Gemini 3 answers 400 to a foreign signature: it got none, only Google's documented
    # placeholder on the call it did not make.
    assert set(calls[-1].carried.signatures) <= SKIP_SIGNATURES
    assert not any(signed_by("anthropic", s) for s in calls[-1].carried.signatures)
