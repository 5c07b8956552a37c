"""OpenTelemetry spans and metrics, read back from the SDK's in-memory exporter and reader.

Calls go through the real SDKs to the chaos server, with scripted faults (a primary that
answers 503 until the call fails over), in all four call modes.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from resilient_llm import (
    AllProvidersFailed,
    BreakerPolicy,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    Provider,
    ResilientLLM,
    RetryPolicy,
    Usage,
)
from resilient_llm.extras.cache import ResponseCache
from resilient_llm.extras.telemetry import GEN_AI_PROVIDER, EngineTelemetry, Telemetry
from resilient_llm.testing.chaos import ChaosServer, Plan

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
KEY = "sk-test-DO-NOT-LEAK"
MODES = ("chat", "achat", "stream", "astream")
RETRY = RetryPolicy(max_retries=1, base=0.01, cap=0.02)
_TAGS = itertools.count()


@dataclass
class Otel:
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)

    def __post_init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def calls(self) -> list[ReadableSpan]:
        return self.finished("resilient_llm.call")

    def attempts_of(self, call: ReadableSpan) -> list[ReadableSpan]:
        children = [
            s
            for s in self.finished("resilient_llm.attempt")
            if s.parent is not None and s.parent.span_id == call.context.span_id
        ]
        return sorted(children, key=lambda s: s.attributes["resilient_llm.attempt"])  # type: ignore[index]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


@pytest.fixture
def otel() -> Iterator[Otel]:
    otel = Otel()
    yield otel
    otel.tracer_provider.shutdown()
    otel.meter_provider.shutdown()


class Rig:
    def __init__(self, server: ChaosServer, otel: Otel) -> None:
        self.server = server
        self.otel = otel
        self.names: list[str] = []
        self.engines: list[ResilientLLM] = []

    def route(self, kind: str, role: str, plan: Plan | None = None) -> Provider:
        name = f"{kind}-otel{next(_TAGS)}-{role}"
        self.server.set_plan(name, plan or Plan())
        self.names.append(name)
        return Provider(
            kind,  # type: ignore[arg-type]
            f"{kind}-model",
            base_url=self.server.base_url(name),
            api_key=KEY,
            name=name,
        )

    def engine(self, *providers: Provider, **options: Any) -> ResilientLLM:
        options.setdefault("retry", RETRY)
        llm = ResilientLLM(
            list(providers), timeout=10.0, jitter_seed=0, telemetry=self.otel.telemetry, **options
        )
        self.engines.append(llm)
        return llm

    def upstream(self) -> int:
        return sum(1 for r in self.server.log if r.provider in self.names and "count" not in r.path)


@pytest.fixture
def rig(server: ChaosServer, otel: Otel) -> Iterator[Rig]:
    rig = Rig(server, otel)
    yield rig
    for llm in rig.engines:
        llm.close()


def run(llm: ResilientLLM, mode: str, question: str = QUESTION, **options: Any) -> str:
    if mode == "chat":
        return llm.chat(question, **options).content
    if mode == "achat":
        return asyncio.run(llm.achat(question, **options)).content
    if mode == "stream":
        return "".join(c.delta for c in llm.stream(question, **options))

    async def drain() -> str:
        return "".join([c.delta async for c in llm.astream(question, **options)])

    return asyncio.run(drain())


def failing_over(rig: Rig) -> tuple[ResilientLLM, Provider, Provider]:
    primary = rig.route("openai", "primary")
    fallback = rig.route("anthropic", "fallback")
    rig.server.script(primary.name, "unavailable", "unavailable")
    return rig.engine(primary, fallback), primary, fallback


@pytest.mark.parametrize("mode", MODES)
def test_a_failover_is_one_call_span_over_its_attempt_spans(rig: Rig, mode: str) -> None:
    llm, primary, fallback = failing_over(rig)
    assert run(llm, mode) == ANSWER

    (call,) = rig.otel.calls()
    attempts = rig.otel.attempts_of(call)
    assert call.parent is None
    assert call.kind is SpanKind.INTERNAL
    assert call.status.status_code is StatusCode.UNSET
    attributes = dict(call.attributes or {})
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "openai-model",
        "resilient_llm.mode": mode,
        "resilient_llm.outcome": "ok",
        "resilient_llm.attempts": 3,
        "resilient_llm.failovers": 1,
        "resilient_llm.waited": pytest.approx(attributes["resilient_llm.waited"]),
        "resilient_llm.wait_reasons": ("backoff",),
        "resilient_llm.provider": fallback.name,
        "gen_ai.provider.name": "anthropic",
        "gen_ai.response.model": "anthropic-model",
        "gen_ai.usage.input_tokens": attributes["gen_ai.usage.input_tokens"],
        "gen_ai.usage.output_tokens": attributes["gen_ai.usage.output_tokens"],
        "gen_ai.response.finish_reasons": ("stop",),
    }
    assert attributes["resilient_llm.waited"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    events = [e.name for e in call.events]
    assert {"retry_scheduled", "wait", "failover"} <= set(events)
    assert events.index("retry_scheduled") < events.index("failover")

    summary = [
        (
            a.attributes["resilient_llm.route"],  # type: ignore[index]
            a.attributes["gen_ai.provider.name"],  # type: ignore[index]
            a.attributes["resilient_llm.outcome"],  # type: ignore[index]
            a.attributes.get("http.response.status_code"),  # type: ignore[union-attr]
            a.status.status_code,
        )
        for a in attempts
    ]
    assert summary == [
        (primary.name, "openai", "ProviderUnavailable", 503, StatusCode.ERROR),
        (primary.name, "openai", "ProviderUnavailable", 503, StatusCode.ERROR),
        (fallback.name, "anthropic", "ok", None, StatusCode.UNSET),
    ]
    assert all(a.kind is SpanKind.CLIENT for a in attempts)
    assert all(a.context.trace_id == call.context.trace_id for a in attempts)
    assert attempts[0].attributes["error.type"] == "ProviderUnavailable"  # type: ignore[index]
    winner = dict(attempts[-1].attributes or {})
    assert winner["gen_ai.request.model"] == "anthropic-model"
    assert winner["gen_ai.usage.input_tokens"] == attributes["gen_ai.usage.input_tokens"]
    # Every attempt lies inside the call.
    assert all(call.start_time <= a.start_time <= a.end_time <= call.end_time for a in attempts)  # type: ignore[operator]


@pytest.mark.parametrize("mode", ["chat", "astream"])
def test_metrics_count_attempts_failovers_waits_and_tokens(rig: Rig, mode: str) -> None:
    llm, primary, fallback = failing_over(rig)
    run(llm, mode)
    otel = rig.otel

    attempts = {
        (p.attributes["resilient_llm.route"], p.attributes["resilient_llm.outcome"]): p.value
        for p in otel.points("resilient_llm.attempts")
    }
    assert attempts == {(primary.name, "ProviderUnavailable"): 2, (fallback.name, "ok"): 1}
    (failover,) = otel.points("resilient_llm.failovers")
    assert failover.value == 1
    assert failover.attributes["resilient_llm.route"] == primary.name
    assert failover.attributes["resilient_llm.failover.to"] == fallback.name
    assert failover.attributes["resilient_llm.failover.reason"]  # the engine's wording
    waits = otel.points("resilient_llm.wait.duration")
    assert [(dict(w.attributes), w.count) for w in waits] == [
        ({"resilient_llm.route": primary.name, "resilient_llm.wait.reason": "backoff"}, 1)
    ]
    assert 0 < waits[0].sum <= RETRY.cap
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")
    }
    assert set(tokens) == {"input", "output"}
    assert tokens["output"].sum > 0
    assert tokens["output"].attributes["gen_ai.provider.name"] == "anthropic"
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    states = {
        p.attributes["resilient_llm.route"]: p.value
        for p in otel.points("resilient_llm.breaker.state")
    }
    assert states == {primary.name: 0, fallback.name: 0}


def test_the_breaker_gauge_reports_an_open_breaker(rig: Rig) -> None:
    primary = rig.route("gemini", "primary")
    fallback = rig.route("openai", "fallback")
    rig.server.script(primary.name, "server_error")
    llm = rig.engine(
        primary,
        fallback,
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=1, cooldown=600),
    )
    llm.chat(QUESTION)
    states = {
        p.attributes["resilient_llm.route"]: p.value
        for p in rig.otel.points("resilient_llm.breaker.state")
    }
    assert states == {primary.name: 2, fallback.name: 0}
    (call,) = rig.otel.calls()
    assert "breaker_state_changed" in [e.name for e in call.events]


def test_concurrent_calls_keep_their_own_spans(rig: Rig) -> None:
    """Six calls at once on one engine, interleaved by latency; two of them meet a 503 and
    fail over. No attempt lands under another call's span."""
    primary = rig.route("openai", "primary", Plan(latency=0.03))
    fallback = rig.route("gemini", "fallback", Plan(latency=0.01))
    rig.server.script(primary.name, "ok", "unavailable", "ok", "unavailable", "ok", "ok")
    llm = rig.engine(primary, fallback, retry=RetryPolicy(max_retries=0))
    outer = rig.otel.tracer_provider.get_tracer("test")

    async def main() -> list[ChatResponse]:
        with outer.start_as_current_span("request-handler"):
            return await asyncio.gather(*(llm.achat(f"{QUESTION} {i}") for i in range(6)))

    replies = asyncio.run(main())
    (handler,) = rig.otel.finished("request-handler")
    calls = rig.otel.calls()
    assert len(calls) == 6
    total = 0
    for call in calls:
        attempts = rig.otel.attempts_of(call)
        attributes = call.attributes or {}
        assert call.parent is not None
        assert call.parent.span_id == handler.context.span_id
        assert len(attempts) == attributes["resilient_llm.attempts"]
        routes = [a.attributes["resilient_llm.route"] for a in attempts]  # type: ignore[index]
        assert routes[-1] == attributes["resilient_llm.provider"]
        assert attributes["resilient_llm.failovers"] == len(set(routes)) - 1
        total += len(attempts)
    assert total == len(rig.otel.finished("resilient_llm.attempt")) == rig.upstream() == 8
    assert sorted(r.provider for r in replies).count(fallback.name) == 2


