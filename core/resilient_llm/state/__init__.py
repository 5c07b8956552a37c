"""Where routes keep their shared state: this process's memory, or Redis for many processes.

A backend builds the :class:`~resilient_llm.state.memory.Route` of each provider. The memory
backend (the default) keeps limiter, breaker and pause in the process; the Redis backend
(:class:`resilient_llm.state.redis.RedisState`, extra ``redis``) keeps them in Redis so
every worker of an application shares one quota and one breaker per provider.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..events import EventHandler
from ..policies.breaker import BreakerPolicy, CircuitBreaker
from ..policies.limiter import Limiter, RateLimit
from .memory import Route
from .snapshot import Snapshot

__all__ = ["MemoryState", "Snapshot", "StateBackend"]


@runtime_checkable
class StateBackend(Protocol):
    def route(
        self,
        name: str,
        limit: RateLimit,
        policy: BreakerPolicy,
        *,
        attempt_timeout: float | None,
        emit: EventHandler,
    ) -> Route:
        """The route called ``name``; an engine calls this once per provider."""
        ...


class MemoryState:
    """Each route's state in this process: nothing shared, nothing to configure."""

    def route(
        self,
        name: str,
        limit: RateLimit,
        policy: BreakerPolicy,
        *,
        attempt_timeout: float | None,
        emit: EventHandler,
    ) -> Route:
        return Route(
            name,
            Limiter(limit),
            CircuitBreaker(policy, name=name),
            attempt_timeout=attempt_timeout,
        )

    def __repr__(self) -> str:
        return "MemoryState()"
