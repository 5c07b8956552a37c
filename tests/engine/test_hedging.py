"""Hedged async calls: a slow primary is raced by the next route, the loser cancelled."""

from __future__ import annotations

import statistics
import time

import pytest

from resilient_llm import AllProvidersFailed, Provider, ResilientLLM, RetryPolicy
from resilient_llm.chaos import Fault
from resilient_llm.events import Hedged
from resilient_llm.hedge import Hedge

from .conftest import ANSWER, BREAKER, FALLBACK, KINDS, QUESTION, Bench, eventually


def _engine(bench: Bench, *providers: Provider, hedge: Hedge | None) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers),
        retry=RetryPolicy(max_retries=1, base=0.01, cap=0.05),
        breaker=BREAKER,
        timeout=10.0,
        hedge=hedge,
        on_event=bench.events.append,
    )
    bench.engines.append(llm)
    return llm


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_primary_is_raced_and_the_faster_answer_wins(bench: Bench, kind: str) -> None:
    primary = bench.route(kind, "slow")
    fallback = bench.route(FALLBACK[kind], "quick")
    bench.script(primary, Fault("ok", delay=5.0))
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.2))

    started = time.monotonic()
    reply = bench.runner.run(llm.achat(QUESTION))
    took = time.monotonic() - started

    assert reply.content == ANSWER
    assert reply.provider == fallback.name
    assert took < 3.0, "answered by the hedge, not after the primary's 5 s"
    [hedged] = bench.of(Hedged)
    assert (hedged.route, hedged.delay) == (primary.name, 0.2)
    # Both were asked; the primary's request was abandoned (no status was sent).
    assert sorted(bench.calls(2)) == sorted(
        [(primary.name, 0, "ok"), (fallback.name, 200, "ok")]
    ) or sorted(bench.calls(2)) == sorted([(primary.name, 200, "ok"), (fallback.name, 200, "ok")])
    snapshot = llm.snapshot()
    assert snapshot[primary.name].breaker.probes_in_flight == 0
    assert snapshot[primary.name].breaker.failures == 0, "a cancelled loser is no failure"


@pytest.mark.parametrize("kind", KINDS)
def test_a_quick_primary_is_never_hedged(bench: Bench, kind: str) -> None:
    primary = bench.route(kind, "primary")
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = _engine(bench, primary, fallback, hedge=Hedge(2.0))
    for _ in range(3):
        assert bench.runner.run(llm.achat(QUESTION)).provider == primary.name
    assert bench.of(Hedged) == []
    assert {name for name, _, _ in bench.calls(3)} == {primary.name}


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_is_raced_on_its_first_chunk(bench: Bench, kind: str) -> None:
    primary = bench.route(kind, "slow")
    fallback = bench.route(FALLBACK[kind], "quick")
    bench.script(primary, Fault("slow_first_token", delay=5.0))
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.2))

    started = time.monotonic()
    result = bench.run(llm, "astream")

    assert time.monotonic() - started < 3.0
    assert result.text == ANSWER
    assert result.providers == {fallback.name}, "no text of the loser reached the caller"
    assert len(bench.of(Hedged)) == 1
    snapshot = llm.snapshot()
    assert eventually(lambda: snapshot[primary.name].limiter.queue_length == 0)


def test_when_both_fail_the_primarys_error_is_raised(bench: Bench) -> None:
    primary = bench.route("openai", "down")
    fallback = bench.route("anthropic", "down-too")
    bench.script(primary, Fault("server_error", delay=0.5), *["server_error"] * 5)
    bench.script(fallback, *["server_error"] * 6)
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.1))
    with pytest.raises(AllProvidersFailed) as info:
        bench.runner.run(llm.achat(QUESTION))
    # The primary's error: its history covers both routes.
    assert {a.route for a in info.value.attempts} == {primary.name, fallback.name}
    assert len(bench.of(Hedged)) == 1


def _p99(bench: Bench, tag: str, hedge: Hedge | None) -> float:
    primary = bench.route("openai", f"tail-{tag}")
    fallback = bench.route("gemini", f"spare-{tag}")
    # One request in ten is slow: the tail a hedge is for.
    bench.script(primary, *[Fault("ok", delay=2.0) if i % 10 == 5 else "ok" for i in range(20)])
    llm = _engine(bench, primary, fallback, hedge=hedge)

    async def timed() -> float:
        started = time.monotonic()
        await llm.achat(QUESTION)
        return time.monotonic() - started

    async def run() -> list[float]:
        return [await timed() for _ in range(20)]

    took = bench.runner.run(run())
    return statistics.quantiles(took, n=100)[98]


def test_hedging_cuts_the_tail(bench: Bench) -> None:
    plain = _p99(bench, "plain", None)
    hedged = _p99(bench, "hedged", Hedge(0.1))
    assert plain >= 2.0, "every slow request waited its full two seconds"
    assert hedged < 1.0
