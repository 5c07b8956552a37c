"""What a LangSmith-style tracer records of a call that failed over: the answering route's
model and provider on the run, the engine's events among the run's events, and a
serialized model with no key in it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer
from langchain_core.tracers.schemas import Run

from langchain_resilient import ChatResilientLLM
from resilient_llm import FakeClock, Provider, RetryPolicy
from resilient_llm.testing.chaos import ChaosServer

from ._chaos import MODELS

QUESTION = "What is the capital of France?"
CANARY = "sk-canary-3c9a7d21"


class Runs(BaseTracer):
    """Finished runs, as LangChain's tracers (LangSmith's among them) hold them."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        pass

    def _on_llm_end(self, run: Run) -> None:
        self.runs.append(run)


class AsyncRuns(AsyncBaseTracer):
    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    async def _persist_run(self, run: Run) -> None:
        pass

    async def _on_llm_end(self, run: Run) -> None:
        self.runs.append(run)


@pytest.fixture
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _model(server: ChaosServer) -> ChatResilientLLM:
    routes = [
        Provider(kind, MODELS[kind], base_url=server.base_url(kind), api_key=CANARY)
        for kind in ("openai", "anthropic")
    ]
    return ChatResilientLLM(
        providers=routes, retry=RetryPolicy(max_retries=0), clock=FakeClock(), timeout=20
    )


def _check(run: Run) -> None:
    metadata = run.extra["metadata"]
    assert (metadata["ls_provider"], metadata["ls_model_name"]) == (
        "anthropic",
        "claude-haiku-4-5",
    ), "the run names the route that answered, not the primary"
    names = [e["name"] for e in run.events if e["name"] != "new_token"]
    assert names == [
        "start",
        "resilient_llm.attempt_started",
        "resilient_llm.attempt_finished",  # the overloaded answer
        "resilient_llm.failover",
        "resilient_llm.attempt_started",
        "resilient_llm.attempt_finished",
        "resilient_llm.settled",
        "end",
    ]
    failover = run.events[names.index("resilient_llm.failover")]["kwargs"]
    assert (failover["route"], failover["to_route"]) == ("openai", "anthropic")
    (generation,) = run.outputs["generations"][0] if run.outputs else [None]
    assert generation is not None
    meta = generation["message"]["kwargs"]["response_metadata"]
    assert (meta["model_name"], meta["provider"]) == ("claude-haiku-4-5", "anthropic")
    assert [(f["from"], f["to"]) for f in meta["failovers"]] == [("openai", "anthropic")]
    # The model as the tracer stores it: its routes, no key.
    serialized = run.serialized or {}
    assert serialized["type"] == "constructor"
    assert [r["model"] for r in serialized["kwargs"]["providers"]] == [
        "gpt-4o-mini",
        "claude-haiku-4-5",
    ]
    assert CANARY not in json.dumps(serialized, default=str)
    assert CANARY not in json.dumps(run.events, default=str)


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_tracer_sees_the_failover_and_the_answering_route(server: ChaosServer, mode: str) -> None:
    model, runs = _model(server), Runs()
    server.script("openai", "overloaded")
    config: Any = {"callbacks": [runs]}
    if mode == "invoke":
        model.invoke(QUESTION, config=config)
    else:
        assert "".join(str(c.content) for c in model.stream(QUESTION, config=config))
    (run,) = runs.runs
    _check(run)


@pytest.mark.parametrize("mode", ["ainvoke", "astream"])
async def test_an_async_tracer_sees_them_too(server: ChaosServer, mode: str) -> None:
    model, runs = _model(server), AsyncRuns()
    server.script("openai", "overloaded")
    config: Any = {"callbacks": [runs]}
    if mode == "ainvoke":
        await model.ainvoke(QUESTION, config=config)
    else:
        assert "".join([str(c.content) async for c in model.astream(QUESTION, config=config)])
    (run,) = runs.runs
    _check(run)
