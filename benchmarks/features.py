"""What each beyond-the-peers feature changes, measured on the chaos server: each feature
on and off against the same plan, in one run.

``python -m benchmarks.features`` (``make bench-features``) writes
``benchmarks/results/features.md``. It needs only the project itself (no peers), and runs
in about a minute. Upstream calls and 429s are counted from the chaos server's request log,
never from the client's own account.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilient_llm import (
    BreakerPolicy,
    Capabilities,
    Provider,
    ResilientLLM,
    ResilientLLMError,
    RetryBudget,
    RetryPolicy,
    StreamInterrupted,
    StreamTimeouts,
)
from resilient_llm.extras.cache import ResponseCache
from resilient_llm.run.hedge import Hedge
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

from .loopback import guard

RESULTS = Path(__file__).resolve().parent / "results"
QUESTION = "What is the capital of France?"
NO_BUDGET: Any = None


@dataclass
class Row:
    feature: str
    measure: str
    without: str
    with_: str


@contextmanager
def _server(
    plans: dict[str, Plan], options: dict[str, dict[str, Any]] | None = None
) -> Iterator[tuple[ChaosServer, dict[str, Provider]]]:
    """A chaos server with a route per plan (its name starts with its kind), and their
    providers, built with ``options[name]`` as extra keyword arguments."""
    with ChaosServer() as server:
        providers = {}
        for name, plan in plans.items():
            server.set_plan(name, plan)
            kind = name.split("-")[0]
            providers[name] = Provider(
                kind,  # type: ignore[arg-type]
                "chaos-model",
                base_url=server.base_url(name),
                api_key="bench",
                name=name,
                **(options or {}).get(name, {}),
            )
        yield server, providers


def _engine(*providers: Provider, **options: Any) -> ResilientLLM:
    options.setdefault("retry", RetryPolicy(max_retries=2, base=0.01, cap=0.05))
    options.setdefault("timeout", 15.0)
    return ResilientLLM(list(providers), **options)


def _count(server: ChaosServer, name: str, status: int | None = None) -> int:
    return sum(
        1 for r in server.log if r.provider == name and (status is None or r.status == status)
    )


def _gather(llm: ResilientLLM, n: int, concurrency: int) -> list[float]:
    async def run() -> list[float]:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> float:
            async with gate:
                started = time.perf_counter()
                await llm.achat(QUESTION)
                return time.perf_counter() - started

        return list(await asyncio.gather(*(one() for _ in range(n))))

    return asyncio.run(run())


def adaptive() -> list[Row]:
    out = {}
    for on in (False, True):
        with _server({"openai-q": Plan(rpm=30), "anthropic-s": Plan()}) as (server, p):
            llm = _engine(p["openai-q"], p["anthropic-s"], adaptive_limits=on)
            _gather(llm, 90, 10)
            out[on] = (_count(server, "openai-q", 429), _count(server, "openai-q", 200))
            llm.close()
    return [
        Row(
            "adaptive limits",
            "429s received (quota 30/min unknown to the client, 90 calls)",
            str(out[False][0]),
            str(out[True][0]),
        ),
        Row(
            "adaptive limits",
            "calls served by the quota'd primary",
            *map(str, (out[False][1], out[True][1])),
        ),
    ]


def budget() -> list[Row]:
    out = {}
    for on in (False, True):
        down = Plan(error_rate=1.0, error_kinds=("server_error",))
        with _server({"openai-down": down, "gemini-up": Plan()}) as (server, p):
            llm = _engine(
                p["openai-down"],
                p["gemini-up"],
                retry=RetryPolicy(max_retries=3, base=0.001, cap=0.002),
                breaker=BreakerPolicy(failure_threshold=10_000),
                retry_budget=RetryBudget() if on else NO_BUDGET,
            )
            _gather(llm, 200, 10)
            out[on] = _count(server, "openai-down") / 200
            llm.close()
    return [
        Row(
            "retry budget",
            "requests per call on a provider that is down (max_retries=3, breaker held shut)",
            f"{out[False]:.2f}",
            f"{out[True]:.2f}",
        )
    ]


def hedging() -> list[Row]:
    out = {}
    for on in (False, True):
        script = [Fault("ok", delay=1.0) if i % 10 == 3 else "ok" for i in range(100)]
        with _server({"openai-tail": Plan(script=script), "gemini-spare": Plan()}) as (
            server,
            p,
        ):
            llm = _engine(p["openai-tail"], p["gemini-spare"], hedge=Hedge(0.1) if on else None)
            took = _gather(llm, 100, 1)
            cuts = statistics.quantiles(took, n=100)
            out[on] = (statistics.median(took), cuts[94], cuts[98], _count(server, "gemini-spare"))
            llm.close()
    fmt: Callable[[float], str] = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    return [
        Row(
            "hedging",
            "p50 (10 % of primary replies 1 s late)",
            fmt(out[False][0]),
            fmt(out[True][0]),
        ),
        Row("hedging", "p95", fmt(out[False][1]), fmt(out[True][1])),
        Row("hedging", "p99", fmt(out[False][2]), fmt(out[True][2])),
        Row("hedging", "extra calls to the second route", str(out[False][3]), str(out[True][3])),
    ]


def _tried(llm: ResilientLLM, n: int, concurrency: int) -> list[float]:
    """Each call's time to answer; a call that failed never answered (infinite)."""

    async def run() -> list[float]:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> float:
            async with gate:
                started = time.perf_counter()
                try:
                    await llm.achat(QUESTION)
                except ResilientLLMError:
                    return math.inf
                return time.perf_counter() - started

        return list(await asyncio.gather(*(one() for _ in range(n))))

    return asyncio.run(run())


