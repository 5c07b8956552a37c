"""The engine's events as LlamaIndex instrumentation events.

LlamaIndex observability tools (Arize Phoenix, Langfuse, OpenTelemetry bridges...) listen
on LlamaIndex's dispatcher tree, not on ``logging``. :func:`dispatch_event` is an engine
``on_event`` handler that re-emits every :class:`resilient_llm.Event` on the dispatcher of
this module (a child of the root dispatcher, so a handler attached to either sees them):

- :class:`ResilientAttemptEvent`: one attempt on one route finished (``outcome`` is
  ``"ok"`` or the error class name);
- :class:`ResilientRetryEvent`: a retry of the same route was scheduled after a backoff;
- :class:`ResilientFailoverEvent`: the call moved from ``route`` to ``to_route``;
- :class:`ResilientBreakerEvent`: a route's circuit breaker changed state;
- :class:`ResilientEngineEvent`: everything else (attempt started, limiter waits, routes
  skipped, paused or disabled, usage settled), with the engine's fields in ``details``.

Like the engine's own events they carry route names, numbers and error class names only,
never request content, headers or keys. A :class:`~llamaindex_resilient.ResilientLLM`
built from keyword arguments installs :func:`dispatch_event` itself; an engine you build
yourself needs ``on_event=dispatch_event``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events import BaseEvent

from resilient_llm import events as engine_events

__all__ = [
    "ResilientAttemptEvent",
    "ResilientBreakerEvent",
    "ResilientEngineEvent",
    "ResilientEvent",
    "ResilientFailoverEvent",
    "ResilientRetryEvent",
    "dispatch_event",
    "to_instrumentation_event",
]

dispatcher = get_dispatcher(__name__)


class ResilientEvent(BaseEvent):
    """Base of every resilient-llm event: the route concerned and the engine clock time."""

    route: str
    at: float

    @classmethod
    def class_name(cls) -> str:
        return "ResilientEvent"


class ResilientAttemptEvent(ResilientEvent):
    """One attempt finished: ``outcome`` is ``"ok"`` or the error class name."""

    attempt: int
    outcome: str
    duration: float
    status_code: int | None = None

    @classmethod
    def class_name(cls) -> str:
        return "ResilientAttemptEvent"


class ResilientRetryEvent(ResilientEvent):
    """The same route will be retried after ``delay`` seconds."""

    retry: int
    delay: float
    reason: str

    @classmethod
    def class_name(cls) -> str:
        return "ResilientRetryEvent"


class ResilientFailoverEvent(ResilientEvent):
    """The call moved from ``route`` to ``to_route``."""

    to_route: str
    reason: str

    @classmethod
    def class_name(cls) -> str:
        return "ResilientFailoverEvent"


class ResilientBreakerEvent(ResilientEvent):
    """``route``'s circuit breaker went from ``old`` to ``new`` (closed/open/half_open)."""

    old: str
    new: str
    reason: str

    @classmethod
    def class_name(cls) -> str:
        return "ResilientBreakerEvent"


class ResilientEngineEvent(ResilientEvent):
    """Any other engine event; ``kind`` is the engine's event kind (``"wait"``...)."""

    kind: str
    details: dict[str, Any]

    @classmethod
    def class_name(cls) -> str:
        return "ResilientEngineEvent"


def to_instrumentation_event(event: engine_events.Event) -> ResilientEvent:
    """The LlamaIndex event for one engine event."""
    match event:
        case engine_events.AttemptFinished():
            return ResilientAttemptEvent(
                route=event.route,
                at=event.at,
                attempt=event.attempt,
                outcome=event.outcome,
                duration=event.duration,
                status_code=event.status_code,
            )
        case engine_events.RetryScheduled():
            return ResilientRetryEvent(
                route=event.route,
                at=event.at,
                retry=event.retry,
                delay=event.delay,
                reason=event.reason,
            )
        case engine_events.Failover():
            return ResilientFailoverEvent(
                route=event.route, at=event.at, to_route=event.to_route, reason=event.reason
            )
        case engine_events.BreakerStateChanged():
            return ResilientBreakerEvent(
                route=event.route, at=event.at, old=event.old, new=event.new, reason=event.reason
            )
    details = {
        k: v for k, v in dataclasses.asdict(event).items() if k not in ("route", "at", "kind")
    }
    return ResilientEngineEvent(route=event.route, at=event.at, kind=event.kind, details=details)


def dispatch_event(event: engine_events.Event) -> None:
    """An engine ``on_event`` handler: emit ``event`` on LlamaIndex's dispatcher tree."""
    dispatcher.event(to_instrumentation_event(event))
