"""LangChain and LlamaIndex messages fed back as history send what the real client sent.

A recorded first turn comes back through the plugin as the framework's message
(``AIMessage``, LlamaIndex ``ChatMessage``); sent back as history with the recorded
follow-up, the body that reaches the replay server must carry the reasoning the way the
recorded second request does: the thinking block and its signature before the text
(Anthropic), the thought part and the signature on the part it came with (Gemini), the
call's thought signature (Gemini tool loop).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .conftest import Bench
from .server import Recording

# case -> (first reply, second reply with the recorded request, model, the route's options)
TURNS = {
    "anthropic-thinking": (
        "anthropic/message_thinking",
        "anthropic/message_thinking_next",
        "claude-sonnet-4-5",
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    ),
    "gemini-thinking": (
        "gemini/generate_thinking",
        "gemini/generate_thinking_next",
        "gemini-3-pro-preview",
        {},
    ),
}
LOOPS = {
    "anthropic-thinking-tool": (
        "anthropic/message_thinking_tool_use",
        "anthropic/message_thinking_tool_result",
        "claude-sonnet-4-0",
        {"thinking": {"type": "enabled", "budget_tokens": 3000}},
    ),
    "gemini-signed-call": (
        "gemini/generate_function_call",
        "gemini/generate_function_call_next",
        "gemini-2.5-pro",
        {},
    ),
}


def _turns(recorded: Any) -> list[Any]:
    return list(recorded.get("contents") or recorded["messages"])


def _texts(turn: Any) -> list[str]:
    parts = turn.get("parts") or turn["content"]
    return [p["text"] for p in parts if "text" in p and not p.get("thought")]


def _same(value: Any, parent: str = "") -> Any:
    """Gemini field names in one spelling and no client call ids on Gemini calls (the API
    sends none; see test_fidelity_requests); everything else as it is."""
    if isinstance(value, dict):
        return {
            re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _same(v, k)
            for k, v in value.items()
            if not (
                k == "id"
                and parent
                in ("functionCall", "function_call", "functionResponse", "function_response")
            )
        }
    if isinstance(value, list):
        return [_same(v, parent) for v in value]
    return value


def _setup(bench: Bench, case: tuple[str, str, str, dict[str, Any]]) -> tuple[Any, Any, Any]:
    first, second, model, options = case
    kind = first.split("/", 1)[0]
    recording = Recording.load(second)
    route = bench.route(kind, "plugin", model, options)
    bench.serve(route, first, recording)
    return route, recording.request, bench.engine(route)


def _sent_turn(bench: Bench, route: Any) -> Any:
    *_, last = bench.requests(route)
    return _turns(last.json())[1]


@pytest.mark.parametrize("case", sorted(TURNS))
def test_langchain_sends_a_recorded_turn_back_as_recorded(bench: Bench, case: str) -> None:
    from langchain_core.messages import HumanMessage

    from langchain_resilient import ChatResilientLLM

    route, recorded, llm = _setup(bench, TURNS[case])
    question, follow_up = (_texts(t)[0] for t in _turns(recorded)[::2][:2])
    model = ChatResilientLLM(engine=llm)
    reply = model.invoke(question)
    model.invoke([HumanMessage(question), reply, HumanMessage(follow_up)])
    assert _same(_sent_turn(bench, route)) == _same(_turns(recorded)[1])


@pytest.mark.parametrize("case", sorted(LOOPS))
def test_langchain_tool_loop_sends_the_signed_turn_back_as_recorded(
    bench: Bench, case: str
) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage

    from langchain_resilient import ChatResilientLLM

    route, recorded, llm = _setup(bench, LOOPS[case])
    turns = _turns(recorded)
    question = _texts(turns[0])[0]
    if "tools" in recorded and "functionDeclarations" in recorded["tools"][0]:
        declared = recorded["tools"][0]["functionDeclarations"][0]
        schema, results = (
            declared["parameters_json_schema"],
            [json.dumps(p["functionResponse"]["response"]) for p in turns[2]["parts"]],
        )
    else:
        declared = recorded["tools"][0]
        schema, results = declared["input_schema"], [p["content"] for p in turns[2]["content"]]
    tool = {"name": declared["name"], "description": "look up", "parameters": schema}
    model = ChatResilientLLM(engine=llm).bind_tools([tool])
    reply = model.invoke(question)
    answers = [
        ToolMessage(content, tool_call_id=call["id"])
        for call, content in zip(reply.tool_calls, results, strict=True)
    ]
    model.invoke([HumanMessage(question), reply, *answers])
    assert _same(_sent_turn(bench, route)) == _same(turns[1])


@pytest.mark.parametrize("case", sorted(TURNS))
def test_llamaindex_sends_a_recorded_turn_back_as_recorded(bench: Bench, case: str) -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole

    from llamaindex_resilient import ResilientLLM as LlamaResilientLLM

    route, recorded, llm = _setup(bench, TURNS[case])
    question, follow_up = (_texts(t)[0] for t in _turns(recorded)[::2][:2])
    model = LlamaResilientLLM(engine=llm)
    reply = model.chat([ChatMessage(role=MessageRole.USER, content=question)])
    model.chat(
        [
            ChatMessage(role=MessageRole.USER, content=question),
            reply.message,
            ChatMessage(role=MessageRole.USER, content=follow_up),
        ]
    )
    assert _same(_sent_turn(bench, route)) == _same(_turns(recorded)[1])
