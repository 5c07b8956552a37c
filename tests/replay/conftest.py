"""One replay server per session (per xdist worker); each test's routes on fresh prefixes.

A test builds routes with ``bench.route(kind, role)`` (a prefix of its own, the official
SDK pointed at it with ``api_key="test-key"``), queues recordings on them with
``bench.serve(route, ...)``, and drives an engine in one of the four modes with
``bench.run``. At teardown no request may have reached a route without a queued reply,
and the engines are closed.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# Imported once here so an SDK's import time never lands inside an attempt.
import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401
from resilient_llm import (
    BreakerPolicy,
    ChatChunk,
    ChatResponse,
    Event,
    FakeClock,
    Provider,
    ResilientLLM,
    RetryPolicy,
)
from resilient_llm._arguments import MessagesIn
from resilient_llm.content import join_reasoning

from .server import Received, Recording, ReplayServer

QUESTION = "What is the capital of France?"
KINDS = ("openai", "anthropic", "gemini")
MODES = ("chat", "achat", "stream", "astream")
STREAMS = ("stream", "astream")
# The model each family's recordings were made with (Gemini's SDK puts it in the path).
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
# A healthy route of another family, to fail over to.
FALLBACK = {"openai": "anthropic", "anthropic": "gemini", "gemini": "openai"}
# A plain answer per family and mode: the recorded JSON reply or SSE stream.
ANSWERS = {
    ("openai", False): "openai/chat_text",
    ("openai", True): "openai/stream_text_usage",
    ("anthropic", False): "anthropic/message_text",
    ("anthropic", True): "anthropic/stream_text",
    ("gemini", False): "gemini/generate_text",
    ("gemini", True): "gemini/stream_text",
}
RETRY = RetryPolicy(max_retries=1, base=0.01, cap=0.05)

_TAGS = itertools.count()


@dataclass
class Result:
    """What a call gave back: the reply (chat modes) or every chunk (streams)."""

    chunks: list[ChatChunk]
    reply: ChatResponse | None = None

    @property
    def text(self) -> str:
        if self.reply is not None:
            return self.reply.content
        return "".join(c.delta for c in self.chunks)

    @property
    def refusal(self) -> str | None:
        if self.reply is not None:
            return self.reply.refusal
        pieces = [c.refusal for c in self.chunks if c.refusal is not None]
        return "".join(pieces) if pieces else None

    @property
    def finish_reason(self) -> str | None:
        if self.reply is not None:
            return self.reply.finish_reason
        return next((c.finish_reason for c in reversed(self.chunks) if c.finish_reason), None)

    @property
    def provider(self) -> str:
        if self.reply is not None:
            return self.reply.provider
        (provider,) = {c.provider for c in self.chunks}
        return provider

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.reply.metadata if self.reply is not None else self.chunks[0].metadata)

    @property
    def response(self) -> ChatResponse:
        """The reply, or what the chunks amount to (reasoning pieces joined into blocks, as
        the engine's stream contract says), so every mode is checked the same way."""
        if self.reply is not None:
            return self.reply
        return ChatResponse(
            content=self.text,
            provider=self.provider,
            model=next((c.model for c in reversed(self.chunks) if c.model), ""),
            tool_calls=tuple(call for c in self.chunks for call in c.tool_calls),
            usage=next((c.usage for c in reversed(self.chunks) if c.usage), None),
            finish_reason=self.finish_reason,
            refusal=self.refusal,
            reasoning=join_reasoning(p for c in self.chunks for p in c.reasoning),
        )


def answer(kind: str, mode: str) -> str:
    return ANSWERS[kind, mode in STREAMS]


@dataclass
class Bench:
    """Fresh prefixes, engines and an event loop for one test."""

    server: ReplayServer
    tag: str
    engines: list[ResilientLLM] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    runner: asyncio.Runner = field(default_factory=asyncio.Runner)

    def route(
        self,
        kind: str,
        role: str,
        model: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Provider:
        prefix = f"{kind}-{self.tag}-{role}"
        self.prefixes.append(prefix)
        return Provider(
            kind,
            model or MODELS[kind],
            base_url=self.server.base_url(kind, prefix),
            api_key="test-key",
            name=prefix,
            options=options,
        )

    def serve(self, provider: Provider, *recordings: Recording | str) -> None:
        self.server.serve(provider.name, *recordings)

    def requests(self, provider: Provider) -> list[Received]:
        return self.server.requests(provider.name)

    def engine(self, *providers: Provider, **options: Any) -> ResilientLLM:
        options.setdefault("retry", RETRY)
        options.setdefault("breaker", BreakerPolicy(failure_threshold=3, cooldown=30))
        # The recordings are per mode, a whole reply's the plain JSON one; a call that may
        # be hedged reads its whole reply through the stream instead (what it assembles
        # is checked against the plain reply in tests/engine/test_hung_whole.py).
        options.setdefault("hedge", False)
        llm = ResilientLLM(
            list(providers),
            clock=FakeClock(1000.0),  # backoff and retry-after waits pass at once
            jitter_seed=0,
            timeout=30.0,
            on_event=self.events.append,
            **options,
        )
        self.engines.append(llm)
        return llm

    def run(self, llm: ResilientLLM, mode: str) -> Result:
        return self.call(llm, mode, QUESTION)

    def call(self, llm: ResilientLLM, mode: str, messages: MessagesIn, **options: Any) -> Result:
        """``messages`` (and call options) through ``llm`` in ``mode``."""
        if mode == "chat":
            return Result([], llm.chat(messages, **options))
        if mode == "achat":
            return Result([], self.runner.run(llm.achat(messages, **options)))
        if mode == "stream":
            return Result(list(llm.stream(messages, **options)))
        if mode == "astream":

            async def drain() -> list[ChatChunk]:
                return [chunk async for chunk in llm.astream(messages, **options)]

            return Result(self.runner.run(drain()))
        raise ValueError(f"unknown mode {mode!r}")

    def close(self) -> None:
        for llm in self.engines:
            llm.close()
        self.runner.close()


@pytest.fixture(scope="session")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def bench(replay: ReplayServer) -> Iterator[Bench]:
    bench = Bench(replay, f"t{next(_TAGS)}")
    try:
        yield bench
    finally:
        bench.close()
    stray = [r.path for r in replay.unexpected if r.prefix in bench.prefixes]
    assert not stray, f"requests reached routes with nothing queued: {stray}"
