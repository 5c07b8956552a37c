"""One call's spans: the ``resilient_llm.call`` span, its attempt spans, and what is current.

:mod:`resilient_llm.extras.telemetry` creates a :class:`CallSpans` per call and routes the
engine's events to it; the engine's call scope activates it around each step and
finishes it once.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Histogram
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from ..messages import ChatRequest, ChatResponse
from ..providers.base import Provider

__all__ = ["CURRENT", "CallSpans", "failed"]

logger = logging.getLogger("resilient_llm")


class _Instruments(Protocol):
    tracer: Tracer
    duration: Histogram
    tokens: Histogram


class Owner(Protocol):
    """The engine's telemetry a call reports to (``telemetry.EngineTelemetry``, which
    imports this module)."""

    @property
    def telemetry(self) -> _Instruments: ...

    @property
    def first(self) -> Provider: ...

    def kind(self, route: str) -> str: ...


# The call whose step is running in this context; the event handler pairs events with it.
CURRENT: ContextVar[CallSpans | None] = ContextVar("resilient_llm_call_spans", default=None)


def failed(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))


class CallSpans:
    """One call's spans and tallies; the engine's scope activates and finishes it."""

    def __init__(self, owner: Owner, request: ChatRequest, mode: str) -> None:
        self.owner = owner
        self.request = request
        self.mode = mode
        self.span: Span | None = None
        self.attempt: Span | None = None
        self.attempt_token: Token[otel_context.Context] | None = None
        self.winner: Span | None = None
        self.attempts = 0
        self.failovers = 0
        self.waited = 0.0
        self.reasons: list[str] = []
        self.started = 0.0
        self.done = False

    def activate(self) -> _Active:
        return _Active(self)

    def start(self) -> Span:
        request = self.request
        attributes: dict[str, str | int | float] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": request.model or self.owner.first.model,
            "resilient_llm.mode": self.mode,
        }
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = float(request.temperature)
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        self.span = self.owner.telemetry.tracer.start_span(
            "resilient_llm.call", kind=SpanKind.INTERNAL, attributes=attributes
        )
        self.started = time.perf_counter()
        return self.span

    def detach_attempt(self) -> None:
        token, self.attempt_token = self.attempt_token, None
        if token is not None:
            otel_context.detach(token)

    def end_attempt(self, outcome: str | None) -> None:
        """End an attempt cut short (cancelled, or its outcome never reported)."""
        self.detach_attempt()
        span, self.attempt = self.attempt, None
        if span is not None:
            if outcome is not None:
                span.set_attribute("resilient_llm.outcome", outcome)
                failed(span, outcome)
            span.end()

    def finish(
        self,
        *,
        reply: ChatResponse | None = None,
        error: BaseException | None = None,
        abandoned: bool = False,
    ) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._finish(reply, error, abandoned)
        except Exception:
            logger.exception("telemetry failed to finish a call's span")

    def _finish(
        self, reply: ChatResponse | None, error: BaseException | None, abandoned: bool
    ) -> None:
        span = self.span or self.start()
        outcome = "ok" if reply is not None else "abandoned" if abandoned else _name(error)
        self.end_attempt(None if outcome == "ok" else outcome)
        telemetry = self.owner.telemetry
        attributes: dict[str, Any] = {
            "resilient_llm.outcome": outcome,
            "resilient_llm.attempts": self.attempts,
            "resilient_llm.failovers": self.failovers,
            "resilient_llm.waited": self.waited,
            "resilient_llm.wait_reasons": tuple(self.reasons),
        }
        usage: dict[str, Any] = {}
        if reply is not None:
            usage = {
                "gen_ai.provider.name": self.owner.kind(reply.provider),
                "gen_ai.response.model": reply.model,
            }
            hit = reply.metadata.get("cache") == "hit"
            # A hit spent no tokens: reporting its stored usage would count them twice.
            if reply.usage is not None and not hit:
                usage["gen_ai.usage.input_tokens"] = reply.usage.input_tokens
                usage["gen_ai.usage.output_tokens"] = reply.usage.output_tokens
            if reply.finish_reason is not None:
                usage["gen_ai.response.finish_reasons"] = (reply.finish_reason,)
            attributes.update(usage, **{"resilient_llm.provider": reply.provider})
            cache = reply.metadata.get("cache")
            if isinstance(cache, str):
                attributes["resilient_llm.cache"] = cache
        winner, self.winner = self.winner, None
        if winner is not None:
            winner.set_attributes(usage)
            if outcome not in ("ok", "abandoned"):
                failed(winner, outcome)
            winner.end()
        span.set_attributes(attributes)
        if outcome not in ("ok", "abandoned"):
            failed(span, outcome)
        span.end()
        if abandoned or attributes.get("resilient_llm.cache") == "hit":
            return
        model = self.request.model or self.owner.first.model
        measured: dict[str, str] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        if reply is None:
            measured["error.type"] = outcome
        else:
            measured["gen_ai.provider.name"] = usage["gen_ai.provider.name"]
            measured["resilient_llm.route"] = reply.provider
        telemetry.duration.record(time.perf_counter() - self.started, measured)
        if reply is not None and reply.usage is not None:
            for kind, count in (
                ("input", reply.usage.input_tokens),
                ("output", reply.usage.output_tokens),
            ):
                telemetry.tokens.record(count, {**measured, "gen_ai.token.type": kind})


class _Active:
    """The call made current for one step: its span in the OpenTelemetry context, and
    itself in ours, so the engine's events find it."""

    __slots__ = ("_call", "_current", "_token")

    def __init__(self, call: CallSpans) -> None:
        self._call = call

    def __enter__(self) -> CallSpans:
        call = self._call
        span = call.span or call.start()
        self._token = otel_context.attach(trace.set_span_in_context(span))
        self._current = CURRENT.set(call)
        return call

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # An attempt interrupted mid-way never reported its end: detach its context
        # first, since contexts unwind last in, first out.
        self._call.detach_attempt()
        CURRENT.reset(self._current)
        otel_context.detach(self._token)


def _name(error: BaseException | None) -> str:
    return "unknown" if error is None else type(error).__name__