def test_interleaved_streams_never_leak_their_context_to_the_consumer(rig: Rig) -> None:
    llm = rig.engine(rig.route("anthropic", "only"))
    outer = rig.otel.tracer_provider.get_tracer("test")
    with outer.start_as_current_span("consumer") as consumer:
        first = llm.stream("Tell me about Paris")
        second = llm.stream("Tell me about Lyon")
        pending = {"first": first, "second": second}
        while pending:
            for name, stream in list(pending.items()):
                try:
                    next(stream)
                except StopIteration:
                    del pending[name]
                # Between steps the consumer's own span is current, not a call's.
                assert trace.get_current_span() is consumer
    calls = rig.otel.calls()
    assert len(calls) == 2
    for call in calls:
        assert call.parent is not None
        assert call.parent.span_id == consumer.get_span_context().span_id
        (attempt,) = rig.otel.attempts_of(call)
        assert attempt.end_time >= attempt.start_time  # type: ignore[operator]


def test_an_abandoned_stream_ends_its_spans(rig: Rig) -> None:
    llm = rig.engine(rig.route("openai", "only"))
    stream = llm.stream("Tell me a long story about Paris")
    next(stream)
    assert rig.otel.calls() == []  # still open while the consumer holds the stream
    stream.close()
    (call,) = rig.otel.calls()
    assert call.attributes["resilient_llm.outcome"] == "abandoned"  # type: ignore[index]
    assert call.status.status_code is StatusCode.UNSET
    (attempt,) = rig.otel.attempts_of(call)
    assert attempt.attributes["resilient_llm.outcome"] == "ok"  # type: ignore[index]

    # Dropped without close(): the generator's finaliser ends it.
    dropped = llm.stream("Tell me a long story about Lyon")
    next(dropped)
    del dropped
    gc.collect()
    assert [c.attributes["resilient_llm.outcome"] for c in rig.otel.calls()] == [  # type: ignore[index]
        "abandoned",
        "abandoned",
    ]
    # Neither abandoned call counts as an operation.
    assert rig.otel.points("gen_ai.client.operation.duration") == []


