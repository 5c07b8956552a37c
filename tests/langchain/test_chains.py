"""Failover inside real LCEL chains, against the chaos server (no network, no SDK mocks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_resilient import ChatResilientLLM, _callbacks
from resilient_llm import RetryPolicy, StreamInterrupted
from resilient_llm.events import heard
from resilient_llm.testing.chaos import ChaosServer

from ._chaos import provider


class Events(BaseCallbackHandler):
    """Collects the engine's custom events, as a LangChain user would."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.data: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.names.append(name)
        self.data.append(data)


class AsyncEvents(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.names: list[str] = []

    async def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.names.append(name)


@pytest.fixture
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _model(server: ChaosServer, *kinds: str) -> ChatResilientLLM:
    return ChatResilientLLM(
        providers=[provider(k, server) for k in kinds],
        retry=RetryPolicy(max_retries=1, base=0.01, cap=0.02),
        timeout=20,
    )


def _calls(server: ChaosServer) -> list[tuple[str, int]]:
    return [(r.provider, r.status) for r in server.log]


def test_prompt_chain_fails_over_on_429_and_reports_events(server: ChaosServer) -> None:
    server.script("openai", "rate_limit")
    chain = (
        ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])
        | _model(server, "openai", "anthropic")
        | StrOutputParser()
    )
    events = Events()
    answer = chain.invoke(
        {"question": "What is the capital of France?"}, config={"callbacks": [events]}
    )
    assert answer == "The capital of France is Paris."
    assert _calls(server) == [("openai", 429), ("anthropic", 200)]
    assert "resilient_llm.failover" in events.names
    failover = events.data[events.names.index("resilient_llm.failover")]
    assert (failover["route"], failover["to_route"]) == ("openai", "anthropic")


def test_reply_metadata_names_the_provider_that_answered(server: ChaosServer) -> None:
    server.script("gemini", "overloaded", "overloaded")
    reply = _model(server, "gemini", "openai").invoke("What is the capital of France?")
    assert isinstance(reply, AIMessage)
    meta = reply.response_metadata
    assert (meta["provider"], meta["model_name"]) == ("openai", "gpt-4o-mini")
    assert meta["attempt_count"] == 3
    assert meta["failovers"] == [
        {"from": "gemini", "to": "openai", "reason": meta["failovers"][0]["reason"]}
    ]
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["total_tokens"] > 0


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def test_tool_agent_loop_survives_529_across_families(server: ChaosServer) -> None:
    server.script("anthropic", "overloaded", "overloaded")  # retries spent: fail over
    model = _model(server, "anthropic", "gemini").bind_tools([multiply])
    messages: list[Any] = [HumanMessage("What is 6 times 7?")]
    first = model.invoke(messages)
    assert isinstance(first, AIMessage)
    assert first.response_metadata["provider"] == "gemini"
    assert [c["args"] for c in first.tool_calls] == [{"a": 6, "b": 7}]
    call = first.tool_calls[0]
    messages += [first, ToolMessage(str(multiply.invoke(call["args"])), tool_call_id=call["id"])]
    final = model.invoke(messages)  # the primary answers again, given the other family's call
    assert final.content == "The tool returned: 42"
    assert final.response_metadata["provider"] == "anthropic"
    assert _calls(server) == [
        ("anthropic", 529),
        ("anthropic", 529),
        ("gemini", 200),
        ("anthropic", 200),
    ]


class City(BaseModel):
    name: str
    population: int


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_survives_primary_failure(server: ChaosServer, method: str) -> None:
    server.script("openai", "server_error", "server_error")
    structured = _model(server, "openai", "anthropic").with_structured_output(
        City,
        method=method,  # type: ignore[arg-type]
    )
    city = structured.invoke("Name the city 'Lyon' with population 520000.")
    assert city == City(name="Lyon", population=520000)
    assert _calls(server) == [("openai", 500), ("openai", 500), ("anthropic", 200)]


