"""Whole-reply calls judged by signs of life: an attempt that may be hedged reads its reply
through the provider's stream, so a slow but live reply (its first chunk in) is never raced,
and the reply it assembles is the one the plain request would have returned.

Each comparison asks the same chaos script twice on fresh routes, once through the plain
request (hedging off) and once through the stream (hedging on, a spare route beside it),
and checks in the chaos log which way each was asked.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from resilient_llm import ChatResponse, FakeClock, Message, Provider, RateLimit, ResilientLLM
from resilient_llm.events import AttemptFinished, AttemptStarted, Event, Hedged, LimiterWait
from resilient_llm.policies.hints import RateLimitHints
from resilient_llm.run.hedge import Hedge
from resilient_llm.run.stall import StreamTimeouts
from resilient_llm.testing.chaos import Fault, Plan

from .conftest import ANSWER, FALLBACK, KINDS, QUESTION, Bench, cutting, eventually

WHOLE = ("chat", "achat")
# Seconds between two frames of a steady stream, so that each family's whole reply (7, 9
# and 4 frames, the first with no text for OpenAI and Anthropic) takes about 7 s.
STEADY = {"openai": 1.05, "anthropic": 0.8, "gemini": 1.8}
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
        {k: v for k, v in reply.rate_limit_headers.items() if "reset" not in k},
        {k: reply.metadata.get(k) for k in ("raw_finish_reason", "block_reason")},
        "id" in reply.metadata,
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
        assert got.rate_limit_headers
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
    # The case: the first chunk after about 2 s, the whole reply after about 7 s,
    # past the half of the 10 s deadline at which a quiet attempt would be raced.
    bench.script(primary, Fault("steady", delay=STEADY[kind]))
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


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_sync_events_reach_handlers_in_order_from_the_racing_threads(
    bench: Bench, mode: str
) -> None:
    clock = FakeClock()
    primary = bench.route("openai", "hung")
    fallback = bench.route("gemini", "healthy")
    bench.script(primary, Fault("blackhole", delay=60))
    llm = _fake(bench, primary, fallback, clock=clock)
    caller = threading.get_ident()
    threads: dict[str, set[int]] = {}

    def note(event: Event) -> None:
        threads.setdefault(type(event).__name__, set()).add(threading.get_ident())

    llm.add_event_handler(note)

    with cutting(clock, bench.arrivals(primary, "blackhole")) as cuts:
        result = bench.run(llm, mode)

    assert cuts == [0.2]
    assert result.providers == {fallback.name}
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
    # The primary's attempts on the caller's thread; the hedge, announced and run on a
    # thread of its own, started only once the primary's attempt was quiet too long.
    [hedge_thread] = threads["Hedged"]
    assert hedge_thread != caller
    assert threads["AttemptStarted"] == {caller, hedge_thread}


def _fake(bench: Bench, *providers: Provider, clock: FakeClock, **options: Any) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers),
        timeout=10.0,
        hedge=Hedge(0.2),
        clock=clock,
        on_event=bench.events.append,
        **options,
    )
    bench.engines.append(llm)
    return llm


@pytest.mark.parametrize("mode", WHOLE)
@pytest.mark.parametrize("kind", KINDS)
def test_a_reply_with_no_first_chunk_is_raced(bench: Bench, kind: str, mode: str) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "quiet")
    fallback = bench.route(FALLBACK[kind], "quick")
    # The stream's headers at once, its first frame a minute later.
    bench.script(primary, Fault("slow_first_token", delay=60))
    llm = _fake(bench, primary, fallback, clock=clock)

    with cutting(clock, bench.arrivals(primary, "slow_first_token", 200)) as cuts:
        result = bench.run(llm, mode)

    assert cuts == [0.2], "the hedge started at its delay, the primary still quiet"
    assert result.providers == {fallback.name}
    [hedged] = bench.of(Hedged)
    assert "no first chunk of the reply" in hedged.reason


@pytest.mark.parametrize("mode", WHOLE)
@pytest.mark.parametrize("kind", KINDS)
def test_the_first_chunk_stops_the_quiet_timer(bench: Bench, kind: str, mode: str) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "live")
    fallback = bench.route(FALLBACK[kind], "spare")
    # The first content at once, then silence until the test releases the rest.
    bench.script(primary, Fault("stall", delay=60))
    # The idle limit's wait (to fake time 9) begins only once the first chunk has been
    # read and the attempt declared alive: seeing it, the test knows the sign of life
    # came, however slowly this machine's threads ran.
    llm = _fake(bench, primary, fallback, clock=clock, stream_timeouts=StreamTimeouts(idle=9))
    results: list[Any] = []
    caller = threading.Thread(target=lambda: results.append(bench.run(llm, mode)))
    caller.start()
    try:
        assert eventually(lambda: 9.0 in clock.deadlines() or not caller.is_alive())
        clock.advance(5.0)  # far past the hedge's delay, short of the idle limit
    finally:
        bench.server.release(primary.name)
        caller.join()
    [result] = results
    assert result.text == ANSWER
    assert result.providers == {primary.name}
    assert bench.of(Hedged) == []
    assert bench.calls(1) == [(primary.name, 200, "stall")], "the spare was never asked"


@pytest.mark.parametrize("mode", WHOLE)
def test_a_limiter_queue_is_no_quiet_time(bench: Bench, mode: str) -> None:
    clock = FakeClock()
    # One request per 2 s: the second call queues for its turn, longer than the hedge's
    # delay, and may (spill_over) rather than go to the spare at once.
    primary = bench.route("gemini", "limited", rate_limit=RateLimit(1, window=2.0))
    fallback = bench.route("openai", "spare")
    llm = _fake(bench, primary, fallback, clock=clock, spill_over=5.0)

    results = [bench.run(llm, mode) for _ in range(2)]

    assert [r.providers for r in results] == [{primary.name}] * 2
    [wait] = bench.of(LimiterWait)
    assert (wait.route, wait.seconds > 0.2) == (primary.name, True)
    assert bench.of(Hedged) == [], "the quiet timer starts when the request is sent"
    assert [name for name, _, _ in bench.calls(2)] == [primary.name] * 2
