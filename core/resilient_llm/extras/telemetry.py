"""OpenTelemetry spans and metrics for the engine (extra ``otel``: ``opentelemetry-api``).

``ResilientLLM(providers, telemetry=Telemetry())`` traces every call through the global
tracer and meter providers, or the ones given. Without an SDK configured, OpenTelemetry's
no-op providers make this nearly free.

Spans, one tree per call::

    resilient_llm.call      INTERNAL  the whole call: queueing, attempts, backoff, failover
    └── resilient_llm.attempt  CLIENT  one request to one route (one per attempt)

The call span carries ``gen_ai.operation.name`` (``"chat"``), ``gen_ai.request.model``,
``gen_ai.request.temperature`` / ``max_tokens`` when set, and at the end
``resilient_llm.provider`` (the route that answered) with its ``gen_ai.provider.name``,
``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
``gen_ai.response.finish_reasons``, ``resilient_llm.attempts``, ``resilient_llm.failovers``,
``resilient_llm.waited`` (seconds) and ``resilient_llm.wait_reasons``,
``resilient_llm.outcome`` (``"ok"``, the error class, or ``"abandoned"`` for a stream let
go of early), ``error.type`` on failure and ``resilient_llm.cache`` with a cache. Skips,
retries, pauses, waits, failovers and breaker changes are span events on it. Each attempt
span has ``gen_ai.provider.name`` (``openai``, ``anthropic``, ``gcp.gemini``),
``resilient_llm.route``, ``gen_ai.request.model``, ``resilient_llm.outcome``,
``http.response.status_code`` and ``error.type`` when it failed; the attempt that
answered also gets the usage, and for a stream lasts until the stream ends. The attempt
span is the current span while the provider is called, so an instrumented HTTP client
nests under it. Names follow the OpenTelemetry GenAI semantic conventions where one
exists. No attribute or event holds a key, a header or message content.

Metrics:

====================================  =========  ========================================
``resilient_llm.attempts``            counter    by ``resilient_llm.route``, provider,
                                                 outcome, ``http.response.status_code``
``resilient_llm.failovers``           counter    by route, ``resilient_llm.failover.to``
                                                 and ``resilient_llm.failover.reason``
``resilient_llm.wait.duration``       histogram  seconds waited, by route and
                                                 ``resilient_llm.wait.reason``
                                                 (``limiter``, ``backoff``, ``retry-after``)
``resilient_llm.breaker.state``       gauge      per route: 0 closed, 1 half-open, 2 open
``resilient_llm.cache.lookups``       counter    by ``resilient_llm.cache.result`` (``hit``,
                                                 ``miss``, ``error``)
``gen_ai.client.token.usage``         histogram  tokens by ``gen_ai.token.type`` (``input``,
                                                 ``output``), provider, route, model
``gen_ai.client.operation.duration``  histogram  seconds per call, retries included;
                                                 ``error.type`` on failure; cache hits and
                                                 abandoned streams are not counted
====================================  =========  ========================================

The engine emits its events synchronously in the caller's context (the caller's thread,
the caller's task, the stream consumer's ``next``); a context variable set for the
duration of each of those steps pairs every event with its call, so concurrent calls
never share spans.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import SpanKind, TracerProvider

from .._version import __version__
from ..errors import ConfigurationError
from ..events import (
    AttemptFinished,
    AttemptStarted,
    BreakerStateChanged,
    CacheHit,
    CacheMiss,
    CacheUnavailable,
    Event,
    Failover,
    LimiterWait,
    RetryScheduled,
    RouteDisabled,
    RoutePaused,
    RouteSkipped,
    StateDown,
    StateRestored,
)
from ..messages import ChatRequest
from ..policies.breaker import CircuitState
from ..providers.base import PerKind, Provider
from ..providers.registry import provider_spec
from ..state.snapshot import Snapshot
from ._spans import CURRENT, CallSpans, failed

__all__ = ["GEN_AI_PROVIDER", "EngineTelemetry", "Telemetry"]


class _Engine(Protocol):
    """What telemetry reads of an engine (named here: importing the engine would be a cycle)."""

    @property
    def providers(self) -> Sequence[Provider]: ...

    def snapshot(self) -> Snapshot: ...


logger = logging.getLogger("resilient_llm")

# gen_ai.provider.name's well-known values, by kind (each kind's spec names its own).
GEN_AI_PROVIDER: Mapping[str, str] = PerKind(lambda spec: spec.telemetry_name)
_BREAKER_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
# The semantic conventions' advised buckets.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]
_SECONDS_BUCKETS = [0.01 * 2.0**i for i in range(14)]
_SPAN_EVENTS = (
    RetryScheduled,
    RoutePaused,
    RouteSkipped,
    RouteDisabled,
    BreakerStateChanged,
    StateDown,
    StateRestored,
)


class Telemetry:
    """Instruments for one or more engines: pass it as ``ResilientLLM(telemetry=...)``.

    ``tracer_provider`` and ``meter_provider`` default to OpenTelemetry's global ones.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
            raise ConfigurationError(
                f"Telemetry.tracer_provider must be an OpenTelemetry TracerProvider, "
                f"got {type(tracer_provider).__name__}"
            )
        if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
            raise ConfigurationError(
                f"Telemetry.meter_provider must be an OpenTelemetry MeterProvider, "
                f"got {type(meter_provider).__name__}"
            )
        self.tracer = trace.get_tracer("resilient_llm", __version__, tracer_provider)
        meter = metrics.get_meter("resilient_llm", __version__, meter_provider)
        self.attempts = meter.create_counter(
            "resilient_llm.attempts", "{attempt}", "Requests sent to a route, by outcome"
        )
        self.failovers = meter.create_counter(
            "resilient_llm.failovers", "{failover}", "Calls moved from one route to the next"
        )
        self.waits = meter.create_histogram(
            "resilient_llm.wait.duration",
            "s",
            "Time a call waited: limiter queue, backoff or a provider's retry-after",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.cache_lookups = meter.create_counter(
            "resilient_llm.cache.lookups", "{lookup}", "Response cache lookups, by result"
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Tokens the provider reported, input and output",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            "s",
            "Duration of a whole call, retries and failovers included",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._engines: weakref.WeakSet[_Engine] = weakref.WeakSet()
        meter.create_observable_gauge(
            "resilient_llm.breaker.state",
            [self._breakers],
            "1",
            "Circuit breaker state per route: 0 closed, 1 half-open, 2 open",
        )

    def bind(self, engine: _Engine) -> EngineTelemetry:
        """What ``engine`` uses; the engine calls this once, from its constructor."""
        self._engines.add(engine)
        return EngineTelemetry(self, engine.providers)

    def _breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        # Two engines may share route names: report the worse state.
        worst: dict[str, int] = {}
        for engine in list(self._engines):
            try:
                snapshot = engine.snapshot()
            except Exception:
                logger.exception("telemetry could not read %r's breakers", engine)
                continue
            for route in snapshot:
                value = _BREAKER_VALUE.get(route.breaker.state, 0)
                worst[route.name] = max(value, worst.get(route.name, 0))
        return [Observation(v, {"resilient_llm.route": name}) for name, v in worst.items()]

    def __repr__(self) -> str:
        return "Telemetry()"


class EngineTelemetry:
    """One engine's side of a :class:`Telemetry`: its event handler and per-call traces."""

    def __init__(self, telemetry: Telemetry, providers: Sequence[Provider]) -> None:
        self.telemetry = telemetry
        self.routes = {p.name: p for p in providers}
        self.first = providers[0]
        self._dispatch: dict[type[Event], Callable[[Any, CallSpans | None], None]] = {
            AttemptStarted: self._attempt_started,
            AttemptFinished: self._attempt_finished,
            Failover: self._failover,
            LimiterWait: self._wait,
            CacheHit: self._cache("hit"),
            CacheMiss: self._cache("miss"),
            CacheUnavailable: self._cache("error"),
        }
        for kind in _SPAN_EVENTS:
            self._dispatch[kind] = _span_event

    def call(self, request: ChatRequest, mode: str) -> CallSpans:
        return CallSpans(self, request, mode)

    def kind(self, route: str) -> str:
        provider = self.routes.get(route)
        if provider is None:
            return ""
        return provider_spec(provider.kind).telemetry_name or provider.kind

    def __call__(self, event: Event) -> None:
        handler = self._dispatch.get(type(event))
        if handler is None:
            return
        call = CURRENT.get()
        handler(event, call if call is not None and call.owner is self else None)

    # -- events ---------------------------------------------------------------------------

    def _attempt_started(self, event: AttemptStarted, call: CallSpans | None) -> None:
        if call is None or call.span is None:
            return
        call.end_attempt(None)
        provider = self.routes.get(event.route)
        # As the engine does: a per-call model names a model of the first route only.
        if call.request.model is not None and provider is self.first:
            model = call.request.model
        else:
            model = provider.model if provider is not None else ""
        span = self.telemetry.tracer.start_span(
            "resilient_llm.attempt",
            context=trace.set_span_in_context(call.span),
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": self.kind(event.route),
                "gen_ai.request.model": model,
                "resilient_llm.route": event.route,
                "resilient_llm.attempt": event.attempt,
            },
        )
        call.attempts += 1
        call.attempt = span
        call.attempt_token = otel_context.attach(trace.set_span_in_context(span))

    def _attempt_finished(self, event: AttemptFinished, call: CallSpans | None) -> None:
        attributes: dict[str, str | int] = {
            "resilient_llm.route": event.route,
            "gen_ai.provider.name": self.kind(event.route),
            "resilient_llm.outcome": event.outcome,
        }
        if event.status_code is not None:
            attributes["http.response.status_code"] = event.status_code
        self.telemetry.attempts.add(1, attributes)
        if call is None or call.attempt is None:
            return
        span = call.attempt
        call.attempt = None
        call.detach_attempt()
        span.set_attribute("resilient_llm.outcome", event.outcome)
        if event.status_code is not None:
            span.set_attribute("http.response.status_code", event.status_code)
        if event.outcome == "ok":
            call.winner = span  # ended with the reply, which brings its usage
        else:
            failed(span, event.outcome)
            span.end()

    def _failover(self, event: Failover, call: CallSpans | None) -> None:
        self.telemetry.failovers.add(
            1,
            {
                "resilient_llm.route": event.route,
                "resilient_llm.failover.to": event.to_route,
                "resilient_llm.failover.reason": event.reason,
            },
        )
        if call is not None:
            call.failovers += 1
            _span_event(event, call)

    def _wait(self, event: LimiterWait, call: CallSpans | None) -> None:
        self.telemetry.waits.record(
            event.seconds,
            {"resilient_llm.route": event.route, "resilient_llm.wait.reason": event.reason},
        )
        if call is not None:
            call.waited += event.seconds
            if event.reason not in call.reasons:
                call.reasons.append(event.reason)
            _span_event(event, call)

    def _cache(self, result: str) -> Callable[[Event, CallSpans | None], None]:
        attributes = {"resilient_llm.cache.result": result}

        def count(event: Event, call: CallSpans | None) -> None:
            self.telemetry.cache_lookups.add(1, attributes)

        return count


def _span_event(event: Event, call: CallSpans | None) -> None:
    if call is None or call.span is None:
        return
    # Events hold route names, numbers, reasons and error class names only.
    attributes = {
        f"resilient_llm.{k}": v
        for k, v in vars(event).items()
        if k not in ("kind", "at") and isinstance(v, str | int | float)
    }
    call.span.add_event(event.kind, attributes)
