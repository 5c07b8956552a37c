"""Small, dependency-free statistics: percentiles, medians and sliding-window counts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["max_in_window", "median", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank; ``inf`` entries (no answer) sort last.

    Nearest rank, not interpolation: p99 of 300 requests is a latency some request really
    had, and one failure among them is enough to make it infinite when it is in the top 1 %.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float | None]) -> float | None:
    """The median of the runs that produced a number (``None`` when none did)."""
    present = sorted(v for v in values if v is not None and not math.isnan(v))
    if not present:
        return None
    middle = len(present) // 2
    if len(present) % 2:
        return present[middle]
    low, high = present[middle - 1], present[middle]
    if math.isinf(low) or math.isinf(high):
        return high
    return (low + high) / 2


def max_in_window(times: Sequence[float], window: float = 60.0) -> int:
    """The most events in any half-open window ``[t, t + window)``, over every ``t``.

    Checking windows that start at each event is enough: sliding a window's start forward
    to the next event never loses one.
    """
    ordered = sorted(times)
    best = 0
    end = 0
    for start, t in enumerate(ordered):
        while end < len(ordered) and ordered[end] < t + window:
            end += 1
        best = max(best, end - start)
    return best
