"""One chaos server per session (per xdist worker) and engines built over it.

Every test takes its own prefixes (``openai-e12-primary``, ``gemini-e12-fallback``...) and
resets each with ``set_plan(name, Plan())``, so no script, quota window, pause or breaker
learnt by one test reaches another. The log is cleared before each test and always read
filtered to the test's own prefixes: a hung request is logged when its client goes away,
which may be after the test that sent it has ended.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# The SDKs are imported here, once, so that their import time never lands inside an
# attempt and eats a test's deadline (the adapters import them lazily).
import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401
from resilient_llm import (
    BreakerPolicy,
    ChatChunk,
    ChatResponse,
    Clock,
    Event,
    Provider,
    ResilientLLM,
    RetryPolicy,
)
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan, RequestRecord

from ..timing import cutting, eventually

__all__ = ["cutting"]

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
KINDS = ("openai", "anthropic", "gemini")
MODES = ("chat", "achat", "stream", "astream")
STREAMS = ("stream", "astream")
# Each primary's fallback is of another family, so a failover crosses protocols.
FALLBACK = {"openai": "anthropic", "anthropic": "gemini", "gemini": "openai"}
RETRY = RetryPolicy(max_retries=1, base=0.01, cap=0.05)
ATTEMPTS_PER_ROUTE = 1 + RETRY.max_retries
BREAKER = BreakerPolicy(failure_threshold=3, cooldown=30)

_TAGS = itertools.count()
LogEntry = tuple[str, int, str]


@dataclass
class Result:
    """What a call gave back: the reply (chat modes) or every chunk that arrived."""

    chunks: list[ChatChunk]
    reply: ChatResponse | None = None

    @property
    def text(self) -> str:
        if self.reply is not None:
            return self.reply.content
        return "".join(chunk.delta for chunk in self.chunks)

    @property
    def providers(self) -> set[str]:
        """Every route that contributed to the output the caller received."""
        if self.reply is not None:
            return {self.reply.provider}
        return {chunk.provider for chunk in self.chunks}


@dataclass
class Bench:
    """Fresh chaos prefixes and engines for one test; engines are closed at teardown."""

    server: ChaosServer
    tag: str
    names: list[str] = field(default_factory=list)
    engines: list[ResilientLLM] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # One event loop for the test's async calls, as an application would have: the
    # engine keeps an async SDK client per loop, so calls on one loop share a client.
    runner: asyncio.Runner = field(default_factory=asyncio.Runner)

    def run(self, llm: ResilientLLM, mode: str, chunks: list[ChatChunk] | None = None) -> Result:
        """One call in ``mode``; a stream's chunks land in ``chunks`` as they arrive, so
        the caller still has them when the stream raises."""
        received: list[ChatChunk] = [] if chunks is None else chunks
        if mode == "chat":
            return Result(received, llm.chat(QUESTION))
        if mode == "achat":
            return Result(received, self.runner.run(llm.achat(QUESTION)))
        if mode == "stream":
            for chunk in llm.stream(QUESTION):
                received.append(chunk)
            return Result(received)
        if mode == "astream":

            async def drain() -> None:
                async for chunk in llm.astream(QUESTION):
                    received.append(chunk)

            self.runner.run(drain())
            return Result(received)
        raise ValueError(f"unknown mode {mode!r}")

    def route(self, kind: str, role: str, **options: Any) -> Provider:
        """A provider on a fresh prefix ``{kind}-{tag}-{role}`` (the name picks the protocol)."""
        name = f"{kind}-{self.tag}-{role}"
        self.server.set_plan(name, Plan())
        self.names.append(name)
        return Provider(
            kind,  # type: ignore[arg-type]
            "chaos-model",
            base_url=self.server.base_url(name),
            api_key="test-key",
            name=name,
            **options,
        )

    def script(self, provider: Provider, *faults: Fault | str) -> None:
        self.server.script(provider.name, *faults)

    def plan(self, provider: Provider, plan: Plan) -> None:
        self.server.set_plan(provider.name, plan)

    def engine(
        self, *providers: Provider, timeout: float = 5.0, clock: Clock | None = None
    ) -> ResilientLLM:
        llm = ResilientLLM(
            list(providers),
            retry=RETRY,
            breaker=BREAKER,
            timeout=timeout,
            clock=clock,
            jitter_seed=0,
            on_event=self.events.append,
        )
        self.engines.append(llm)
        return llm

    def calls(self, at_least: int = 0) -> list[LogEntry]:
        """This test's requests in the chaos log, in arrival order: (prefix, status, fault).

        The server logs a request when its handler ends, which for a stream is after the
        client has read it: wait (briefly) for ``at_least`` records, and order them by
        arrival (``at``), not by when each was logged.
        """

        def mine() -> list[RequestRecord]:
            return [r for r in self.server.log if r.provider in self.names]

        eventually(lambda: len(mine()) >= at_least)
        return [(r.provider, r.status, r.fault) for r in sorted(mine(), key=lambda r: r.at)]

    def arrivals(self, provider: Provider, fault: str, status: int = 0) -> Callable[[], int]:
        """How many of ``provider``'s requests with ``fault`` reached the server, counting
        a stream once its ``status`` was sent (0: on arrival)."""

        def count() -> int:
            return sum(
                1
                for r in self.server.log
                if r.provider == provider.name and r.fault == fault and r.status == status
            )

        return count

    def of(self, event_type: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, event_type)]


@pytest.fixture(scope="session")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


@pytest.fixture
def bench(server: ChaosServer) -> Iterator[Bench]:
    server.clear_log()
    bench = Bench(server, f"e{next(_TAGS)}")
    yield bench
    # Closing the loop as asyncio.run does finalises the async SDK clients on it first.
    bench.runner.close()
    for llm in bench.engines:
        llm.close()
