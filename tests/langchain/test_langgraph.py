"""Resilience events and trace metadata inside LangGraph agents, against the chaos server.

LangGraph's ``stream_mode="messages"`` and ``astream_events`` make langchain-core stream the
model under ``invoke`` and call ``_stream`` / ``_astream`` without a run manager: the
engine's events must still reach the run's callbacks, and traces must name the route
that answered, not the primary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, TypedDict
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
)
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import create_react_agent

from langchain_resilient import ChatResilientLLM
from resilient_llm import RetryPolicy
from resilient_llm.testing.chaos import ChaosServer

from ._chaos import provider

FAILOVER = "resilient_llm.failover"


class Events(BaseCallbackHandler):
    """The engine's custom events, with the run each one landed on."""

    def __init__(self) -> None:
        self.events: list[tuple[str, UUID, dict[str, Any]]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, run_id, data))

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.events]


class AsyncEvents(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.names: list[str] = []

    async def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.names.append(name)


class Runs(BaseTracer):
    """Every finished run, as a tracer (LangSmith's among them) receives it."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        pass

    def _on_run_update(self, run: Run) -> None:
        self.runs.append(run)

    def chat_runs(self) -> list[Run]:
        return [r for r in self.runs if r.run_type in {"llm", "chat_model"}]


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@pytest.fixture
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _model(server: ChaosServer, **options: Any) -> ChatResilientLLM:
    # streaming= only when a test sets it: LangChain reads an explicit False as "never".
    return ChatResilientLLM(
        providers=[provider("openai", server), provider("anthropic", server)],
        retry=RetryPolicy(max_retries=1, base=0.01, cap=0.02),
        timeout=20,
        **options,
    )


def _question() -> dict[str, Any]:
    return {"messages": [HumanMessage("Use the tool: what is 6 times 7?")]}


def _answered_by_anthropic(runs: Runs) -> None:
    first = runs.chat_runs()[0]
    metadata = first.extra["metadata"]
    assert (metadata["ls_provider"], metadata["ls_model_name"]) == (
        "anthropic",
        "claude-haiku-4-5",
    ), "the trace names the route that answered, not the primary"


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_agent_in_messages_mode_reports_failover_to_the_model_run(server: ChaosServer) -> None:
    server.script("openai", "rate_limit")
    agent = create_react_agent(_model(server), [multiply])
    events, runs = Events(), Runs()
    streamed = list(
        agent.stream(_question(), stream_mode="messages", config={"callbacks": [events, runs]})
    )
    assert any(isinstance(m, AIMessageChunk) for m, _ in streamed), "tokens were streamed"
    assert [r.provider for r in server.log][:2] == ["openai", "anthropic"]
    assert FAILOVER in events.names
    _, run_id, data = events.events[events.names.index(FAILOVER)]
    assert (data["route"], data["to_route"]) == ("openai", "anthropic")
    assert run_id == runs.chat_runs()[0].id, "the event landed on the model's own run"
    _answered_by_anthropic(runs)


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
async def test_agent_in_async_messages_mode_reports_failover(server: ChaosServer) -> None:
    server.script("openai", "rate_limit")
    agent = create_react_agent(_model(server), [multiply])
    events = AsyncEvents()
    async for _ in agent.astream(
        _question(), stream_mode="messages", config={"callbacks": [events]}
    ):
        pass
    assert FAILOVER in events.names


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
async def test_agent_astream_events_carries_failover_events(server: ChaosServer) -> None:
    server.script("openai", "rate_limit")
    agent = create_react_agent(_model(server), [multiply])
    handler, runs = AsyncEvents(), Runs()
    seen = [
        e
        async for e in agent.astream_events(
            _question(), version="v2", config={"callbacks": [handler, runs]}
        )
    ]
    assert FAILOVER in handler.names
    model_runs = {e["run_id"] for e in seen if e["event"] == "on_chat_model_start"}
    custom = [e for e in seen if e["event"] == "on_custom_event" and e["name"] == FAILOVER]
    assert custom, "astream_events shows the failover"
    assert custom[0]["run_id"] in model_runs, "on the model's own run"
    assert [e for e in seen if e["event"] == "on_chat_model_stream"], "tokens were streamed"
    _answered_by_anthropic(runs)


class _State(TypedDict):
    messages: list[AnyMessage]


@pytest.mark.parametrize("mode", ["messages", "values"])
async def test_a_node_that_ainvokes_the_model_reports_failover(
    server: ChaosServer, mode: Literal["messages", "values"]
) -> None:
    server.script("openai", "rate_limit")
    model = _model(server)

    async def call_model(state: _State) -> _State:
        return {"messages": [*state["messages"], await model.ainvoke(state["messages"])]}

    graph = StateGraph(_State)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    app = graph.compile()
    handler = AsyncEvents()
    async for _ in app.astream(
        {"messages": [HumanMessage("What is the capital of France?")]},
        stream_mode=mode,
        config={"callbacks": [handler]},
    ):
        pass
    assert FAILOVER in handler.names


@pytest.mark.parametrize("call", ["invoke", "stream", "batch"])
def test_traces_name_the_answering_route(server: ChaosServer, call: str) -> None:
    model = _model(server)
    server.script("openai", "rate_limit")
    runs = Runs()
    if call == "invoke":
        reply = model.invoke("What is the capital of France?", config={"callbacks": [runs]})
    elif call == "stream":
        chunks: list[Any] = list(
            model.stream("What is the capital of France?", config={"callbacks": [runs]})
        )
        reply = sum(chunks[1:], chunks[0])
    else:
        (reply,) = model.batch(["What is the capital of France?"], {"callbacks": [runs]})
    assert isinstance(reply, AIMessage)
    assert reply.response_metadata["model_name"] == "claude-haiku-4-5", call
    assert "lc_gateway_metadata" not in reply.response_metadata
    _answered_by_anthropic(runs)
    (run,) = runs.chat_runs()
    output = run.outputs or {}
    if call != "stream":
        assert output["llm_output"] == {"model_name": "claude-haiku-4-5", "provider": "anthropic"}


def test_generate_that_streams_reports_failover_to_its_run(server: ChaosServer) -> None:
    server.script("openai", "rate_limit")
    events, runs = Events(), Runs()
    result = _model(server, streaming=True).generate(
        [[HumanMessage("What is the capital of France?")]], callbacks=[events, runs]
    )
    assert result.generations[0][0].text == "The capital of France is Paris."
    assert FAILOVER in events.names
    assert events.events[events.names.index(FAILOVER)][1] == runs.chat_runs()[0].id


def test_several_prompts_report_to_the_calling_run(server: ChaosServer) -> None:
    """A generate() of several prompts has no one run to name: events go to the caller's."""
    server.script("openai", "rate_limit")
    model = _model(server, streaming=True)
    question: list[BaseMessage] = [HumanMessage("What is the capital of France?")]

    def generate_both(_: None) -> LLMResult:
        return model.generate([question, question])

    step = RunnableLambda(generate_both, name="step")
    events, runs = Events(), Runs()
    step.invoke(None, config={"callbacks": [events, runs]})
    assert FAILOVER in events.names
    (caller,) = [r for r in runs.runs if r.name == "step"]
    assert events.events[events.names.index(FAILOVER)][1] == caller.id
