"""Soak: 10,000 async calls, 200 at a time, over three routes whose faults keep shifting.

Every ~2,000 calls the chaos plans change (``set_plan``): the primary 30 % overloaded, then
down (an outage), then rate limited, then everything a little flaky, then healthy. The
claims: every call ends in an answer or a typed ``ResilientLLMError`` (>= 99 % answers);
nothing is left behind once the load is gone (no asyncio task, no limiter reservation, no
half-open probe); sockets go back to where they were after ``close()``; memory stays flat
(RSS between the 2,000th and the last call grows by less than 50 MB).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator

import pytest

import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401
from resilient_llm import (
    BreakerPolicy,
    Provider,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.testing.chaos import ChaosServer, Plan

TOTAL = 10_000
CONCURRENCY = 200
PHASE = 2_000
ROUTES = ("openai-soak", "anthropic-soak", "gemini-soak")
ANSWER = "The capital of France is Paris."

# Plans per phase, for (primary, secondary, tertiary).
PHASES: list[tuple[str, tuple[Plan, Plan, Plan]]] = [
    (
        "primary 30% overloaded",
        (Plan(error_rate=0.3, error_kinds=("overloaded",), seed=1), Plan(), Plan()),
    ),
    ("primary outage", (Plan(outages=[(0.0, 3600.0)]), Plan(), Plan())),
    (
        "primary rate limited, secondary 10% 5xx",
        (
            Plan(error_rate=0.5, error_kinds=("rate_limit",), seed=3),
            Plan(error_rate=0.1, error_kinds=("server_error", "unavailable"), seed=4),
            Plan(),
        ),
    ),
    (
        "all flaky",
        (
            Plan(error_rate=0.1, error_kinds=("server_error", "reset", "malformed"), seed=5),
            Plan(error_rate=0.1, error_kinds=("overloaded", "truncate"), seed=6),
            Plan(error_rate=0.1, error_kinds=("unavailable", "rate_limit"), seed=7),
        ),
    ),
    ("healthy", (Plan(), Plan(), Plan())),
]


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer({name: Plan() for name in ROUTES}) as chaos:
        yield chaos


@pytest.mark.timeout(300)
def test_soak_ten_thousand_calls_over_shifting_faults(server: ChaosServer) -> None:
    gc.collect()
    sockets_before = _sockets()
    providers = [
        Provider(
            name.split("-")[0],  # type: ignore[arg-type]
            "chaos-model",
            base_url=server.base_url(name),
            api_key="test-key",
            name=name,
        )
        for name in ROUTES
    ]
    llm = ResilientLLM(
        providers,
        retry=RetryPolicy(max_retries=2, base=0.01, cap=0.1),
        # A rate, not a count: 10 % flakiness on every route must not open all three breakers
        # (with 200 calls in flight, 10 failures come within a second).
        breaker=BreakerPolicy(failure_threshold=10, failure_rate=0.5, cooldown=1.0),
        timeout=20.0,
        jitter_seed=0,
    )
    outcomes: Counter[str] = Counter()
    per_phase: list[Counter[str]] = [Counter() for _ in PHASES]
    answered_by: Counter[str] = Counter()
    untyped: list[BaseException] = []
    wrong: list[str] = []
    rss: dict[int, float] = {}
    phase_times: list[tuple[str, float]] = []

    # Async generators the garbage collector had to finalize (the loop then closes each in
    # a task of its own): the openai SDK leaves its SSE readers open after ``[DONE]``; none
    # of ours may be among them.
    abandoned: Counter[str] = Counter()

    async def main() -> list[asyncio.Task[object]]:
        done = 0
        first_iter, finalizer = sys.get_asyncgen_hooks()

        def finalize(agen: AsyncGenerator[object, None]) -> None:
            abandoned[_origin(agen)] += 1
            if finalizer is not None:
                finalizer(agen)

        sys.set_asyncgen_hooks(first_iter, finalize)
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(phase: Counter[str]) -> None:
            nonlocal done
            try:
                reply = await llm.achat("What is the capital of France?")
            except ResilientLLMError as exc:
                outcomes[type(exc).__name__] += 1
                phase[type(exc).__name__] += 1
            except BaseException as exc:  # counted as a failure of the promise
                untyped.append(exc)
            else:
                outcomes["ok"] += 1
                phase["ok"] += 1
                answered_by[reply.provider] += 1
                if reply.content != ANSWER:
                    wrong.append(reply.content)
            finally:
                done += 1
                semaphore.release()

        tasks: set[asyncio.Task[None]] = set()
        phase_start = time.monotonic()
        for i in range(TOTAL):
            if i % PHASE == 0:
                if i:
                    phase_times.append((PHASES[i // PHASE - 1][0], time.monotonic() - phase_start))
                    phase_start = time.monotonic()
                for name, plan in zip(ROUTES, PHASES[i // PHASE][1], strict=True):
                    server.set_plan(name, plan)
            if i == PHASE:
                gc.collect()
                rss[i] = _rss_mb()
            await semaphore.acquire()
            task = asyncio.create_task(one(per_phase[i // PHASE]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        phase_times.append((PHASES[-1][0], time.monotonic() - phase_start))
        gc.collect()
        rss[TOTAL] = _rss_mb()
        await asyncio.sleep(0)
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        closing = [t for t in rest if type(t.get_coro()).__name__ == "async_generator_athrow"]
        if closing:  # the loop closing the generators counted in ``abandoned``
            await asyncio.wait(closing)
        return [t for t in rest if not t.done()]

    started = time.monotonic()
    leftover = asyncio.run(main())
    elapsed = time.monotonic() - started
    snapshot = llm.snapshot()
    llm.close()
    gc.collect()
    settled = _eventually(lambda: _sockets() <= sockets_before + 2)
    sockets_after = _sockets()

    ok = outcomes["ok"]
    print(
        f"\nsoak: {TOTAL} calls in {elapsed:.1f}s = {TOTAL / elapsed:.0f} calls/s; "
        f"ok {ok} ({100 * ok / TOTAL:.2f}%), errors {dict(outcomes - Counter(ok=ok))}; "
        f"answered by {dict(answered_by)}; phases "
        + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in phase_times)
        + f"; RSS {rss[PHASE]:.0f} MB at {PHASE}, {rss[TOTAL]:.0f} MB at {TOTAL}; "
        f"sockets {sockets_before} before, {sockets_after} after close"
    )
    for (name, _), counts in zip(PHASES, per_phase, strict=True):
        print(f"  {name}: {dict(counts)}")
    print(snapshot)
    assert sum(outcomes.values()) + len(untyped) == TOTAL
    assert not untyped, f"untyped errors: {untyped[:5]}"
    assert not wrong, f"wrong answers: {wrong[:5]}"
    assert ok >= 0.99 * TOTAL
    assert not leftover, f"leaked tasks: {leftover[:5]}"
    ours = {name: n for name, n in abandoned.items() if not name.startswith(("openai.", "httpx"))}
    assert not ours, f"async generators left to the garbage collector: {ours}"
    for route in snapshot:
        assert route.limiter.queue_length == 0, route
        assert route.breaker.probes_in_flight == 0, route
    assert rss[TOTAL] - rss[PHASE] < 50, rss
    assert settled, f"sockets: {sockets_before} before, {sockets_after} after close"


def _origin(agen: AsyncGenerator[object, None]) -> str:
    """``module.qualname`` of an async generator (its module read from its frame)."""
    frame = getattr(agen, "ag_frame", None)
    module = frame.f_globals.get("__name__", "?") if frame is not None else "?"
    return f"{module}.{getattr(agen, '__qualname__', '?')}"