def hung() -> list[Row]:
    """Signs-of-life hedging (on by default) against hung requests, and what it costs
    where nothing hangs."""
    out: dict[bool, tuple[int, float, int]] = {}
    for on in (False, True):
        plans = {
            "openai-hung": Plan(error_rate=0.05, error_kinds=("blackhole",), latency=0.05, seed=5),
            "anthropic-spare": Plan(latency=0.05),
        }
        with _server(plans) as (server, p):
            llm = _engine(p["openai-hung"], p["anthropic-spare"], timeout=4.0, hedge=on)
            took = sorted(_tried(llm, 200, 20))
            answered = sum(1 for t in took if math.isfinite(t))
            out[on] = (answered, took[197], _count(server, "anthropic-spare"))
            llm.close()
    # A slow but live primary: its first chunk at once, its whole reply after about 60 % of
    # the deadline. A whole reply is judged by its stream's first chunk, so it is let be.
    live: dict[bool, int] = {}
    for on in (False, True):
        steady = Plan(script=[Fault("steady", delay=0.35)] * 20)
        with _server({"openai-live": steady, "anthropic-idle": Plan()}) as (server, p):
            llm = _engine(p["openai-live"], p["anthropic-idle"], timeout=4.0, hedge=on)
            _tried(llm, 20, 20)
            live[on] = _count(server, "anthropic-idle")
            llm.close()
    mixed: dict[bool, int] = {}
    for on in (False, True):
        plans = {
            "openai-mixed": Plan(error_rate=0.2, seed=11),
            "anthropic-mixed": Plan(
                error_rate=0.3, error_kinds=("overloaded",), latency=0.1, seed=12
            ),
            "gemini-mixed": Plan(latency=0.3, seed=13),
        }
        with _server(plans) as (server, p):
            llm = _engine(*p.values(), timeout=10.0, hedge=on)
            _gather(llm, 150, 20)
            mixed[on] = len(server.log)
            llm.close()
    fmt: Callable[[float], str] = lambda s: "never" if math.isinf(s) else f"{s:.2f} s"  # noqa: E731
    return [
        Row(
            "hedging by signs of life",
            "calls answered, of 200 (5 % of primary requests never answered, 4 s deadline)",
            str(out[False][0]),
            str(out[True][0]),
        ),
        Row(
            "hedging by signs of life", "p99 time to answer", fmt(out[False][1]), fmt(out[True][1])
        ),
        Row(
            "hedging by signs of life",
            "calls to the second route",
            str(out[False][2]),
            str(out[True][2]),
        ),
        Row(
            "hedging by signs of life",
            "calls to the second route, of 20 to a slow but live primary (whole reply ~2.5 s)",
            str(live[False]),
            str(live[True]),
        ),
        Row(
            "hedging by signs of life",
            "upstream calls for 150 calls on mixed faults (500s, 529s, latency; nothing hung)",
            str(mixed[False]),
            str(mixed[True]),
        ),
    ]


def bulkhead() -> list[Row]:
    out = {}
    for limit in (None, 5):
        slow = {"anthropic-slow": {"max_concurrency": limit}}
        with _server({"anthropic-slow": Plan(latency=0.3)}, slow) as (server, p):
            provider = p["anthropic-slow"]
            llm = _engine(provider)
            _gather(llm, 50, 50)
            arrivals = sorted(r.at for r in server.log if r.provider == "anthropic-slow")
            # Requests that reached the provider within one latency of each other overlap.
            out[limit] = max(sum(1 for b in arrivals if a <= b < a + 0.29) for a in arrivals)
            llm.close()
    return [
        Row(
            "bulkhead",
            "peak requests in flight at a slow provider (50 calls at once, max_concurrency=5)",
            str(out[None]),
            str(out[5]),
        )
    ]


