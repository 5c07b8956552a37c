"""Ways of sending requests, run inside a worker: closed loops and open-loop schedules.

Every request gets the same caller's deadline whatever the system (``asyncio.wait_for``
around the call), so a system that queues or sleeps forever is cut off exactly like one
that gives up on its own. Times are ``time.monotonic()`` seconds since the orchestrator's
GO, the clock the chaos server's log is converted to as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass

from .spec import PROMPT, is_answer
from .systems import System

__all__ = ["Outcome", "closed_loop", "one", "open_loop"]


@dataclass(frozen=True)
class Outcome:
    """One request: when it started and ended, whether it got a correct answer, and if not
    why (the exception's type name, ``deadline``, or ``wrong answer``)."""

    index: int
    start: float
    end: float
    ok: bool
    error: str = ""

    def row(self) -> list[object]:
        return list(astuple(self))

    @classmethod
    def of(cls, row: list[object]) -> Outcome:
        index, start, end, ok, error = row
        return cls(int(index), float(start), float(end), bool(ok), str(error))  # type: ignore[arg-type]


async def one(system: System, index: int, max_tokens: int, deadline: float, go: float) -> Outcome:
    start = time.monotonic()
    error = ""
    try:
        text = await asyncio.wait_for(system.acall(PROMPT, max_tokens), deadline)
    except TimeoutError:
        error = "deadline"
    except Exception as exc:
        error = type(exc).__name__
    else:
        if not is_answer(text):
            error = "wrong answer"
    return Outcome(index, start - go, time.monotonic() - go, not error, error)


async def closed_loop(
    system: System, total: int, concurrency: int, max_tokens: int, deadline: float, go: float
) -> list[Outcome]:
    """``total`` requests, ``concurrency`` in flight at any time."""
    outcomes: list[Outcome] = []
    counter = iter(range(total))

    async def worker() -> None:
        for index in counter:
            outcomes.append(await one(system, index, max_tokens, deadline, go))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(outcomes, key=lambda o: o.index)


async def open_loop(
    system: System,
    rate: float,
    duration: float,
    max_tokens: Callable[[int], int],
    deadline: float,
    go: float,
) -> list[Outcome]:
    """Request ``i`` starts at ``i / rate`` seconds whatever happened to the earlier ones,
    as users keep arriving whether or not the service is coping."""
    loop_start = time.monotonic()
    tasks: list[asyncio.Task[Outcome]] = []
    for index in range(int(rate * duration)):
        delay = loop_start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(system, index, max_tokens(index), deadline, go)))
    return list(await asyncio.gather(*tasks))
