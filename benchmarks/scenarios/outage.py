"""Scenario 3, outage and recovery: the primary answers 529 to everything for a window, then
comes back.

Requests arrive on a fixed schedule (10 per second for 30 s, each with a 10 s deadline)
whatever the system does, as users do. OpenAI is down from 5 s to 15 s; Anthropic and
Gemini stay healthy. From the chaos server's log: how long after the outage began the first
answer came from a fallback (time to shift), how many calls went to the dead primary
(wasted), and how long after it recovered the primary answered again (time to return).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from .. import stats
from ..load import Outcome, open_loop
from ..spec import Hit, Policy, Route, Setup
from ..systems import System
from .base import Column

NAME = "outage"
TITLE = "Outage and recovery: the primary is down from 5 s to 15 s"
SIDE_BY_SIDE = frozenset({"raw", "engine", "lc_resilient", "litellm", "lc_peer"})
INTERLEAVED = False
SPREAD_REPS = False

COLUMNS = [
    Column("shift", "time to shift (s)", "{:.2f}", True, "never"),
    Column("wasted", "calls to the dead primary", "{:.0f}", True),
    Column("back", "time to return (s)", "{:.2f}", True, "never"),
    Column("success", "success %", "{:.1f}", False),
    Column("success_outage", "success % during outage", "{:.1f}", False),
    Column("p99_outage", "p99 during outage (s)", "{:.2f}", True),
    Column("upstream_per_success", "upstream calls / success", "{:.2f}", True),
]

_RATE = 10.0
PRIMARY = "openai"


def window(quick: bool) -> tuple[float, float, float]:
    """(outage start, outage end, load duration), seconds since GO."""
    return (3.0, 7.0, 12.0) if quick else (5.0, 15.0, 30.0)


def plans(quick: bool) -> dict[str, dict[str, Any]]:
    start, end, _ = window(quick)
    return {
        "openai": {"outages": [[start, end]]},
        "anthropic": {"latency": 0.02},
        "gemini": {"latency": 0.02},
    }


def setup(quick: bool) -> Setup:
    return Setup((Route("openai"), Route("anthropic"), Route("gemini")), Policy(deadline=10.0))


def prepare(system: System, setup: Setup, quick: bool) -> None:
    """No warm-up: a call before GO would be on the server's clock before the outage's."""


def work(system: System, setup: Setup, quick: bool, go: float) -> dict[str, Any]:
    duration = window(quick)[2]
    outcomes = asyncio.run(
        open_loop(system, _RATE, duration, lambda _: setup.max_tokens, setup.policy.deadline, go)
    )
    return {"outcomes": [o.row() for o in outcomes]}


def _first(hits: list[Hit], after: float, primary: bool) -> float | None:
    times = [
        h.t for h in hits if h.status == 200 and h.t >= after and (h.provider == PRIMARY) == primary
    ]
    return min(times) - after if times else None


def measure(result: dict[str, Any], hits: list[Hit], quick: bool) -> dict[str, Any]:
    start, end, _ = window(quick)
    outcomes = [Outcome.of(row) for row in result["outcomes"]]
    during = [o for o in outcomes if start <= o.start < end]
    successes = sum(o.ok for o in outcomes)
    return {
        "shift": _first(hits, start, primary=False),
        "wasted": sum(h.provider == PRIMARY and h.fault == "outage" for h in hits),
        "back": _first(hits, end, primary=True),
        "success": 100 * successes / len(outcomes),
        "success_outage": 100 * sum(o.ok for o in during) / len(during) if during else None,
        "p99_outage": stats.percentile([o.end - o.start if o.ok else math.inf for o in during], 99),
        "upstream_per_success": len(hits) / successes if successes else math.inf,
        # For the timeline plot: every upstream call, as (seconds, provider, status).
        "series": [[round(h.t, 3), h.provider, h.status] for h in hits],
    }
