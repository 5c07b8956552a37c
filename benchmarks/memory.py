"""Memory per call: a worker's resident set after N calls, at marks (10k, 50k, 100k and
200k calls; 1k, 5k and 10k with ``--quick``), to show that what a call leaves behind does
not grow with the number of calls once the engine's windows (a minute of admissions per
route, kept for its snapshots) are full: the last mark is well past a minute of calls.

Worker side (``python -m benchmarks.worker memory SYSTEM SETUP_JSON MARKS``): async calls,
100 in flight, against a healthy chaos server; at each mark the garbage collector runs and
the *current* RSS is read from ``/proc/self/statm`` (not the high-water mark, which
remembers the warm-up's transient peak).
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

from .spec import PROMPT, Setup
from .systems import build

__all__ = ["MARKS", "current_rss_mb", "memory_here"]

MARKS = {False: (10_000, 50_000, 100_000, 200_000), True: (1_000, 5_000, 10_000)}
_CONCURRENCY = 100


def current_rss_mb() -> float:
    """This process's resident set now, in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_here(system_name: str, setup_json: str, marks_text: str) -> dict[str, Any]:
    """Worker side: RSS after each mark's number of calls; failed calls counted."""
    setup = Setup.from_json(setup_json)
    system = build(system_name, setup)
    marks = sorted(int(m) for m in marks_text.split(","))
    rss: dict[str, float] = {}
    failed = 0

    async def drain(calls: Any) -> int:
        errors = 0
        for _ in calls:
            try:
                await system.acall(PROMPT, setup.max_tokens)
            except Exception:
                errors += 1
        return errors

    async def run() -> None:
        nonlocal failed
        done = 0
        for mark in marks:
            calls = iter(range(mark - done))
            errors = await asyncio.gather(*(drain(calls) for _ in range(_CONCURRENCY)))
            failed += sum(errors)
            done = mark
            gc.collect()
            rss[str(mark)] = current_rss_mb()

    asyncio.run(run())
    system.close()
    return {"rss_at": rss, "failed": failed}