def test_structured_output_include_raw(server: ChaosServer) -> None:
    out = (
        _model(server, "gemini")
        .with_structured_output(City, include_raw=True)
        .invoke("Name the city 'Nice' with population 340000.")
    )
    assert isinstance(out, dict)
    assert out["parsed"] == City(name="Nice", population=340000)
    assert out["parsing_error"] is None
    assert isinstance(out["raw"], AIMessage)


def test_stream_fails_over_before_the_first_token(server: ChaosServer) -> None:
    server.script("openai", "overloaded", "overloaded")
    chain = _model(server, "openai", "anthropic") | StrOutputParser()
    pieces = list(chain.stream("What is the capital of France?"))
    assert "".join(pieces) == "The capital of France is Paris."
    assert [p for p, _ in _calls(server)] == ["openai", "openai", "anthropic"]


def test_stream_cut_after_the_first_token_raises_stream_interrupted(
    server: ChaosServer,
) -> None:
    # A truncated stream sends its start and half its content, then closes: the first
    # text reaches the caller, so the engine must not retry (it would repeat the text).
    server.script("openai", "truncate")
    chain = _model(server, "openai", "anthropic") | StrOutputParser()
    pieces: list[str] = []

    def consume() -> None:
        pieces.extend(chain.stream("What is the capital of France?"))

    with pytest.raises(StreamInterrupted) as caught:
        consume()
    assert pieces
    assert caught.value.partial_text == "".join(pieces)
    assert [p for p, _ in _calls(server)] == ["openai"]


def test_stream_reports_failover_metadata_and_usage_on_the_last_chunk(
    server: ChaosServer,
) -> None:
    server.script("anthropic", "rate_limit")
    events = Events()
    full: Any = None
    for chunk in _model(server, "anthropic", "openai").stream(
        "What is the capital of France?", config={"callbacks": [events]}
    ):
        full = chunk if full is None else full + chunk
    assert full.content == "The capital of France is Paris."
    assert full.response_metadata["provider"] == "openai"
    assert full.response_metadata["failovers"][0]["to"] == "openai"
    assert full.usage_metadata["total_tokens"] > 0
    assert "resilient_llm.failover" in events.names


async def test_async_chain_fails_over_and_dispatches_events(server: ChaosServer) -> None:
    server.script("gemini", "rate_limit")
    events = AsyncEvents()
    chain = _model(server, "gemini", "anthropic") | StrOutputParser()
    answer = await chain.ainvoke("What is the capital of France?", config={"callbacks": [events]})
    assert answer == "The capital of France is Paris."
    assert "resilient_llm.failover" in events.names
    server.script("openai", "overloaded", "overloaded")
    stream_events = AsyncEvents()
    chain = _model(server, "openai", "anthropic") | StrOutputParser()
    streamed = [
        p
        async for p in chain.astream(
            "What is the capital of France?", config={"callbacks": [stream_events]}
        )
    ]
    assert "".join(streamed) == "The capital of France is Paris."
    assert "resilient_llm.failover" in stream_events.names


async def test_async_stream_cut_raises_stream_interrupted(server: ChaosServer) -> None:
    server.script("openai", "truncate")
    chain = _model(server, "openai", "gemini") | StrOutputParser()
    with pytest.raises(StreamInterrupted):
        async for _ in chain.astream("What is the capital of France?"):
            pass


async def test_routine_events_are_built_only_for_a_run_with_handlers(
    server: ChaosServer,
) -> None:
    model = _model(server, "openai", "anthropic")
    engine_emit = model._engine._emit
    with _callbacks.scope(_callbacks.CallScope(None)):
        assert not heard(engine_emit), "no handler would see them: not built"
    assert await model.ainvoke("What is the capital of France?")
    events, sync_events = AsyncEvents(), Events()
    await model.ainvoke("What is the capital of France?", config={"callbacks": [events]})
    model.invoke("What is the capital of France?", config={"callbacks": [sync_events]})
    for names in (events.names, sync_events.names):
        assert names[:2] == ["resilient_llm.attempt_started", "resilient_llm.attempt_finished"]
