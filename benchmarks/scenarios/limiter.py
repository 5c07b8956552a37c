"""Scenario 4, limiter accuracy: demand three times the quota of a single provider.

The provider's quota is 60 requests and 12,000 tokens per minute, counted over a sliding
60 s window, and each system's own limit is set to exactly that (the raw SDK has none).
Requests arrive at 3 per second for 60 s, each with a 15 s deadline; request ``i`` asks for
``max_tokens = 100 + i``, so the quota tokens the server charges name the request, and the
log shows in which order requests were really sent.

Measured from the server's log: the most requests that reached the provider in any 60 s
window (overshoot is what exceeds the quota), the 429s provoked, and out-of-order sends (a
request sent after one that arrived later). The worker's CPU time over the run, divided by
its wall time, shows what waiting costs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .. import stats
from ..load import Outcome, open_loop
from ..spec import PROMPT, Hit, Policy, Route, Setup
from ..systems import System
from .base import Column

NAME = "limiter"
TITLE = "Limiter accuracy: 3x the quota for 60 s"
SIDE_BY_SIDE = frozenset({"raw", "engine", "lc_resilient", "litellm", "lc_peer"})
INTERLEAVED = False
SPREAD_REPS = True

COLUMNS = [
    Column("peak", "most sent in a 60 s window", "{:.0f}", True),
    Column("overshoot", "overshoot", "{:.0f}", True),
    Column("r429", "429s provoked", "{:.0f}", True),
    Column("out_of_order", "out-of-order sends %", "{:.1f}", True),
    Column("answered", "answered", "{:.0f}", False),
    Column("cpu", "CPU while waiting (% of a core)", "{:.1f}", True),
]

_BASE_MAX_TOKENS = 100


def load(quick: bool) -> tuple[int, int, float]:
    """(requests per minute, tokens per minute, demand duration in seconds)."""
    return (10, 2_000, 30.0) if quick else (60, 12_000, 60.0)


def plans(quick: bool) -> dict[str, dict[str, Any]]:
    rpm, tpm, _ = load(quick)
    return {"openai": {"rpm": rpm, "tpm": tpm}}


def setup(quick: bool) -> Setup:
    rpm, tpm, _ = load(quick)
    return Setup((Route("openai", rpm=rpm, tpm=tpm),), Policy(deadline=10.0 if quick else 15.0))


def prepare(system: System, setup: Setup, quick: bool) -> None:
    """No warm-up: it would spend the quota the scenario measures."""


def work(system: System, setup: Setup, quick: bool, go: float) -> dict[str, Any]:
    rpm, _, duration = load(quick)
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = asyncio.run(
        open_loop(
            system,
            3 * rpm / 60,
            duration,
            lambda index: _BASE_MAX_TOKENS + index,
            setup.policy.deadline,
            go,
        )
    )
    return {
        "outcomes": [o.row() for o in outcomes],
        "run_cpu_s": time.process_time() - cpu,
        "run_wall_s": time.perf_counter() - wall,
    }


def _request_of(tokens: int, total: int) -> int | None:
    """The request index a charge of ``tokens`` names (the server charges ceil(chars / 4)
    of the prompt plus max_tokens)."""
    index = tokens - -(-len(PROMPT) // 4) - _BASE_MAX_TOKENS
    return index if 0 <= index < total else None


def measure(result: dict[str, Any], hits: list[Hit], quick: bool) -> dict[str, Any]:
    rpm, _, _ = load(quick)
    outcomes = [Outcome.of(row) for row in result["outcomes"]]
    peak = stats.max_in_window([h.t for h in hits])
    order = [_request_of(h.tokens, len(outcomes)) for h in sorted(hits, key=lambda h: h.t)]
    sent = [i for i in order if i is not None]
    overtaken, latest = 0, -1
    for index in sent:
        overtaken += index < latest
        latest = max(latest, index)
    return {
        "peak": peak,
        "overshoot": max(0, peak - rpm),
        "r429": sum(h.status == 429 for h in hits),
        "out_of_order": 100 * overtaken / len(sent) if sent else None,
        "answered": sum(o.ok for o in outcomes),
        "cpu": 100 * result["run_cpu_s"] / result["run_wall_s"],
        # For the plot: when each request reached the provider, and whether it was refused.
        "series": [[round(h.t, 3), h.status] for h in hits],
    }