def test_an_abandoned_async_stream_ends_its_spans(rig: Rig) -> None:
    llm = rig.engine(rig.route("gemini", "only"))

    async def main() -> None:
        stream = llm.astream("Tell me a long story about Paris")
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(main())
    (call,) = rig.otel.calls()
    assert call.attributes["resilient_llm.outcome"] == "abandoned"  # type: ignore[index]
    assert len(rig.otel.attempts_of(call)) == 1


def test_a_failed_call_is_an_error_span_and_an_error_duration(rig: Rig) -> None:
    only = rig.route("openai", "only")
    rig.server.script(only.name, "server_error", "server_error")
    llm = rig.engine(only)
    with pytest.raises(AllProvidersFailed):
        llm.chat(QUESTION)
    (call,) = rig.otel.calls()
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "AllProvidersFailed"  # type: ignore[index]
    assert call.attributes["resilient_llm.attempts"] == 2  # type: ignore[index]
    assert [a.attributes["http.response.status_code"] for a in rig.otel.attempts_of(call)] == [  # type: ignore[index]
        500,
        500,
    ]
    (duration,) = rig.otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "AllProvidersFailed"
    assert rig.otel.points("gen_ai.client.token.usage") == []


def test_a_cache_hit_is_a_call_span_with_no_attempt_and_no_tokens(rig: Rig) -> None:
    llm = rig.engine(rig.route("anthropic", "only"), cache=ResponseCache())
    for mode in ("chat", "stream"):
        run(llm, mode, temperature=0)
    miss, hit = rig.otel.calls()
    assert miss.attributes["resilient_llm.cache"] == "miss"  # type: ignore[index]
    assert hit.attributes["resilient_llm.cache"] == "hit"  # type: ignore[index]
    assert hit.attributes["resilient_llm.attempts"] == 0  # type: ignore[index]
    assert "gen_ai.usage.input_tokens" not in (hit.attributes or {})
    assert rig.otel.attempts_of(hit) == []
    lookups = {
        p.attributes["resilient_llm.cache.result"]: p.value
        for p in rig.otel.points("resilient_llm.cache.lookups")
    }
    assert lookups == {"miss": 1, "hit": 1}
    (tokens_in, _) = sorted(
        rig.otel.points("gen_ai.client.token.usage"),
        key=lambda p: p.attributes["gen_ai.token.type"],
    )
    assert tokens_in.count == 1  # the hit spent nothing


