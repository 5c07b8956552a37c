"""Typed events: what the engine did and why, as it happens.

Every event is a frozen dataclass naming the route it concerns. The engine hands each
one to ``logging`` (logger ``resilient_llm``, DEBUG for routine steps, WARNING for
failovers and breaker changes) and to every user callback. Events carry route names,
numbers and error class names only, never request content, headers or keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "BreakerStateChanged",
    "CacheHit",
    "CacheMiss",
    "CacheUnavailable",
    "Emitter",
    "Event",
    "EventHandler",
    "Failover",
    "Hedged",
    "LimiterWait",
    "RetryScheduled",
    "RouteDisabled",
    "RoutePaused",
    "RouteSkipped",
    "Settled",
    "StateDown",
    "StateRestored",
    "StreamResumed",
    "heard",
]

logger = logging.getLogger("resilient_llm")


@dataclass(frozen=True)
class Event:
    route: str
    at: float
    kind: str = field(init=False, default="event")

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in asdict(self).items() if k not in ("kind",))
        return f"{self.kind}: {fields}"


@dataclass(frozen=True)
class AttemptStarted(Event):
    attempt: int
    kind: str = field(init=False, default="attempt_started")


@dataclass(frozen=True)
class AttemptFinished(Event):
    attempt: int
    outcome: str  # "ok" or the error class name
    duration: float
    status_code: int | None = None
    kind: str = field(init=False, default="attempt_finished")


@dataclass(frozen=True)
class RetryScheduled(Event):
    retry: int
    delay: float
    reason: str
    kind: str = field(init=False, default="retry_scheduled")


@dataclass(frozen=True)
class Failover(Event):
    to_route: str
    reason: str
    kind: str = field(init=False, default="failover")


@dataclass(frozen=True)
class RouteSkipped(Event):
    reason: str
    kind: str = field(init=False, default="route_skipped")


@dataclass(frozen=True)
class RoutePaused(Event):
    seconds: float
    reason: str
    kind: str = field(init=False, default="route_paused")


@dataclass(frozen=True)
class RouteDisabled(Event):
    reason: str
    kind: str = field(init=False, default="route_disabled")


@dataclass(frozen=True)
class LimiterWait(Event):
    seconds: float
    reason: str
    kind: str = field(init=False, default="wait")


@dataclass(frozen=True)
class Settled(Event):
    estimated_tokens: int
    actual_tokens: int
    kind: str = field(init=False, default="settled")


@dataclass(frozen=True)
class StreamResumed(Event):
    """A stream broke after text had reached the caller and ``to_route`` continues the
    same answer (``stream_recovery="continue"``); ``route`` is the one that broke,
    ``chars`` how much text the caller had at the seam, ``form`` how the continuation was
    asked for (``"prefill"``: the text as the model's own turn to go on from;
    ``"instruction"``: the text, then a request to continue it)."""

    to_route: str
    chars: int
    form: str
    reason: str
    kind: str = field(init=False, default="stream_resumed")


@dataclass(frozen=True)
class BreakerStateChanged(Event):
    old: str
    new: str
    reason: str
    kind: str = field(init=False, default="breaker_state_changed")


@dataclass(frozen=True)
class StateDown(Event):
    """The shared state store failed; ``policy`` says what the route does until it is back:
    ``"fallback"`` (this process's memory state) or ``"fail"`` (calls fail). ``reason``:
    ``"authentication"`` (its credentials were refused), ``"permission"`` (its ACL),
    ``"timeout"``, ``"unreachable"`` or ``"error"`` (Redis answered with one)."""

    error: str  # the error class name
    policy: str
    reason: str = "unreachable"
    kind: str = field(init=False, default="state_down")


@dataclass(frozen=True)
class StateRestored(Event):
    """The shared state store answers again; the route uses it from now on."""

    down_for: float
    kind: str = field(init=False, default="state_restored")


@dataclass(frozen=True)
class CacheHit(Event):
    """A reply came from the response cache (``route`` is ``"cache"``); no provider was
    called. ``provider`` is the route that gave the stored reply."""

    provider: str
    kind: str = field(init=False, default="cache_hit")


@dataclass(frozen=True)
class CacheMiss(Event):
    """A cacheable request was not in the cache; the call goes upstream."""

    kind: str = field(init=False, default="cache_miss")


@dataclass(frozen=True)
class CacheUnavailable(Event):
    """The cache store failed (``operation`` ``"get"`` or ``"set"``); the call went on as
    a miss, since a cache never fails a call."""

    error: str  # the error class name
    operation: str
    kind: str = field(init=False, default="cache_unavailable")


@dataclass(frozen=True)
class Hedged(Event):
    """The attempt on ``route`` showed no sign of life (no first chunk, no reply) for
    ``delay`` s: the next routes were asked beside it. ``reason`` says which sign was
    missing and the limit it was held to."""

    delay: float
    reason: str = ""
    kind: str = field(init=False, default="hedged")


EventHandler = Callable[[Event], None]

_WARN = (
    Failover,
    BreakerStateChanged,
    RouteDisabled,
    RoutePaused,
    StateDown,
    StateRestored,
    CacheUnavailable,
    StreamResumed,
)


class Emitter:
    """Logs each event and passes it to every handler; handlers may come and go at any time.

    A handler that raises is logged and skipped: observability must never fail a call.
    The handler tuple is replaced, never mutated, so emitting needs no lock.
    """

    def __init__(self, handlers: Iterable[EventHandler] = ()) -> None:
        self._handlers = tuple(handlers)

    def add(self, handler: EventHandler) -> None:
        if handler not in self._handlers:
            self._handlers = (*self._handlers, handler)

    def remove(self, handler: EventHandler) -> None:
        self._handlers = tuple(h for h in self._handlers if h != handler)

    @property
    def listening(self) -> bool:
        """Whether a routine (DEBUG) event reaches anyone: the logger, or a handler that
        listens now (see :func:`heard`)."""
        return logger.isEnabledFor(logging.DEBUG) or any(map(_listens, self._handlers))

    def __call__(self, event: Event) -> None:
        level = logging.WARNING if isinstance(event, _WARN) else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(level, "%s", event.describe())
        for callback in self._handlers:
            try:
                callback(event)
            except Exception:
                logger.exception("event handler %r failed on %s", callback, event.kind)


def heard(emit: EventHandler) -> bool:
    """Whether a routine (DEBUG) event handed to ``emit`` would reach anyone: the steps
    of every call need not be built while nobody listens.

    A handler listens unless it has a ``listening()`` method that says otherwise at the
    time: a plugin's forwarder to the call in progress, when that call has no handlers of
    its own, is asked so."""
    return not isinstance(emit, Emitter) or emit.listening


def _listens(handler: EventHandler) -> bool:
    asks = getattr(handler, "listening", None)
    return True if asks is None else bool(asks())
