"""One call's timeout or cancellation never reaches another call.

Calls share routes, SDK clients and connection pools; what ends one call (its own deadline,
its task being cancelled mid-stream) must end only that call, and must give back what the
call held: its limiter reservation and, if it was the half-open probe, the probe slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
from collections.abc import Iterator

import pytest

import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401
from resilient_llm import (
    BreakerPolicy,
    ChatChunk,
    CircuitState,
    FakeClock,
    Provider,
    RateLimit,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.events import AttemptStarted, Event
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

from ..timing import cutting

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
_TAGS = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _provider(server: ChaosServer, kind: str, role: str, plan: Plan, **options: object) -> Provider:
    name = f"{kind}-i{next(_TAGS)}-{role}"
    server.set_plan(name, plan)
    return Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=server.base_url(name),
        api_key="test-key",
        name=name,
        **options,  # type: ignore[arg-type]
    )


def _assert_nothing_held(llm: ResilientLLM) -> None:
    for route in llm.snapshot():
        assert route.limiter.queue_length == 0, route
        assert route.breaker.probes_in_flight == 0, route


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_timeouts_on_one_engine_never_cancel_calls_on_another(
    server: ChaosServer, kind: str
) -> None:
    """20 concurrent calls on one loop: 10 on an engine whose route hangs, each with its own
    ``timeout=0.5``; 10 on an engine over a slow-but-healthy route of the same family.

    The hanging engine runs on fake time, moved to its calls' deadlines once their requests
    hang at the server: the cuts are decided by the test, not by the machine's speed."""
    clock = FakeClock()
    hang = _provider(server, kind, "hang", Plan(error_rate=1.0, error_kinds=("hang",)))
    hanging = ResilientLLM([hang], retry=RetryPolicy(max_retries=0), clock=clock)
    healthy = ResilientLLM([_provider(server, kind, "ok", Plan(latency=0.8))])

    async def call(llm: ResilientLLM, timeout: float | None) -> object:
        try:
            return await llm.achat(QUESTION, timeout=timeout)
        except Exception as exc:
            return exc

    async def main() -> list[object]:
        calls = [call(hanging, 0.5) if i % 2 else call(healthy, None) for i in range(20)]
        return await asyncio.gather(*calls)

    def hung() -> int:
        return sum(1 for r in server.log if r.provider == hang.name and r.fault == "hang")

    try:
        with cutting(clock, hung) as cuts:
            results = asyncio.run(main())
    finally:
        hanging.close()
        healthy.close()

    cut, answered = results[1::2], results[0::2]
    assert cuts, "the hanging calls were cut on fake time"
    assert all(moment <= 1.0 for moment in cuts), "each on its own deadline"
    for error in cut:
        assert isinstance(error, ResilientLLMError), repr(error)
        assert "timed out" in str(error.__cause__ or error)
    for reply in answered:
        assert not isinstance(reply, BaseException), repr(reply)
        assert reply.content == ANSWER  # type: ignore[attr-defined]
    _assert_nothing_held(hanging)
    _assert_nothing_held(healthy)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_short_deadlines_on_a_shared_route_never_cancel_the_other_calls(
    server: ChaosServer, kind: str
) -> None:
    """Same engine, same route, same connection pool: a slow route (0.8 s) serves 10 calls
    whose own deadline (0.5 s) cuts them, and 10 calls with time to spare, all at once."""
    slow = _provider(
        server, kind, "slow", Plan(latency=0.8), rate_limit=RateLimit(requests_per_minute=1000)
    )
    llm = ResilientLLM(
        [slow],
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=1000),
    )

    async def call(timeout: float) -> object:
        try:
            return await llm.achat(QUESTION, timeout=timeout)
        except Exception as exc:
            return exc

    async def main() -> list[object]:
        return await asyncio.gather(*(call(0.5 if i % 2 else 10.0) for i in range(20)))

    try:
        results = asyncio.run(main())
    finally:
        llm.close()

    assert all(isinstance(r, ResilientLLMError) for r in results[1::2]), results[1::2]
    assert all(getattr(r, "content", None) == ANSWER for r in results[0::2]), results[0::2]
    _assert_nothing_held(llm)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["before the first chunk", "after the first chunk"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_cancelling_a_half_open_probe_mid_stream_frees_its_slot(
    server: ChaosServer, kind: str, where: str
) -> None:
    """The probe of a half-open route is a stream whose task is cancelled: the 10 other
    streams (on the fallback while the probe is out) finish, and the probe slot and the
    reservation come back, so the route can be probed, and closed, again."""
    clock = FakeClock()
    primary = _provider(
        server,
        kind,
        "primary",
        Plan(script=["server_error"]),
        rate_limit=RateLimit(requests_per_minute=1000),
    )
    fallback = _provider(server, "anthropic" if kind != "anthropic" else "gemini", "fb", Plan())
    llm = ResilientLLM(
        [primary, fallback],
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=1, cooldown=30),
        clock=clock,
    )

    async def drain(chunks: list[ChatChunk], first: asyncio.Event | None = None) -> str:
        async with contextlib.aclosing(llm.astream(QUESTION)) as stream:
            async for chunk in stream:
                chunks.append(chunk)
                if first is not None:
                    first.set()
                    await asyncio.sleep(3600)  # the caller stalls holding the stream
        return "".join(c.delta for c in chunks)

    async def main() -> None:
        assert (await llm.achat(QUESTION)).provider == fallback.name  # opens the breaker
        assert llm.snapshot()[primary.name].breaker.state is CircuitState.OPEN
        clock.advance(31)  # cooldown over: the next call is the half-open probe
        if where == "before the first chunk":
            server.script(primary.name, Fault("slow_first_token", delay=30))
            first = None
        else:
            first = asyncio.Event()
        probe_chunks: list[ChatChunk] = []
        probing = asyncio.Event()

        def watch(event: Event) -> None:  # async calls emit on the loop's thread
            if isinstance(event, AttemptStarted) and event.route == primary.name:
                probing.set()

        llm.add_event_handler(watch)
        probe = asyncio.create_task(drain(probe_chunks, first))
        await probing.wait()
        if first is not None:
            await first.wait()
        assert llm.snapshot()[primary.name].breaker.probes_in_flight == 1
        others = [asyncio.create_task(drain([])) for _ in range(10)]
        await asyncio.sleep(0.05)
        probe.cancel()
        texts = await asyncio.gather(*others)
        with contextlib.suppress(asyncio.CancelledError):
            await probe
        assert probe.cancelled()
        assert texts == [ANSWER] * 10
        assert all(c.provider == primary.name for c in probe_chunks)
        _assert_nothing_held(llm)
        assert llm.snapshot()[primary.name].breaker.state is CircuitState.HALF_OPEN
        # The slot is free: the next call probes the primary, and its success closes it.
        again: list[ChatChunk] = []
        assert await drain(again) == ANSWER
        assert {c.provider for c in again} == {primary.name}
        assert llm.snapshot()[primary.name].breaker.state is CircuitState.CLOSED
        _assert_nothing_held(llm)

    try:
        asyncio.run(main())
    finally:
        llm.close()


@pytest.mark.timeout(60)
def test_a_stream_abandoned_without_aclose_is_released_when_collected(
    server: ChaosServer,
) -> None:
    """A caller that cancels its task between chunks without ``aclosing`` leaves the async
    generator suspended; once it is collected the loop finalises it and the probe slot
    comes back (Python's async-generator finaliser, not the engine, does the closing)."""
    clock = FakeClock()
    primary = _provider(server, "openai", "primary", Plan(script=["server_error"]))
    fallback = _provider(server, "anthropic", "fb", Plan())
    llm = ResilientLLM(
        [primary, fallback],
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=1, cooldown=30),
        clock=clock,
    )

    async def main() -> None:
        await llm.achat(QUESTION)
        clock.advance(31)
        first = asyncio.Event()

        async def careless() -> None:
            async for _ in llm.astream(QUESTION):
                first.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(careless())
        await first.wait()
        assert llm.snapshot()[primary.name].breaker.probes_in_flight == 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        del task
        for _ in range(20):
            gc.collect()
            await asyncio.sleep(0.01)
            if llm.snapshot()[primary.name].breaker.probes_in_flight == 0:
                break
        _assert_nothing_held(llm)

    try:
        asyncio.run(main())
    finally:
        llm.close()
