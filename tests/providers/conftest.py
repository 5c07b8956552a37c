"""A chaos server for the adapter tests, and a fresh provider prefix per test.

Every test gets its own prefix (``openai-7``, ``anthropic-8``...), so a script left over by
a failing test cannot leak into the next one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from resilient_llm.providers import ChatAdapter, create_adapter
from resilient_llm.providers.base import Provider
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

KINDS = ("openai", "anthropic", "gemini")
_COUNTER = itertools.count()


@pytest.fixture(scope="session")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


@dataclass
class Route:
    """One prefix on the chaos server, and the adapters made for it (closed at teardown)."""

    server: ChaosServer
    kind: str
    prefix: str
    adapters: list[ChatAdapter] = field(default_factory=list)

    def provider(self, **options: Any) -> Provider:
        options.setdefault("api_key", "test-key")
        options.setdefault("name", f"route-{self.prefix}")
        return Provider(
            self.kind,  # type: ignore[arg-type]
            "chaos-model",
            base_url=self.server.base_url(self.prefix),
            **options,
        )

    def adapter(self, **options: Any) -> ChatAdapter:
        adapter = create_adapter(self.provider(**options))
        self.adapters.append(adapter)
        return adapter

    def script(self, *faults: Fault | str) -> None:
        self.server.script(self.prefix, *faults)

    def plan(self, plan: Plan) -> None:
        self.server.set_plan(self.prefix, plan)


def _route(server: ChaosServer, kind: str) -> Iterator[Route]:
    route = Route(server, kind, f"{kind}-{next(_COUNTER)}")
    yield route
    for adapter in route.adapters:
        adapter.close()


@pytest.fixture(params=KINDS)
def route(request: pytest.FixtureRequest, server: ChaosServer) -> Iterator[Route]:
    yield from _route(server, request.param)


@pytest.fixture
def openai_route(server: ChaosServer) -> Iterator[Route]:
    yield from _route(server, "openai")
