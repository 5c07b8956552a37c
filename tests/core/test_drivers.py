"""The drivers: streaming relay, and cancellation giving back what a call held."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from resilient_llm.clock import FakeClock
from resilient_llm.errors import ProviderUnavailable, StreamInterrupted
from resilient_llm.flow.effects import Call
from resilient_llm.messages import ChatChunk
from resilient_llm.policies.breaker import BreakerPolicy, CircuitState
from resilient_llm.policies.limiter import RateLimit
from resilient_llm.run.drivers import run_async, run_sync, timed_out
from resilient_llm.run.streams import run_async_stream, run_sync_stream

from .scripted import Script, flow_for, make_routes


def collect_sync(routes, clock, script):  # type: ignore[no-untyped-def]
    return [
        c.delta for c in run_sync_stream(flow_for(routes, clock, stream=True), clock, script.stream)
    ]


def collect_async(routes, clock, script):  # type: ignore[no-untyped-def]
    async def go() -> list[str]:
        flow = flow_for(routes, clock, stream=True)
        return [c.delta async for c in run_async_stream(flow, clock, script.astream)]

    return asyncio.run(go())


COLLECT = {"sync": collect_sync, "async": collect_async}


@pytest.fixture(params=["sync", "async"])
def collect(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return COLLECT[request.param]


def test_stream_fails_over_before_the_first_chunk(collect) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    routes = make_routes("a", "b", "c")
    script = Script(
        clock,
        {
            "a": [ProviderUnavailable("down at open", status_code=503)],
            "b": [[ProviderUnavailable("cut before any text")]],
            "c": [["Par", "is", "<end>"]],
        },
        default=[],
    )
    assert collect(routes, clock, script) == ["Par", "is", "<end>"]
    names = [name for name, _ in script.log]
    assert names[0] == "a"
    assert names[-1] == "c"
    assert "b" in names


def test_stream_that_yields_nothing_is_a_failure(collect) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    routes = make_routes("a", "b")
    script = Script(clock, {"a": [[]] * 4, "b": [["ok", "<end>"]]})
    assert collect(routes, clock, script) == ["ok", "<end>"]
    assert routes[0].breaker.snapshot(clock.now()).failures >= 1


def test_failure_after_first_chunk_raises_stream_interrupted(collect) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    routes = make_routes("a", "b")
    script = Script(clock, {"a": [["Hel", "lo", ProviderUnavailable("reset", status_code=502)]]})
    with pytest.raises(StreamInterrupted) as info:
        collect(routes, clock, script)
    assert info.value.partial_text == "Hello"
    assert info.value.provider == "a"
    assert isinstance(info.value.__cause__, ProviderUnavailable)
    # No failover after text reached the caller, and the breaker counted the failure.
    assert [name for name, _ in script.log] == ["a"]
    assert routes[0].breaker.snapshot(clock.now()).failures == 1


def test_completed_stream_settles_real_usage(collect) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    routes = make_routes("a", limits={"a": RateLimit(tokens_per_minute=1000)})
    script = Script(clock, {"a": [["x", "<end>"]]})
    collect(routes, clock, script)
    snap = routes[0].limiter.snapshot(clock.now())
    assert snap.estimated_tokens == 7  # the scripted usage (5 + 2), not the estimate of 10
    assert routes[0].breaker.snapshot(clock.now()).calls == 1


def test_abandoned_sync_stream_returns_its_probe() -> None:
    clock = FakeClock()
    routes = make_routes("a", breaker=BreakerPolicy(failure_threshold=1, cooldown=5))
    _open_then_cool(routes[0], clock)
    script = Script(clock, {"a": [["one", "two", "<end>"]]})
    stream = run_sync_stream(flow_for(routes, clock, stream=True), clock, script.stream)
    assert next(stream).delta == "one"
    assert routes[0].breaker.snapshot(clock.now()).probes_in_flight == 1
    stream.close()  # type: ignore[attr-defined]
    snap = routes[0].breaker.snapshot(clock.now())
    assert (snap.state, snap.probes_in_flight) == (CircuitState.HALF_OPEN, 0)


def _open_then_cool(route, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    permit = route.breaker.acquire(clock.now())
    route.breaker.record_failure(permit, clock.now())
    clock.advance(route.breaker.policy.cooldown)
    assert route.breaker.state(clock.now()) is CircuitState.HALF_OPEN


# --- cancellation --------------------------------------------------------------------


class GatedClock(FakeClock):
    """A fake clock whose async sleeps block until the task is cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = asyncio.Event()

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sleeping.set()
        await asyncio.get_running_loop().create_future()