def capabilities() -> list[Row]:
    out = {}
    for known in (False, True):
        caps = {
            "openai-small": {"capabilities": Capabilities(context_window=100) if known else None}
        }
        plans = {"openai-small": Plan(script=["context_length"] * 20), "gemini-big": Plan()}
        with _server(plans, caps) as (server, p):
            small = p["openai-small"]
            llm = _engine(small, p["gemini-big"])
            for _ in range(20):
                llm.chat("word " * 300 + QUESTION)
            out[known] = _count(server, "openai-small")
            llm.close()
    return [
        Row(
            "capability-aware failover",
            "calls wasted on a model whose window is too small (20 long prompts)",
            str(out[False]),
            str(out[True]),
        )
    ]


def stalls() -> list[Row]:
    out = {}
    for limits in (None, StreamTimeouts(idle=1.0)):
        with _server({"openai-stall": Plan(script=[Fault("stall", delay=60.0)])}) as (_, p):
            llm = _engine(p["openai-stall"], timeout=10.0, stream_timeouts=limits)
            started = time.perf_counter()
            try:
                for _ in llm.stream(QUESTION):
                    pass
            except StreamInterrupted:
                pass
            out[limits is not None] = time.perf_counter() - started
            llm.close()
    return [
        Row(
            "stream stall timeouts",
            "time until a stream stalled after its first chunk is given up (10 s deadline)",
            f"{out[False]:.1f} s",
            f"{out[True]:.1f} s",
        )
    ]


def cache() -> list[Row]:
    out = {}
    for on in (False, True):
        with _server({"openai-c": Plan(latency=0.05)}) as (server, p):
            store = ResponseCache() if on else None
            llm = _engine(p["openai-c"], cache=store)
            took = []
            for _ in range(50):
                started = time.perf_counter()
                llm.chat(QUESTION, temperature=0)
                took.append(time.perf_counter() - started)
            out[on] = (statistics.median(took[1:]), _count(server, "openai-c"))
            llm.close()
    return [
        Row(
            "response cache",
            "median latency of a repeated temperature-0 request (50 ms provider)",
            f"{out[False][0] * 1000:.1f} ms",
            f"{out[True][0] * 1000:.2f} ms",
        ),
        Row(
            "response cache",
            "upstream calls for 50 identical requests",
            *map(str, (out[False][1], out[True][1])),
        ),
    ]


def recovery() -> list[Row]:
    """Streams broken mid-answer (truncated, reset, in-band error, stalled) on the primary,
    with and without ``stream_recovery="continue"`` (the fallback is another family)."""
    faults: list[Fault | str] = [
        "truncate",
        "reset_mid_stream",
        "stream_error",
        Fault("stall", delay=60.0),
    ]
    n = 40
    answer = "The capital of France is Paris."
    out = {}
    for on in (False, True):
        script = [faults[i % len(faults)] for i in range(n)]
        plans = {"openai-broken": Plan(script=script), "anthropic-next": Plan()}
        with _server(plans) as (_, p):
            llm = _engine(
                p["openai-broken"],
                p["anthropic-next"],
                stream_timeouts=StreamTimeouts(idle=0.5),
                stream_recovery="continue" if on else None,
                hedge=False,
                # Every stream meets its break: no breaker opening turns the primary away.
                breaker=BreakerPolicy(failure_threshold=1000),
            )
            whole, seams = 0, []
            for _ in range(n):
                text, last = "", time.perf_counter()
                try:
                    for chunk in llm.stream(QUESTION):
                        now = time.perf_counter()
                        if "resumed" in chunk.metadata:
                            seams.append(now - last)
                        text, last = text + chunk.delta, now
                except StreamInterrupted:
                    pass
                whole += text == answer
            out[on] = (whole, statistics.median(seams) if seams else None)
            llm.close()
    seam = {on: "—" if s is None else f"{s * 1000:.0f} ms" for on, (_, s) in out.items()}
    return [
        Row(
            "stream recovery",
            f"broken streams that still gave the whole answer ({n}, 4 kinds of break)",
            f"{out[False][0]}/{n}",
            f"{out[True][0]}/{n}",
        ),
        Row(
            "stream recovery",
            "median gap at the seam, last chunk before to first after (a stall's 0.5 s "
            "idle limit included)",
            seam[False],
            seam[True],
        ),
    ]


MEASURES = (adaptive, budget, hedging, hung, bulkhead, capabilities, stalls, recovery, cache)


def main() -> None:
    guard()
    rows: list[Row] = []
    for measure in MEASURES:
        started = time.perf_counter()
        rows += measure()
        print(f"{measure.__name__}: {time.perf_counter() - started:.1f} s", flush=True)
    lines = [
        "# Beyond the peers: each feature off and on, on the chaos server",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        "`python -m benchmarks.features`.",
        "",
        "| feature | measure | without | with |",
        "|---|---|---:|---:|",
        *(f"| {r.feature} | {r.measure} | {r.without} | {r.with_} |" for r in rows),
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "features.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