def test_no_key_and_no_content_in_any_span_or_metric(rig: Rig) -> None:
    llm, _, _ = failing_over(rig)
    secret_question = "My card number is 4111-1111-1111-1111, what is the capital of France?"
    for mode in MODES:
        run(llm, mode, secret_question)
    texts: list[str] = []
    for span in rig.otel.spans.get_finished_spans():
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            texts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    data = rig.otel.reader.get_metrics_data()
    assert data is not None
    texts.append(data.to_json())
    blob = "\n".join(texts)
    for secret in (KEY, "4111", "capital", "Paris"):
        assert secret not in blob


# -- with our own adapter: what is current while the provider is called ----------------------


class Spy:
    """An adapter that notes the current span when called, as an HTTP instrumentation would."""

    def __init__(self) -> None:
        self.seen: list[trace.Span] = []

    def chat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        self.seen.append(trace.get_current_span())
        return ChatResponse("ok", provider="spy", model="m", usage=Usage(1, 1))

    async def achat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        return self.chat(request, timeout)

    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]:
        self.seen.append(trace.get_current_span())
        yield ChatChunk("ok", provider="spy", model="m", usage=Usage(1, 1), finish_reason="stop")

    async def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]:
        for chunk in self.stream(request, timeout):
            yield chunk

    def close(self) -> None:
        pass


@pytest.mark.parametrize("mode", MODES)
def test_the_attempt_span_is_current_while_the_provider_is_called(otel: Otel, mode: str) -> None:
    spy = Spy()
    llm = ResilientLLM(
        [Provider("openai", "m", name="spy", api_key="k")],
        adapter_factory=lambda p: spy,
        telemetry=otel.telemetry,
    )
    run(llm, mode)
    (attempt,) = otel.finished("resilient_llm.attempt")
    (current,) = spy.seen
    assert current.get_span_context().span_id == attempt.context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached


def test_without_an_sdk_the_global_no_op_providers_cost_nothing_and_break_nothing() -> None:
    spy = Spy()
    llm = ResilientLLM(
        [Provider("openai", "m", name="spy", api_key="k")],
        adapter_factory=lambda p: spy,
        telemetry=Telemetry(),
    )
    assert llm.chat(QUESTION).content == "ok"
    assert run(llm, "astream") == "ok"


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"Telemetry\.tracer_provider"):
        Telemetry(tracer_provider="jaeger")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"Telemetry\.meter_provider"):
        Telemetry(meter_provider=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"ResilientLLM\.telemetry"):
        ResilientLLM([Provider("openai", "m", api_key="k")], telemetry=object())  # type: ignore[arg-type]


def test_public_names() -> None:
    import resilient_llm.extras.telemetry as module

    assert sorted(module.__all__) == ["EngineTelemetry", "GEN_AI_PROVIDER", "Telemetry"]
    assert dict(GEN_AI_PROVIDER) == {
        "openai": "openai",
        "anthropic": "anthropic",
        "gemini": "gcp.gemini",
    }
    assert EngineTelemetry.__module__ == "resilient_llm.extras.telemetry"