class Stuck:
    """An attempt that never answers, to cancel mid-call."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def send(self, call: Call) -> tuple[str, int | None]:
        self.entered.set()
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")

    def stream(self, call: Call) -> AsyncIterator[ChatChunk]:
        async def chunks() -> AsyncIterator[ChatChunk]:
            yield ChatChunk(delta="first", provider=call.route.name)
            self.entered.set()
            await asyncio.get_running_loop().create_future()
            yield ChatChunk(delta="never")

        return chunks()


async def _cancel(task: asyncio.Task[object], gate: asyncio.Event) -> None:
    await asyncio.wait_for(gate.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancel_in_the_limiter_queue_gives_back_the_reservation() -> None:
    clock = GatedClock()
    routes = make_routes("a", limits={"a": RateLimit(requests_per_minute=1)})
    routes[0].limiter.reserve(10, clock.now())
    script = Script(clock, {})
    task = asyncio.ensure_future(run_async(flow_for(routes, clock), clock, script.asend))
    await asyncio.wait_for(clock.sleeping.wait(), timeout=5)
    assert routes[0].limiter.snapshot(clock.now()).queue_length == 1
    await _cancel(task, clock.sleeping)
    assert routes[0].limiter.snapshot(clock.now()).queue_length == 0
    assert script.log == []


async def test_cancel_during_backoff_leaves_nothing_held() -> None:
    clock = GatedClock()
    routes = make_routes("a")
    script = Script(clock, {"a": [ProviderUnavailable("busy", status_code=503)]})
    task = asyncio.ensure_future(run_async(flow_for(routes, clock), clock, script.asend))
    await _cancel(task, clock.sleeping)
    snap = routes[0].breaker.snapshot(clock.now())
    assert (snap.failures, snap.probes_in_flight) == (1, 0)
    assert routes[0].limiter.snapshot(clock.now()).queue_length == 0


async def test_cancel_mid_call_returns_the_half_open_probe() -> None:
    clock = FakeClock()
    routes = make_routes("a", breaker=BreakerPolicy(failure_threshold=1, cooldown=5))
    _open_then_cool(routes[0], clock)
    stuck = Stuck()
    task = asyncio.ensure_future(run_async(flow_for(routes, clock), clock, stuck.send))
    await asyncio.wait_for(stuck.entered.wait(), timeout=5)
    assert routes[0].breaker.snapshot(clock.now()).probes_in_flight == 1
    await _cancel(task, stuck.entered)
    snap = routes[0].breaker.snapshot(clock.now())
    assert (snap.state, snap.probes_in_flight) == (CircuitState.HALF_OPEN, 0)
    assert routes[0].breaker.acquire(clock.now()) is not None


async def test_cancel_mid_stream_returns_the_half_open_probe() -> None:
    clock = FakeClock()
    routes = make_routes("a", breaker=BreakerPolicy(failure_threshold=1, cooldown=5))
    _open_then_cool(routes[0], clock)
    stuck = Stuck()

    async def consume() -> list[str]:
        flow = flow_for(routes, clock, stream=True)
        return [c.delta async for c in run_async_stream(flow, clock, stuck.stream)]

    task = asyncio.ensure_future(consume())
    await _cancel(task, stuck.entered)
    snap = routes[0].breaker.snapshot(clock.now())
    assert (snap.state, snap.probes_in_flight) == (CircuitState.HALF_OPEN, 0)


def test_sync_and_async_drivers_decide_alike() -> None:
    def history(mode: str) -> list[tuple[str, str]]:
        clock = FakeClock()
        routes = make_routes("a", "b")
        script = Script(
            clock,
            {
                "a": [ProviderUnavailable("x", status_code=500)] * 2 + ["ok"],
                "b": ["ok"],
            },
        )
        flow = flow_for(routes, clock, seed=7)
        if mode == "sync":
            _, report = run_sync(flow, clock, script.send)
        else:
            _, report = asyncio.run(run_async(flow, clock, script.asend))
        return [(a.route, a.outcome) for a in report.attempts] + [("sleeps", str(clock.sleeps))]

    assert history("sync") == history("async")


def test_the_first_chunk_carries_the_calls_account() -> None:
    clock = FakeClock()
    routes = make_routes("a", "b")
    script = Script(clock, {"a": [ProviderUnavailable("down", status_code=503)] * 4})
    stream = run_sync_stream(flow_for(routes, clock, stream=True), clock, script.stream)
    first = next(stream)
    assert first.metadata["provider"] == "b"
    assert first.metadata["failovers"][0]["from"] == "a"
    assert all(not chunk.metadata for chunk in stream)


def _chained(*links: BaseException) -> BaseException:
    """``links[0]`` raised from ``links[1]`` raised from ... (as adapters and SDKs chain)."""
    for outer, inner in itertools.pairwise(links):
        outer.__cause__ = inner
    return links[0]


class ConnectTimeout(Exception):
    """Named as transports name theirs: httpx's ``ConnectTimeout``."""


class ReadTimeout(Exception):
    """httpcore's ``ReadTimeout``: a timeout by name, not a ``TimeoutError``."""


def test_timed_out_reads_the_root_of_the_chain() -> None:
    def mapped() -> ProviderUnavailable:
        return ProviderUnavailable("x")

    assert timed_out(_chained(mapped(), ReadTimeout()))
    assert timed_out(_chained(mapped(), TimeoutError(), asyncio.CancelledError()))
    # A transport that calls a reset a timeout: the root says what happened.
    assert not timed_out(_chained(mapped(), ConnectTimeout(), ConnectionResetError()))
    assert not timed_out(mapped())
    assert not timed_out(_chained(mapped(), ValueError()))
