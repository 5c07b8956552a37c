"""The four scenarios. Each module is one scenario and provides the same functions:

- orchestrator side: ``plans(quick)`` (chaos plans per provider, as ``Plan`` fields),
  ``setup(quick)`` (routes, limits, policy), ``measure(result, hits, quick)`` (metrics from
  the worker's result and the server's log), ``COLUMNS``, and ``SIDE_BY_SIDE`` /
  ``SPREAD_REPS``: which systems may run at the same time as each other (only runs paced
  by the clock, not by the CPU), and whether all their repetitions may, or one at a time;
- worker side: ``prepare(system, setup, quick)`` before GO (warm-up) and
  ``work(system, setup, quick, go)`` after it.

The modules import only the standard library at the top, so a worker loads nothing that
the system it measures does not.
"""

from __future__ import annotations

from . import limiter, mixed, outage, overhead
from .base import Column, Scenario

__all__ = ["SCENARIOS", "Column", "Scenario"]

SCENARIOS: dict[str, Scenario] = {
    m.NAME: m  # type: ignore[misc]
    for m in (overhead, mixed, outage, limiter)
}
