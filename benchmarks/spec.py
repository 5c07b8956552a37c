"""What a system is asked to be: its routes, their limits, and one resilience policy.

A :class:`Setup` is plain data that crosses the process boundary as JSON: the orchestrator
writes it, a worker builds its system from it. Each system maps the same :class:`Policy`
onto its own knobs (see ``systems.py``), so no system gets a more forgiving configuration
than another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["API_KEY", "MODELS", "PROMPT", "Hit", "Policy", "Route", "Setup", "is_answer"]

API_KEY = "bench-dummy-key"
"""Every system gets this key: the chaos server never checks one, and no real key is read."""

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}

PROMPT = "What is the capital of France?"


def is_answer(text: str) -> bool:
    """A success is a correct reply, not merely an HTTP 200."""
    return "Paris" in text


@dataclass(frozen=True)
class Route:
    """One provider, in preference order; ``rpm``/``tpm`` are the limits the system is told."""

    kind: str
    url: str = ""
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class Policy:
    """The resilience policy every system expresses in its own terms.

    ``retries`` per provider per call; ``breaker_failures`` failures take a provider out of
    rotation for ``cooldown`` seconds; ``deadline`` is the caller's budget for one call.
    """

    retries: int = 3
    breaker_failures: int = 5
    cooldown: float = 5.0
    deadline: float = 10.0


@dataclass(frozen=True)
class Setup:
    routes: tuple[Route, ...]
    policy: Policy = field(default_factory=Policy)
    max_tokens: int = 256

    def with_urls(self, urls: dict[str, str]) -> Setup:
        routes = tuple(
            Route(r.kind, urls[r.kind], r.rpm, r.tpm) for r in self.routes if r.kind in urls
        )
        return Setup(routes, self.policy, self.max_tokens)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Setup:
        data: dict[str, Any] = json.loads(text)
        return cls(
            routes=tuple(Route(**r) for r in data["routes"]),
            policy=Policy(**data["policy"]),
            max_tokens=data["max_tokens"],
        )


@dataclass(frozen=True)
class Hit:
    """One request as the chaos server saw it: the ground truth for upstream calls and 429s.

    ``t`` is seconds since GO; ``tokens`` the quota tokens charged (0 when refused).
    """

    provider: str
    status: int
    fault: str
    t: float
    tokens: int
