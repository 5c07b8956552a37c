"""The engine's own wiring, on a fake clock with scripted adapters (our interface, no SDK).

End-to-end behaviour through the real SDKs is tested against the chaos server elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from resilient_llm import (
    BreakerPolicy,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    FakeClock,
    Provider,
    RateLimit,
    RateLimited,
    RetryPolicy,
    Tool,
    Usage,
)
from resilient_llm._engine import ResilientLLM
from resilient_llm.errors import ProviderUnavailable
from resilient_llm.events import BreakerStateChanged, Event
from resilient_llm.providers._hints import quota_hints


@dataclass
class ScriptedAdapter:
    name: str
    steps: list[object] = field(default_factory=list)
    seen: list[ChatRequest] = field(default_factory=list)
    closed: bool = False

    def _next(self, request: ChatRequest) -> ChatResponse:
        self.seen.append(request)
        step = self.steps.pop(0) if self.steps else "ok"
        if isinstance(step, Exception):
            raise step
        return ChatResponse(
            content=f"{self.name}:{step}",
            provider=self.name,
            model=request.model or "default-model",
            usage=Usage(3, 4),
        )

    def chat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        return self._next(request)

    async def achat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        return self._next(request)

    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]:
        reply = self._next(request)
        yield ChatChunk(delta=reply.content, provider=self.name)
        yield ChatChunk(usage=reply.usage, finish_reason="stop", provider=self.name)

    async def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]:
        for chunk in self.stream(request, timeout):
            yield chunk

    def close(self) -> None:
        self.closed = True


def build(
    plans: dict[str, list[object]], **kwargs: object
) -> tuple[ResilientLLM, dict[str, ScriptedAdapter]]:
    adapters = {name: ScriptedAdapter(name, steps) for name, steps in plans.items()}
    kinds = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
    providers = [Provider(kinds.get(n, "openai"), f"{n}-model", name=n) for n in plans]  # type: ignore[arg-type]
    llm = ResilientLLM(
        providers,
        clock=FakeClock(),
        adapter_factory=lambda p: adapters[p.name],
        jitter_seed=1,
        **kwargs,  # type: ignore[arg-type]
    )
    return llm, adapters


def test_chat_reports_provider_attempts_and_failovers() -> None:
    llm, _ = build({"openai": [RateLimited("429", retry_after=30.0)], "anthropic": ["Paris"]})
    reply = llm.chat([{"role": "user", "content": "What is the capital of France?"}])
    assert reply.content == "anthropic:Paris"
    assert reply.metadata["provider"] == "anthropic"
    assert reply.metadata["attempt_count"] == 2
    assert reply.metadata["failovers"] == [
        {"from": "openai", "to": "anthropic", "reason": "rate limited"}
    ]
    snap = llm.snapshot()
    assert snap["openai"].paused_for == 30.0
    assert snap["anthropic"].limiter.estimated_tokens == 7  # settled to the usage 3 + 4


def test_all_four_ways_agree() -> None:
    llm, _ = build({"openai": ["hi"]})
    assert llm.chat("hello").content == "openai:hi"
    assert asyncio.run(llm.achat("hello")).content == "openai:ok"
    assert "".join(c.delta for c in llm.stream("hello")) == "openai:ok"

    async def collect() -> str:
        return "".join([c.delta async for c in llm.astream("hello")])

    assert asyncio.run(collect()) == "openai:ok"


def test_arguments_become_one_neutral_request() -> None:
    llm, adapters = build({"openai": []})
    llm.chat(
        "2 + 3?",
        tools=[{"type": "function", "function": {"name": "add", "parameters": {}}}],
        tool_choice="add",
        temperature=0.0,
        max_tokens=50,
        stop="\n",
    )
    request = adapters["openai"].seen[0]
    assert request.messages[0].content == "2 + 3?"
    assert request.tools == (Tool("add", "", {"type": "object", "properties": {}}),)
    assert (request.tool_choice, request.max_tokens, request.stop) == ("add", 50, ("\n",))


def test_model_override_reaches_only_the_first_route() -> None:
    llm, adapters = build({"openai": [ProviderUnavailable("x", status_code=500)], "gemini": []})
    llm = ResilientLLM(
        llm.providers,
        clock=FakeClock(),
        retry=RetryPolicy(max_retries=0),
        adapter_factory=lambda p: adapters[p.name],
    )
    reply = llm.chat("hi", model="gpt-4.1")
    assert adapters["openai"].seen[0].model == "gpt-4.1"
    assert adapters["gemini"].seen[0].model is None
    assert reply.provider == "gemini"


def test_breaker_changes_become_events() -> None:
    events: list[Event] = []
    failing = [ProviderUnavailable("overloaded", status_code=529)] * 2
    llm, _ = build(
        {"anthropic": failing, "gemini": []},
        breaker=BreakerPolicy(failure_threshold=2, cooldown=30),
        retry=RetryPolicy(max_retries=3, jitter="none"),
        on_event=events.append,
    )
    assert llm.chat("hi").provider == "gemini"
    changes = [e for e in events if isinstance(e, BreakerStateChanged)]
    assert [(e.route, e.old, e.new) for e in changes] == [("anthropic", "closed", "open")]
    assert "anthropic" in str(llm.snapshot())
    assert "open" in str(llm.snapshot())


def test_per_call_timeout_and_limits_are_validated() -> None:
    llm, _ = build({"openai": []})
    with pytest.raises(ConfigurationError, match="timeout"):
        llm.chat("hi", timeout=0)
    with pytest.raises(ConfigurationError, match="providers"):
        ResilientLLM([])
    with pytest.raises(ConfigurationError, match="both named 'x'"):
        ResilientLLM([Provider("openai", "a", name="x"), Provider("openai", "b", name="x")])
    with pytest.raises(ConfigurationError, match=r"providers\[0\]"):
        ResilientLLM(["openai"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="spill_over"):
        ResilientLLM([Provider("openai", "a")], spill_over=-1)
    with pytest.raises(TypeError):
        llm.chat("hi", temprature=0.5)


def test_close_closes_every_adapter_once_built() -> None:
    llm, adapters = build({"openai": [], "gemini": []})
    llm.chat("hi")
    llm.close()
    assert adapters["openai"].closed
    assert not adapters["gemini"].closed  # never built


def test_rate_limit_is_per_route() -> None:
    llm, _ = build({"openai": []})
    llm = ResilientLLM(
        [Provider("openai", "m", rate_limit=RateLimit(requests_per_minute=1))],
        clock=FakeClock(),
        timeout=61.0,  # the queue takes 60 s: a call needs time left after it
        adapter_factory=lambda p: ScriptedAdapter("openai"),
    )
    llm.chat("one")
    reply = llm.chat("two")
    assert reply.metadata["waits"] == [{"route": "openai", "reason": "limiter", "seconds": 60.0}]


def test_quota_headers_are_fed_back_to_the_route() -> None:
    class Quoted(ScriptedAdapter):
        def chat(self, request: ChatRequest, timeout: float) -> ChatResponse:
            reply = self._next(request)
            headers = {"x-ratelimit-remaining-requests": "41", "x-ratelimit-reset-tokens": "6m0s"}
            # An adapter parses its headers once (as the SDK adapters do) and says what
            # they hold in ``quota``; the engine reads no header itself.
            return ChatResponse(
                reply.content,
                reply.provider,
                reply.model,
                rate_limit_headers=headers,
                quota=quota_hints(headers),
            )

    llm = ResilientLLM(
        [Provider("openai", "m")], clock=FakeClock(), adapter_factory=lambda p: Quoted("openai")
    )
    assert llm.snapshot()["openai"].provider_quota is None
    llm.chat("hi")
    quota = llm.snapshot()["openai"].provider_quota
    assert quota is not None
    assert (quota.remaining_requests, quota.reset_tokens) == (41, 360.0)


def test_snapshot_table_keeps_long_route_names_apart() -> None:
    name = "anthropic-soak-primary"
    llm = ResilientLLM(
        [Provider("anthropic", "m", name=name)],
        clock=FakeClock(),
        adapter_factory=lambda p: ScriptedAdapter(name),
    )
    row = str(llm.snapshot()).splitlines()[2]
    assert row.startswith(name + " ")
    assert row.split()[:2] == [name, "closed"]
