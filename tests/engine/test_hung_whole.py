"""Whole-reply calls judged by signs of life: an attempt that may be hedged reads its reply
through the provider's stream, so a slow but live reply (its first chunk in) is never raced,
and the reply it assembles is the one the plain request would have returned.

Each comparison asks the same chaos script twice on fresh routes, once through the plain
request (hedging off) and once through the stream (hedging on, a spare route beside it),
and checks in the chaos log which way each was asked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from resilient_llm import ChatResponse, Message, Provider, ResilientLLM
from resilient_llm.events import AttemptFinished, AttemptStarted, Hedged
from resilient_llm.policies.hints import RateLimitHints
from resilient_llm.testing.chaos import Fault, Plan

from .conftest import ANSWER, FALLBACK, KINDS, QUESTION, Bench

WHOLE = ("chat", "achat")
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-3-pro-preview"}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
# Long enough for the chaos providers to report cached prompt tokens.
LONG = "Background: " + "the quick brown fox jumps over the lazy dog. " * 200
ASKS: dict[str, tuple[list[Message], dict[str, Any]]] = {
    "text": ([Message("user", QUESTION)], {}),
    "tools": (
        [Message("user", "What is the weather in 'Paris' for 3 days?")],
        {"tools": [WEATHER]},
    ),
    "reasoning": (
        [Message("user", "What is the weather in Paris?")],
        {"tools": [WEATHER], "reasoning_effort": "low"},
    ),
    "cached": ([Message("system", LONG), Message("user", QUESTION)], {}),
}


def _route(bench: Bench, kind: str, role: str) -> Provider:
    name = f"{kind}-{bench.tag}-{role}"
    # A quota, so that the replies carry quota headers to compare.
    bench.server.set_plan(name, Plan(rpm=1000, tpm=10_000_000))
    bench.names.append(name)
    return Provider(
        kind,  # type: ignore[arg-type]
        MODELS[kind],
        base_url=bench.server.base_url(name),
        api_key="test-key",
        name=name,
    )


def _ask(bench: Bench, llm: ResilientLLM, mode: str, ask: str) -> ChatResponse:
    messages, options = ASKS[ask]
    if mode == "chat":
        return llm.chat(messages, **options)
    return bench.runner.run(llm.achat(messages, **options))


def _streamed(bench: Bench, provider: Provider) -> list[bool]:
    return [r.stream for r in bench.server.log if r.provider == provider.name]


def _same(reply: ChatResponse) -> tuple[Any, ...]:
    return (
        reply.content,
        reply.model,
        reply.tool_calls,
        reply.reasoning,
        reply.refusal,
        reply.finish_reason,
        reply.usage,
        _counts(reply.quota),
    )


def _counts(quota: RateLimitHints | None) -> dict[str, object] | None:
    """The quota's limits and what is left; resets are waits from when each reply came."""
    if quota is None:
        return None
    return {k: v for k, v in dataclasses.asdict(quota).items() if not k.startswith("reset")}


@pytest.mark.parametrize("ask", list(ASKS))
@pytest.mark.parametrize("mode", WHOLE)
@pytest.mark.parametrize("kind", KINDS)
def test_the_assembled_reply_is_the_plain_reply(
    bench: Bench, kind: str, mode: str, ask: str
) -> None:
    plain_route = _route(bench, kind, "plain")
    plain = ResilientLLM([plain_route], timeout=10.0)
    streamed_route = _route(bench, kind, "streamed")
    spare = _route(bench, FALLBACK[kind], "spare")
    hedged = ResilientLLM([streamed_route, spare], timeout=10.0, on_event=bench.events.append)
    bench.engines += [plain, hedged]

    expected = _ask(bench, plain, mode, ask)
    got = _ask(bench, hedged, mode, ask)

    assert _streamed(bench, plain_route) == [False]
    assert _streamed(bench, streamed_route) == [True]
    assert _streamed(bench, spare) == []
    assert got.provider == streamed_route.name
    assert _same(got) == _same(expected)
    if kind != "gemini":  # Gemini states no quota in its headers
        assert got.quota is not None
        assert got.quota.remaining_requests is not None
    if ask in ("tools", "reasoning"):
        assert got.tool_calls
        assert got.tool_calls[0].arguments
    if ask == "reasoning" and kind != "openai":
        signed = [p.signature for p in got.reasoning] + [c.signature for c in got.tool_calls]
        assert any(signed), got
    if ask == "cached" and kind != "anthropic":
        assert got.usage is not None
        assert got.usage.cached_input_tokens
    assert bench.of(Hedged) == []


@pytest.mark.parametrize("mode", WHOLE)
@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_but_live_reply_completes_on_its_route(bench: Bench, kind: str, mode: str) -> None:
    primary = bench.route(kind, "slow")
    fallback = bench.route(FALLBACK[kind], "spare")
    # A frame every 0.8 s: the first within about 3 s, the whole reply after 4 to 7 s,
    # past the half of the deadline at which a quiet attempt would be raced.
    bench.script(primary, Fault("steady", delay=0.8))
    llm = ResilientLLM([primary, fallback], timeout=10.0, on_event=bench.events.append)
    bench.engines.append(llm)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.providers == {primary.name}
    assert bench.of(Hedged) == []
    assert bench.calls(1) == [(primary.name, 200, "steady")], "the spare was never asked"


@pytest.mark.parametrize("fault", ["truncate", "stream_error"])
@pytest.mark.parametrize("mode", WHOLE)
def test_a_reply_broken_after_its_first_chunk_is_a_failed_attempt(
    bench: Bench, mode: str, fault: str
) -> None:
    primary = bench.route("anthropic", "broken")
    fallback = bench.route("gemini", "healthy")
    bench.script(primary, fault, fault)
    llm = bench.engine(primary, fallback, timeout=10.0)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.providers == {fallback.name}
    finished = [(e.route, e.outcome) for e in bench.of(AttemptFinished)]
    assert finished[:2] == [(primary.name, "ProviderUnavailable")] * 2
    assert finished[2:] == [(fallback.name, "ok")]


def test_single_route_and_hedge_off_calls_send_the_plain_request(bench: Bench) -> None:
    alone = bench.route("openai", "alone")
    first, second = bench.route("gemini", "first"), bench.route("anthropic", "second")
    for llm in (
        ResilientLLM([alone], timeout=5.0),
        ResilientLLM([first, second], timeout=5.0, hedge=False),
    ):
        bench.engines.append(llm)
        for mode in WHOLE:
            assert bench.run(llm, mode).text == ANSWER
    assert _streamed(bench, alone) == [False, False]
    assert _streamed(bench, first) == [False, False]


def test_sync_events_reach_handlers_in_order_from_the_racing_threads(bench: Bench) -> None:
    primary = bench.route("openai", "hung")
    fallback = bench.route("gemini", "healthy")
    bench.script(primary, Fault("blackhole", delay=60))
    llm = ResilientLLM([primary, fallback], timeout=3.0, on_event=bench.events.append)
    bench.engines.append(llm)

    assert bench.run(llm, "chat").providers == {fallback.name}

    seen = [
        (type(e).__name__, e.route)
        for e in bench.events
        if isinstance(e, AttemptStarted | AttemptFinished | Hedged)
    ]
    assert seen == [
        ("AttemptStarted", primary.name),
        ("Hedged", primary.name),
        ("AttemptStarted", fallback.name),
        ("AttemptFinished", fallback.name),
    ], "the cancelled primary counts neither way"
