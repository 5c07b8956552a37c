"""A chaos server per xdist worker, and resilient LlamaIndex LLMs pointed at fresh prefixes.

Each test gets its own provider prefixes (``openai-li-3``...), so a scripted fault left by
one test never reaches another, and the log can be filtered to the test's own routes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from pydantic import Field

from llamaindex_resilient import ResilientLLM
from resilient_llm import BreakerPolicy, FakeClock, Provider, RetryPolicy
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan
from resilient_llm.testing.chaos.server import RequestRecord

KINDS = ("openai", "anthropic", "gemini")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
FALLBACK = {"openai": "anthropic", "anthropic": "gemini", "gemini": "openai"}
_COUNTER = itertools.count()
_CHAT_PATHS = ("chat/completions", "/messages", "generatecontent")


@pytest.fixture(scope="session")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


@dataclass
class Routes:
    """A primary and a fallback prefix on the chaos server, and LLMs built over them."""

    server: ChaosServer
    primary_kind: str
    fallback_kind: str
    primary: str = ""
    fallback: str = ""
    llms: list[ResilientLLM] = field(default_factory=list)
    # A model per kind other than MODELS' (a Gemini 3 model, a thinking Claude).
    models: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = next(_COUNTER)
        self.primary = f"{self.primary_kind}-li-{n}"
        self.fallback = f"{self.fallback_kind}-li-{n}"

    def provider(self, kind: str, prefix: str) -> Provider:
        return Provider(
            kind,  # type: ignore[arg-type]
            self.models.get(kind, MODELS[kind]),
            name=prefix,
            base_url=self.server.base_url(prefix),
            api_key="chaos-test",
        )

    def llm(self, **kwargs: Any) -> ResilientLLM:
        kwargs.setdefault("retry", RetryPolicy(max_retries=1))
        kwargs.setdefault("breaker", BreakerPolicy(failure_threshold=2, cooldown=30.0))
        kwargs.setdefault("clock", FakeClock())
        kwargs.setdefault("timeout", 20.0)
        llm = ResilientLLM(
            providers=[
                self.provider(self.primary_kind, self.primary),
                self.provider(self.fallback_kind, self.fallback),
            ],
            **kwargs,
        )
        self.llms.append(llm)
        return llm

    def fail_primary(self, how: str) -> None:
        """``rate_limit`` / ``overloaded``: the next few calls fail; ``outage``: all do."""
        if how == "outage":
            self.server.set_plan(self.primary, Plan(outages=[(0.0, 1e9)]))
        else:
            self.server.script(self.primary, *[Fault(how)] * 4)  # type: ignore[arg-type]

    def calls(self) -> list[tuple[str, int]]:
        """(prefix, HTTP status) of this test's chat calls, in order."""
        mine = (self.primary, self.fallback)
        return [
            (r.provider, r.status)
            for r in self.server.log
            if r.provider in mine and _is_chat(r.path)
        ]


def _routes(
    server: ChaosServer, primary: str, fallback: str | None = None, **models: str
) -> Iterator[Routes]:
    routes = Routes(server, primary, fallback or FALLBACK[primary], models=models)
    yield routes
    for llm in routes.llms:
        llm.engine.close()


@pytest.fixture(params=KINDS)
def routes(request: pytest.FixtureRequest, server: ChaosServer) -> Iterator[Routes]:
    """Parametrized over the primary route's family; the fallback is another family."""
    yield from _routes(server, request.param)


@pytest.fixture
def openai_routes(server: ChaosServer) -> Iterator[Routes]:
    yield from _routes(server, "openai")


@pytest.fixture
def gemini3_routes(server: ChaosServer) -> Iterator[Routes]:
    """A Gemini 3 model (strict about thought signatures) first, OpenAI after it."""
    yield from _routes(server, "gemini", "openai", gemini="gemini-3-pro-preview")


@pytest.fixture
def claude_thinking_routes(server: ChaosServer) -> Iterator[Routes]:
    """A Claude that thinks (given reasoning_effort) first, Gemini 3 after it (it answers
    400 to a signature it did not issue)."""
    yield from _routes(
        server, "anthropic", "gemini", anthropic="claude-sonnet-4-5", gemini="gemini-3-pro-preview"
    )


@pytest.fixture
def anthropic_gemini_routes(server: ChaosServer) -> Iterator[Routes]:
    """Anthropic first (no audio), Gemini after it."""
    yield from _routes(server, "anthropic", "gemini")


def chat_records(routes: Routes) -> list[RequestRecord]:
    """The test's chat calls as the chaos server logged them (with what they carried)."""
    mine = (routes.primary, routes.fallback)
    return [r for r in routes.server.log if r.provider in mine and _is_chat(r.path)]


def _is_chat(path: str) -> bool:
    return path.lower().endswith(_CHAT_PATHS)


class Collector(BaseEventHandler):
    """Every instrumentation event seen while attached."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Collector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, *types: type[BaseEvent]) -> list[BaseEvent]:
        return [e for e in self.events if isinstance(e, types)]


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A handler on the root dispatcher, removed after the test."""
    root = get_dispatcher()
    handler = Collector()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


@pytest.fixture
def settings_llm() -> Iterator[None]:
    """Restore ``Settings`` after a test that touches it."""
    saved_llm = Settings._llm
    saved_embed = Settings._embed_model
    yield
    Settings._llm = saved_llm
    Settings._embed_model = saved_embed
