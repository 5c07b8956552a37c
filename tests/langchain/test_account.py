"""The reply's account and cache, as a LangChain user sees them, against the chaos server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.messages import BaseMessage

from langchain_resilient import ChatResilientLLM
from resilient_llm import FakeClock, ResponseCache, RetryPolicy
from resilient_llm.testing.chaos import ChaosServer, Fault

from ._chaos import provider

QUESTION = "What is the capital of France?"


@pytest.fixture
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _model(server: ChaosServer, *kinds: str, **options: Any) -> ChatResilientLLM:
    return ChatResilientLLM(
        providers=[provider(k, server) for k in kinds],
        retry=RetryPolicy(max_retries=2, base=0.25, cap=1.0),
        clock=FakeClock(),
        jitter_seed=7,
        timeout=20,
        **options,
    )


# -- the response cache is response_cache=; cache= stays LangChain's ---------------------


def test_response_cache_answers_the_second_invoke(server: ChaosServer) -> None:
    model = _model(server, "openai", response_cache=ResponseCache())
    first = model.invoke(QUESTION, temperature=0)
    second = model.invoke(QUESTION, temperature=0)
    assert first.content == second.content == "The capital of France is Paris."
    assert len(server.log) == 1, "the second answer came from the cache, not the provider"
    assert (first.response_metadata["cache"], second.response_metadata["cache"]) == (
        "miss",
        "hit",
    )


async def test_response_cache_answers_the_second_ainvoke_and_stream(server: ChaosServer) -> None:
    model = _model(server, "anthropic", response_cache=ResponseCache())
    await model.ainvoke(QUESTION, temperature=0)
    streamed = "".join([str(c.content) async for c in model.astream(QUESTION, temperature=0)])
    assert streamed == "The capital of France is Paris."
    assert len(server.log) == 1


def test_langchain_cache_keeps_its_meaning(server: ChaosServer) -> None:
    model = _model(server, "openai", cache=InMemoryCache())
    first = model.invoke(QUESTION)
    second = model.invoke(QUESTION)
    assert first.content == second.content
    assert len(server.log) == 1, "LangChain's own cache answered the second call"
    assert model.resilient_engine.cache is None


def test_an_engine_cache_given_as_cache_is_a_clear_error(server: ChaosServer) -> None:
    with pytest.raises(ValueError, match=r"response_cache=") as caught:
        _model(server, "openai", cache=ResponseCache())
    assert "LangChain's cache" in str(caught.value)


# -- streams report the engine's own account, as invoke does --------------------------------


def _account(message: BaseMessage) -> tuple[Any, ...]:
    meta = message.response_metadata
    attempts = [(a["route"], a["outcome"], a["status_code"]) for a in meta["attempts"]]
    return meta["waited"], meta["attempt_count"], attempts, meta["failovers"], meta["provider"]


def _planned() -> ChaosServer:
    """A 429 with retry-after 0.5 s on the primary, three 529s on the fallback."""
    server = ChaosServer().start()
    server.script("openai", Fault("rate_limit", retry_after=0.5))
    server.script("anthropic", "overloaded", "overloaded", "overloaded")
    return server


async def test_invoke_and_stream_give_the_same_account() -> None:
    """One fault plan in the four modes: the same waits, attempts and failovers."""
    messages: list[BaseMessage] = []
    for mode in ("invoke", "ainvoke", "stream", "astream"):
        with _planned() as server:
            model = _model(server, "openai", "anthropic")
            if mode == "invoke":
                messages.append(model.invoke(QUESTION))
            elif mode == "ainvoke":
                messages.append(await model.ainvoke(QUESTION))
            elif mode == "stream":
                chunks: list[Any] = list(model.stream(QUESTION))
                messages.append(sum(chunks[1:], chunks[0]))
            else:
                chunks = [c async for c in model.astream(QUESTION)]
                messages.append(sum(chunks[1:], chunks[0]))
    accounts = [_account(m) for m in messages]
    assert accounts == [accounts[0]] * 4
    waited, attempt_count, attempts, failovers, answered = accounts[0]
    assert [(a[0], a[2]) for a in attempts] == [
        ("openai", 429),
        *[("anthropic", 529)] * 3,
        ("openai", None),
    ]
    assert attempt_count == 5
    assert answered == "openai"
    assert [(f["from"], f["to"]) for f in failovers] == [
        ("openai", "anthropic"),
        ("anthropic", "openai"),
    ]
    assert waited >= 0.5, "the retry-after was waited for, and counted once"
