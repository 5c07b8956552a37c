"""Scenario 2, mixed faults: three providers, none of them simply healthy-and-fast.

- OpenAI (the primary): a quota of 60 requests and 12,000 tokens per minute, and 20 % of
  the requests it admits answer 500;
- Anthropic: 30 % answer 529 overloaded, 100 ms latency;
- Gemini: healthy but slower, 300 ms latency.

300 requests (``max_tokens=256``, so each charges 264 quota tokens), 20 in flight, each
with a 10 s deadline. A failed request never got an answer, so its time to answer counts
as infinite: one failure in the top 1 % makes p99 infinite, as it is for the user.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import Any

from .. import stats
from ..load import Outcome, closed_loop
from ..spec import Hit, Policy, Route, Setup
from ..systems import System
from .base import Column

NAME = "mixed"
TITLE = "Mixed faults: quota'd + 20 % 500s, 30 % 529s + latency, slow but healthy"
# These two spend this scenario waiting (the raw SDK on 60 s retry-afters, the LangChain
# chain in its blocking limiter) until the deadline cuts them off, about 2.5 minutes a run:
# their repetitions run side by side, which their low CPU use (a column of the table)
# allows. The others, busy and measured on p99, run alone.
SIDE_BY_SIDE = frozenset({"raw", "lc_peer"})
INTERLEAVED = False
SPREAD_REPS = True

COLUMNS = [
    Column("success", "success %", "{:.1f}", False),
    Column("p50", "p50 (s)", "{:.2f}", True),
    Column("p95", "p95 (s)", "{:.2f}", True),
    Column("p99", "p99 (s)", "{:.2f}", True),
    Column("upstream_per_success", "upstream calls / success", "{:.2f}", True),
    Column("r429", "429s received", "{:.0f}", True),
    Column("wall", "wall (s)", "{:.1f}", True),
    Column("cpu", "client CPU (% of a core)", "{:.0f}"),
]

_CONCURRENCY = 20


def _quota(quick: bool) -> tuple[int, int]:
    return (20, 4_000) if quick else (60, 12_000)


def plans(quick: bool) -> dict[str, dict[str, Any]]:
    rpm, tpm = _quota(quick)
    return {
        "openai": {"rpm": rpm, "tpm": tpm, "error_rate": 0.2, "seed": 11},
        "anthropic": {
            "error_rate": 0.3,
            "error_kinds": ["overloaded"],
            "latency": 0.1,
            "seed": 12,
        },
        "gemini": {"latency": 0.3, "seed": 13},
    }


def setup(quick: bool) -> Setup:
    rpm, tpm = _quota(quick)
    return Setup(
        (Route("openai", rpm=rpm, tpm=tpm), Route("anthropic"), Route("gemini")),
        Policy(deadline=10.0),
    )


def prepare(system: System, setup: Setup, quick: bool) -> None:
    """No warm-up: it would spend the quota the scenario is about."""


def work(system: System, setup: Setup, quick: bool, go: float) -> dict[str, Any]:
    total = 60 if quick else 300
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = asyncio.run(
        closed_loop(system, total, _CONCURRENCY, setup.max_tokens, setup.policy.deadline, go)
    )
    return {
        "outcomes": [o.row() for o in outcomes],
        "run_cpu_s": time.process_time() - cpu,
        "run_wall_s": time.perf_counter() - wall,
    }


def measure(result: dict[str, Any], hits: list[Hit], quick: bool) -> dict[str, Any]:
    outcomes = [Outcome.of(row) for row in result["outcomes"]]
    successes = sum(o.ok for o in outcomes)
    answer_times = [o.end - o.start if o.ok else math.inf for o in outcomes]
    return {
        "success": 100 * successes / len(outcomes),
        "p50": stats.percentile(answer_times, 50),
        "p95": stats.percentile(answer_times, 95),
        "p99": stats.percentile(answer_times, 99),
        "upstream": len(hits),
        "upstream_per_success": len(hits) / successes if successes else math.inf,
        "r429": sum(h.status == 429 for h in hits),
        "wall": max(o.end for o in outcomes) - min(o.start for o in outcomes),
        "cpu": 100 * result["run_cpu_s"] / result["run_wall_s"],
        "errors": dict(Counter(o.error for o in outcomes if not o.ok)),
        "by_provider": dict(Counter(f"{h.provider} {h.status}" for h in hits)),
    }
