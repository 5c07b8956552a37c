"""LlamaIndex's own machinery over ResilientLLM: indexes, query and chat engines, agents.

Each scenario runs once on healthy routes and once with the primary failing (rate limited,
overloaded, or in an outage), where the answer must come from the fallback route.
"""

from __future__ import annotations

import pytest
from llama_index.core import Document, MockEmbedding, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import AgentOutput, FunctionAgent
from llama_index.core.base.response.schema import Response, StreamingResponse
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from .conftest import Routes

DOCS = [
    Document(text="Paris is the capital of France."),
    Document(text="Lyon is known for its cuisine."),
    Document(text="Marseille is a port on the Mediterranean."),
]
QUESTION = "What is the capital of France?"
PARIS = "The capital of France is Paris."
FAILURES = [None, "rate_limit", "overloaded", "outage"]


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCS, embed_model=MockEmbedding(embed_dim=8))


def _check_route(routes: Routes, failure: str | None) -> None:
    calls = routes.calls()
    assert calls, "no chat call reached the chaos server"
    if failure is None:
        assert {p for p, _ in calls} == {routes.primary}
    else:
        assert calls[0][0] == routes.primary
        assert calls[0][1] in (429, 529, 503)
        assert calls[-1] == (routes.fallback, 200)


@pytest.mark.parametrize("failure", FAILURES)
def test_query_engine(routes: Routes, index: VectorStoreIndex, failure: str | None) -> None:
    if failure:
        routes.fail_primary(failure)
    response = index.as_query_engine(llm=routes.llm()).query(QUESTION)
    assert isinstance(response, Response)
    assert response.response == PARIS
    assert response.source_nodes
    _check_route(routes, failure)


@pytest.mark.parametrize("failure", [None, "overloaded"])
def test_streaming_query_engine(
    openai_routes: Routes, index: VectorStoreIndex, failure: str | None
) -> None:
    if failure:
        openai_routes.fail_primary(failure)
    engine = index.as_query_engine(llm=openai_routes.llm(), streaming=True)
    response = engine.query(QUESTION)
    assert isinstance(response, StreamingResponse)
    assert "".join(response.response_gen) == PARIS
    _check_route(openai_routes, failure)


@pytest.mark.parametrize("failure", [None, "outage"])
async def test_aquery(openai_routes: Routes, index: VectorStoreIndex, failure: str | None) -> None:
    if failure:
        openai_routes.fail_primary(failure)
    response = await index.as_query_engine(llm=openai_routes.llm()).aquery(QUESTION)
    assert str(response) == PARIS
    _check_route(openai_routes, failure)


@pytest.mark.parametrize("failure", [None, "rate_limit"])
def test_chat_engine(routes: Routes, index: VectorStoreIndex, failure: str | None) -> None:
    if failure:
        routes.fail_primary(failure)
    engine = index.as_chat_engine(llm=routes.llm())
    first = engine.chat(QUESTION)
    assert "Paris" in first.response
    second = engine.stream_chat("And what about Lyon?")
    assert "".join(second.response_gen)  # an echo of the condensed question
    _check_route(routes, failure)


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


# llama-index-workflows inspects the agent (a pydantic model) with inspect.getmembers.
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
@pytest.mark.parametrize("failure", [None, "outage"])
async def test_function_agent(routes: Routes, failure: str | None) -> None:
    if failure:
        routes.fail_primary(failure)
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=multiply)],
        llm=routes.llm(),
        system_prompt="Use the tools to answer.",
    )
    result = await agent.run(user_msg="What is 6 times 7? Multiply 6 and 7.")
    assert isinstance(result, AgentOutput)
    assert str(result).startswith("The tool returned:")
    assert "42" in str(result)
    (call,) = result.tool_calls
    assert (call.tool_name, call.tool_kwargs, call.tool_output.content) == (
        "multiply",
        {"a": 6, "b": 7},
        "42",
    )
    _check_route(routes, failure)


@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
async def test_function_agent_without_streaming(openai_routes: Routes) -> None:
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=multiply)], llm=openai_routes.llm(), streaming=False
    )
    result = await agent.run(user_msg="Multiply 6 and 7.")
    assert str(result) == "The tool returned: 42"
    assert [s for _, s in openai_routes.calls()] == [200, 200]


class Capital(BaseModel):
    city: str
    population_millions: int


@pytest.mark.parametrize("failure", [None, "overloaded"])
def test_structured_predict_with_failover(routes: Routes, failure: str | None) -> None:
    from llama_index.core.prompts import PromptTemplate

    if failure:
        routes.fail_primary(failure)
    capital = routes.llm().structured_predict(
        Capital, PromptTemplate("{question}"), question="'Paris' has 2 million people."
    )
    assert capital == Capital(city="Paris", population_millions=2)
    _check_route(routes, failure)


def test_settings_llm_is_used_and_restored(
    openai_routes: Routes, index: VectorStoreIndex, settings_llm: None
) -> None:
    Settings.llm = openai_routes.llm()
    response = index.as_query_engine().query(QUESTION)
    assert isinstance(response, Response)
    assert response.response == PARIS
    assert openai_routes.calls() == [(openai_routes.primary, 200)]
