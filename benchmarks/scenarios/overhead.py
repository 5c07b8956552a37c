"""Scenario 1, overhead: every provider healthy with zero latency, so any time above the raw
SDK's is what the layer itself costs.

Sequential: 2,000 sync calls one after another (µs per call, wall and the worker's CPU),
then 2,000 async calls one after another (the async transport's µs per call).
Concurrent: 5,000 async calls, 100 in flight (calls per second). All the systems' workers
stay up and take turns, in 5 rounds of 400 sync, 400 async sequential, then 1,000
concurrent calls each, so that load from elsewhere on the machine weighs on all of them
alike; each round is one
measurement, its ratios taken against the raw SDK's slice of the same round. Peak RSS is
the worker's high-water mark at the end; import time and the first reply are measured
apart, in fresh processes (see ``run.py``). No rate limits here: a limiter sized far above
the load would only add the peers' polling artefacts, and the limiter has its own scenario.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from ..spec import PROMPT, Hit, Policy, Route, Setup, is_answer
from ..systems import System
from .base import Column

NAME = "overhead"
TITLE = "Overhead: all healthy, zero latency"
SIDE_BY_SIDE = frozenset[str]()
SPREAD_REPS = False
INTERLEAVED = True

COLUMNS = [
    Column("import_ms", "import (ms)", "{:.0f}", True),
    Column("cold_ms", "first reply, cold (ms)", "{:.0f}", True),
    Column("seq_us", "sequential µs/call", "{:.0f}", True),
    Column("seq_ratio", "x raw", "{:.2f}", True),
    Column("seq_cpu_us", "client CPU µs/call", "{:.0f}", True),
    Column("aseq_us", "async sequential µs/call", "{:.0f}", True),
    Column("conc_rps", "calls/s @100", "{:.0f}", False),
    Column("conc_ratio", "raw ÷ system", "{:.2f}", True),
    Column("conc_cpu_us", "client CPU µs/call @100", "{:.0f}", True),
    Column("rss_mb", "peak RSS (MB)", "{:.0f}", True),
]

_WARMUP = 50
_CONCURRENCY = 100
_ROUNDS = 5


def _counts(quick: bool) -> tuple[int, int]:
    return (200, 500) if quick else (2_000, 5_000)


def plans(quick: bool) -> dict[str, dict[str, Any]]:
    return {"openai": {}, "anthropic": {}, "gemini": {}}


def setup(quick: bool) -> Setup:
    return Setup((Route("openai"), Route("anthropic"), Route("gemini")), Policy(deadline=60.0))


def prepare(system: System, setup: Setup, quick: bool) -> None:
    # Connection pools, lazy imports and first-call caches are not the steady state.
    for _ in range(_WARMUP):
        system.call(PROMPT, setup.max_tokens)


def _sequential(system: System, total: int, max_tokens: int) -> tuple[float, float, int]:
    errors = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(total):
        try:
            ok = is_answer(system.call(PROMPT, max_tokens))
        except Exception:
            ok = False
        errors += not ok
    return time.perf_counter() - wall, time.process_time() - cpu, errors


async def _one_by_one(system: System, total: int, max_tokens: int) -> tuple[float, float, int]:
    errors = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(total):
        try:
            ok = is_answer(await system.acall(PROMPT, max_tokens))
        except Exception:
            ok = False
        errors += not ok
    return time.perf_counter() - wall, time.process_time() - cpu, errors


async def _drain(system: System, calls: Any, max_tokens: int) -> int:
    # A bare loop, no per-call wait_for: its task per call would dilute the differences.
    errors = 0
    for _ in calls:
        try:
            ok = is_answer(await system.acall(PROMPT, max_tokens))
        except Exception:
            ok = False
        errors += not ok
    return errors


async def _concurrent(system: System, total: int, max_tokens: int) -> tuple[float, float, int]:
    calls = iter(range(total))
    cpu, wall = time.process_time(), time.perf_counter()
    errors = await asyncio.gather(*(_drain(system, calls, max_tokens) for _ in range(_CONCURRENCY)))
    return time.perf_counter() - wall, time.process_time() - cpu, sum(errors)


@functools.cache
def _loop(system: System, max_tokens: int) -> asyncio.Runner:
    """One event loop for all of a worker's concurrent slices: async clients and their
    pools belong to the loop that made them, and are warmed on it here."""

    async def warm() -> None:
        await asyncio.gather(*(_drain(system, range(2), max_tokens) for _ in range(_CONCURRENCY)))

    runner = asyncio.Runner()
    runner.run(warm())
    return runner


def schedule(quick: bool) -> list[list[dict[str, Any]]]:
    """The interleaved rounds: in each, every system runs a sequential slice, then every
    system a concurrent one, so that whatever else loads the machine meanwhile weighs on
    all of them alike. Each round is one measurement; the report takes the median."""
    sequential, concurrent = _counts(quick)
    rounds = 2 if quick else _ROUNDS
    return [
        [
            {"mode": "seq", "calls": sequential // rounds},
            {"mode": "aseq", "calls": sequential // rounds},
            {"mode": "conc", "calls": concurrent // rounds},
        ]
        for _ in range(rounds)
    ]


def step(system: System, setup: Setup, spec: dict[str, Any]) -> dict[str, Any]:
    """One slice of a round: ``{"mode": "seq" | "aseq" | "conc", "calls": n}``."""
    calls = int(spec["calls"])
    if spec["mode"] == "seq":
        wall, cpu, failed = _sequential(system, calls, setup.max_tokens)
    elif spec["mode"] == "aseq":
        runner = _loop(system, setup.max_tokens)
        wall, cpu, failed = runner.run(_one_by_one(system, calls, setup.max_tokens))
    else:
        runner = _loop(system, setup.max_tokens)
        wall, cpu, failed = runner.run(_concurrent(system, calls, setup.max_tokens))
    return {"n": calls, "s": wall, "cpu_s": cpu, "failed": failed}


def work(system: System, setup: Setup, quick: bool, go: float) -> dict[str, Any]:
    """Every slice of the schedule in a row, for one system alone (``harness.run_once``)."""
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for specs in schedule(quick):
        for spec in specs:
            by_mode.setdefault(spec["mode"], []).append(step(system, setup, spec))
    result: dict[str, Any] = {}
    for mode, parts in by_mode.items():
        result[f"{mode}_n"] = sum(s["n"] for s in parts)
        result[f"{mode}_s"] = sum(s["s"] for s in parts)
        result[f"{mode}_cpu_s"] = sum(s["cpu_s"] for s in parts)
    slices = [s for parts in by_mode.values() for s in parts]
    result["failed"] = sum(s["failed"] for s in slices)
    result["calls"] = sum(s["n"] for s in slices) + 2 * _CONCURRENCY
    return result


def measure(result: dict[str, Any], hits: list[Hit], quick: bool) -> dict[str, Any]:
    figures = {
        "seq_us": result["seq_s"] / result["seq_n"] * 1e6,
        "seq_cpu_us": result["seq_cpu_s"] / result["seq_n"] * 1e6,
        "conc_rps": result["conc_n"] / result["conc_s"],
        "conc_cpu_us": result["conc_cpu_s"] / result["conc_n"] * 1e6,
        "rss_mb": result["rss_mb"],
        "failed": result["failed"],
        "upstream_per_call": len(hits) / result["calls"] if result.get("calls") else None,
    }
    if result.get("aseq_n"):
        figures["aseq_us"] = result["aseq_s"] / result["aseq_n"] * 1e6
        figures["aseq_cpu_us"] = result["aseq_cpu_s"] / result["aseq_n"] * 1e6
    return figures
