"""LlamaIndex instrumentation: one decorated call per public call, and the engine's events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.rate_limiter import TokenBucketRateLimiter
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llamaindex_resilient import (
    ResilientAttemptEvent,
    ResilientBreakerEvent,
    ResilientEngineEvent,
    ResilientFailoverEvent,
    ResilientLLM,
    ResilientRetryEvent,
)
from resilient_llm import ConfigurationError, FakeClock, Provider
from resilient_llm import ResilientLLM as Engine
from resilient_llm.testing.chaos import ChaosServer

from .conftest import Collector, Routes

FRANCE = [ChatMessage(role=MessageRole.USER, content="What is the capital of France?")]
START_EVENTS = (LLMChatStartEvent, LLMCompletionStartEvent)


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class City(BaseModel):
    name: str


def _astream(method: str, *args: Any, **kwargs: Any) -> Callable[[ResilientLLM], Any]:
    async def run(llm: ResilientLLM) -> list[Any]:
        stream = await getattr(llm, method)(*args, **kwargs)
        return [x async for x in stream]

    return lambda llm: asyncio.run(run(llm))


TOOL = FunctionTool.from_defaults(fn=multiply)
PROMPT = PromptTemplate("Name the city 'Lyon'. {x}")
PUBLIC_CALLS: dict[str, Callable[[ResilientLLM], Any]] = {
    "chat": lambda llm: llm.chat(FRANCE),
    "achat": lambda llm: asyncio.run(llm.achat(FRANCE)),
    "stream_chat": lambda llm: list(llm.stream_chat(FRANCE)),
    "astream_chat": _astream("astream_chat", FRANCE),
    "complete": lambda llm: llm.complete("hello"),
    "acomplete": lambda llm: asyncio.run(llm.acomplete("hello")),
    "stream_complete": lambda llm: list(llm.stream_complete("hello")),
    "astream_complete": _astream("astream_complete", "hello"),
    "predict": lambda llm: llm.predict(PromptTemplate("hello {x}"), x="there"),
    "stream": lambda llm: list(llm.stream(PromptTemplate("hello {x}"), x="there")),
    "chat_with_tools": lambda llm: llm.chat_with_tools([TOOL], user_msg="Multiply 2 and 3"),
    "predict_and_call": lambda llm: llm.predict_and_call([TOOL], user_msg="Multiply 2 and 3"),
    "structured_predict": lambda llm: llm.structured_predict(City, PROMPT, x=""),
    "astructured_predict": lambda llm: asyncio.run(llm.astructured_predict(City, PROMPT, x="")),
    "stream_structured_predict": lambda llm: list(
        llm.stream_structured_predict(City, PROMPT, x="")
    ),
}


@pytest.mark.parametrize("method", sorted(PUBLIC_CALLS))
def test_each_public_call_passes_one_decorated_method(
    openai_routes: Routes, collector: Collector, method: str
) -> None:
    """LlamaIndex's decorator acquires ``rate_limiter`` and emits one start event per
    decorated call: exactly one start (and one end) per public call means no double
    acquisition and no nested decorated call."""
    PUBLIC_CALLS[method](openai_routes.llm())
    assert len(collector.of(*START_EVENTS)) == 1
    assert len(collector.of(LLMChatEndEvent, LLMCompletionEndEvent)) == 1
    assert len(openai_routes.calls()) == 1


def test_a_llamaindex_rate_limiter_is_refused(openai_routes: Routes) -> None:
    limiter = TokenBucketRateLimiter(requests_per_minute=10)
    with pytest.raises(ValueError, match="does not take a LlamaIndex rate_limiter"):
        openai_routes.llm(rate_limiter=limiter)
    llm = openai_routes.llm()
    with pytest.raises(ValueError, match="does not take a LlamaIndex rate_limiter"):
        llm.rate_limiter = limiter
    llm.rate_limiter = None
    assert llm.rate_limiter is None


def test_engine_events_arrive_as_instrumentation_events(
    openai_routes: Routes, collector: Collector
) -> None:
    openai_routes.server.script(openai_routes.primary, "overloaded", "overloaded")
    reply = openai_routes.llm().chat(FRANCE)
    assert reply.raw is not None
    assert reply.raw["provider"] == openai_routes.fallback

    attempts = collector.of(ResilientAttemptEvent)
    assert [(e.route, e.outcome) for e in attempts] == [  # type: ignore[attr-defined]
        (openai_routes.primary, "ProviderUnavailable"),
        (openai_routes.primary, "ProviderUnavailable"),
        (openai_routes.fallback, "ok"),
    ]
    assert attempts[0].status_code == 503  # type: ignore[attr-defined]  # OpenAI's overloaded
    (retry,) = collector.of(ResilientRetryEvent)
    assert (retry.route, retry.retry) == (openai_routes.primary, 1)  # type: ignore[attr-defined]
    (breaker,) = collector.of(ResilientBreakerEvent)
    assert (breaker.route, breaker.old, breaker.new) == (  # type: ignore[attr-defined]
        openai_routes.primary,
        "closed",
        "open",
    )
    (failover,) = collector.of(ResilientFailoverEvent)
    assert (failover.route, failover.to_route) == (  # type: ignore[attr-defined]
        openai_routes.primary,
        openai_routes.fallback,
    )
    kinds = {e.kind for e in collector.of(ResilientEngineEvent)}  # type: ignore[attr-defined]
    assert "attempt_started" in kinds
    assert failover.class_name() == "ResilientFailoverEvent"
    assert failover.model_dump()["class_name"] == "ResilientFailoverEvent"
    # The engine's events and LlamaIndex's own share the call's span.
    start = collector.of(LLMChatStartEvent)[0]
    assert failover.span_id == start.span_id


def test_events_go_through_our_dispatcher(openai_routes: Routes) -> None:
    ours = get_dispatcher("llamaindex_resilient.events")
    handler = Collector()
    ours.add_event_handler(handler)
    try:
        openai_routes.llm().complete("hello")
    finally:
        ours.event_handlers.remove(handler)
    assert handler.of(ResilientAttemptEvent)
    assert not handler.of(*START_EVENTS)  # LlamaIndex's own go to its dispatchers


def test_an_engine_passed_in_is_used_as_is(server: ChaosServer, collector: Collector) -> None:
    engine = Engine(
        [Provider("gemini", "gemini-2.5-pro", base_url=server.base_url("gemini-own"), api_key="x")],
        clock=FakeClock(),
    )
    with engine:
        llm = ResilientLLM(engine=engine)
        assert llm.engine is engine
        assert llm.metadata.model_name == "gemini-2.5-pro"
        assert llm.complete("What is the capital of France?").text.endswith("Paris.")
    assert collector.of(ResilientAttemptEvent)
    with pytest.raises(ConfigurationError, match="not both"):
        ResilientLLM(engine=engine, timeout=5.0)
    with pytest.raises(ConfigurationError, match="needs providers"):
        ResilientLLM()


def test_user_event_handlers_still_run(openai_routes: Routes, collector: Collector) -> None:
    seen: list[str] = []
    openai_routes.llm(on_event=lambda e: seen.append(e.kind)).complete("hi")
    assert "attempt_finished" in seen
    assert collector.of(ResilientAttemptEvent)
