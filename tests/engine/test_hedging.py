"""Hedged async calls: a slow primary is raced by the next route, the loser cancelled.

The engine runs on a :class:`FakeClock`: a hedge's delay ends only when the test moves
fake time to it, once the primary is known to be holding its request (a hang, a stream
with no first chunk), so whether a call was hedged never depends on the machine's load.
How much hedging cuts the latency tail is measured in ``benchmarks/features.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from resilient_llm import AllProvidersFailed, FakeClock, Provider, ResilientLLM, RetryPolicy
from resilient_llm.events import Hedged
from resilient_llm.run.hedge import Hedge
from resilient_llm.testing.chaos import Fault

from .conftest import ANSWER, BREAKER, FALLBACK, KINDS, QUESTION, Bench, cutting, eventually

HANG = Fault("hang", delay=60)


async def _until(ready: Callable[[], int]) -> None:
    """Yield to the loop until ``ready()`` (a count of requests the server holds)."""
    while True:
        if ready():
            return
        await asyncio.sleep(0.002)


def _engine(
    bench: Bench, *providers: Provider, hedge: Hedge | None, clock: FakeClock
) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers),
        retry=RetryPolicy(max_retries=1, base=0.01, cap=0.05),
        breaker=BREAKER,
        timeout=10.0,
        hedge=hedge,
        clock=clock,
        on_event=bench.events.append,
    )
    bench.engines.append(llm)
    return llm


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_primary_is_raced_and_the_faster_answer_wins(bench: Bench, kind: str) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "slow")
    fallback = bench.route(FALLBACK[kind], "quick")
    bench.script(primary, HANG)
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.2), clock=clock)

    with cutting(clock, bench.arrivals(primary, "hang")) as cuts:
        reply = bench.runner.run(llm.achat(QUESTION))

    assert cuts == [0.2], "the hedge started at its delay, the primary still hanging"
    assert reply.content == ANSWER
    assert reply.provider == fallback.name
    [hedged] = bench.of(Hedged)
    assert (hedged.route, hedged.delay) == (primary.name, 0.2)
    # Both were asked; the primary's request was abandoned (no status was sent).
    assert sorted(bench.calls(2)) == sorted([(primary.name, 0, "hang"), (fallback.name, 200, "ok")])
    snapshot = llm.snapshot()
    assert snapshot[primary.name].breaker.probes_in_flight == 0
    assert snapshot[primary.name].breaker.failures == 0, "a cancelled loser is no failure"


@pytest.mark.parametrize("kind", KINDS)
def test_on_the_real_clock_a_hung_primary_is_raced(bench: Bench, kind: str) -> None:
    # The real clock's quiet timer is the loop's own (no task beside the attempt). The
    # primary hangs for a minute, so the hedge's millisecond ends first however busy the
    # machine is.
    primary = bench.route(kind, "slow")
    fallback = bench.route(FALLBACK[kind], "quick")
    bench.script(primary, HANG)
    llm = ResilientLLM(
        [primary, fallback],
        breaker=BREAKER,
        timeout=10.0,
        hedge=Hedge(0.001),
        on_event=bench.events.append,
    )
    bench.engines.append(llm)
    reply = bench.runner.run(llm.achat(QUESTION))
    assert (reply.content, reply.provider) == (ANSWER, fallback.name)
    [hedged] = bench.of(Hedged)
    assert hedged.route == primary.name
    snapshot = llm.snapshot()
    assert snapshot[primary.name].breaker.failures == 0, "a cancelled loser is no failure"


@pytest.mark.parametrize("kind", KINDS)
def test_a_quick_primary_is_never_hedged(bench: Bench, kind: str) -> None:
    primary = bench.route(kind, "primary")
    fallback = bench.route(FALLBACK[kind], "fallback")
    # Fake time stands still: however long the replies take, the delay never ends.
    llm = _engine(bench, primary, fallback, hedge=Hedge(2.0), clock=FakeClock())
    for _ in range(3):
        assert bench.runner.run(llm.achat(QUESTION)).provider == primary.name
    assert bench.of(Hedged) == []
    assert {name for name, _, _ in bench.calls(3)} == {primary.name}


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_is_raced_on_its_first_chunk(bench: Bench, kind: str) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "slow")
    fallback = bench.route(FALLBACK[kind], "quick")
    bench.script(primary, Fault("slow_first_token", delay=60))
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.2), clock=clock)

    with cutting(clock, bench.arrivals(primary, "slow_first_token", 200)) as cuts:
        result = bench.run(llm, "astream")

    assert cuts == [0.2]
    assert result.text == ANSWER
    assert result.providers == {fallback.name}, "no text of the loser reached the caller"
    assert len(bench.of(Hedged)) == 1
    snapshot = llm.snapshot()
    assert eventually(lambda: snapshot[primary.name].limiter.queue_length == 0)


def test_when_both_fail_the_primarys_error_is_raised(bench: Bench) -> None:
    clock = FakeClock()
    primary = bench.route("openai", "down")
    fallback = bench.route("anthropic", "down-too")
    # The primary's first answer is held until the hedge has failed on the fallback.
    bench.script(primary, Fault("server_error", delay=60), *["server_error"] * 5)
    bench.script(fallback, *["server_error"] * 6)
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.1), clock=clock)
    hedge_failed = bench.arrivals(fallback, "server_error", 500)
    stop = threading.Event()

    def release_when_the_hedge_failed() -> None:
        while not stop.is_set() and hedge_failed() < 2:
            stop.wait(0.002)
        bench.server.release(primary.name)

    releaser = threading.Thread(target=release_when_the_hedge_failed)
    releaser.start()
    try:
        with (
            cutting(clock, bench.arrivals(primary, "server_error")) as cuts,
            pytest.raises(AllProvidersFailed) as info,
        ):
            bench.runner.run(llm.achat(QUESTION))
    finally:
        stop.set()
        releaser.join()
    assert cuts == [0.1]
    # The primary's error: its history covers both routes.
    assert {a.route for a in info.value.attempts} == {primary.name, fallback.name}
    assert len(bench.of(Hedged)) == 1


def test_hedging_answers_each_slow_request_from_the_spare(bench: Bench) -> None:
    clock = FakeClock()
    primary = bench.route("openai", "tail")
    fallback = bench.route("gemini", "spare")
    # One request in ten hangs: the tail a hedge is for.
    bench.script(primary, *[HANG if i % 10 == 5 else "ok" for i in range(20)])
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.1), clock=clock)

    async def run() -> list[str]:
        return [(await llm.achat(QUESTION)).provider for _ in range(20)]

    with cutting(clock, bench.arrivals(primary, "hang")) as cuts:
        providers = bench.runner.run(run())

    assert len(cuts) == 2
    expected = [fallback.name if i % 10 == 5 else primary.name for i in range(20)]
    assert providers == expected
    assert [e.route for e in bench.of(Hedged)] == [primary.name] * 2


def test_a_call_the_hedge_answers_leaves_its_callers_task_as_it_was(bench: Bench) -> None:
    # The primary runs in the caller's task and a winning hedge interrupts it by a cancel
    # it then takes back: the caller must see no cancellation, now or at its next await.
    primary = bench.route("openai", "hung")
    fallback = bench.route("anthropic", "spare")
    bench.script(primary, HANG)
    llm = ResilientLLM([primary, fallback], breaker=BREAKER, timeout=10.0, hedge=Hedge(0.001))
    bench.engines.append(llm)

    async def caller() -> tuple[str, int, int]:
        reply = await llm.achat(QUESTION)
        task = asyncio.current_task()
        assert task is not None
        pending = task.cancelling()
        await asyncio.sleep(0)  # a cancel still due would land here
        return reply.provider, pending, task.cancelling()

    assert bench.runner.run(caller()) == (fallback.name, 0, 0)
    snapshot = llm.snapshot()
    assert snapshot[primary.name].breaker.failures == 0, "the interrupted primary is no failure"
    assert eventually(lambda: llm.snapshot()[primary.name].limiter.queue_length == 0)


@pytest.mark.parametrize("mode", ["achat", "astream"])
def test_cancelling_a_hedged_call_stops_both_runs(bench: Bench, mode: str) -> None:
    clock = FakeClock()
    primary = bench.route("openai", "hung")
    fallback = bench.route("gemini", "hung-too")
    bench.script(primary, HANG)
    bench.script(fallback, HANG)
    llm = _engine(bench, primary, fallback, hedge=Hedge(0.2), clock=clock)

    async def call() -> None:
        if mode == "achat":
            await llm.achat(QUESTION)
        else:
            async for _ in llm.astream(QUESTION):
                pass

    async def cancel_once_both_are_asked() -> bool:
        task = asyncio.ensure_future(call())
        # Polled for a state, never timed: the primary holding its request, then the
        # hedge's. Fake time moves once, to the hedge's moment, however long that takes.
        await _until(bench.arrivals(primary, "hang"))
        clock.advance(0.2)
        await _until(bench.arrivals(fallback, "hang"))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert bench.runner.run(cancel_once_both_are_asked())
    snapshot = llm.snapshot()
    for route in (primary, fallback):
        assert snapshot[route.name].breaker.probes_in_flight == 0
        assert snapshot[route.name].breaker.failures == 0, "a cancelled call blames no route"
        assert eventually(lambda name=route.name: llm.snapshot()[name].limiter.queue_length == 0)
    assert len(bench.of(Hedged)) == 1
