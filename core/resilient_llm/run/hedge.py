"""Hedged calls: when the first route is slow to answer, ask the next one too.

A provider that is slow but not failing (a long queue, a cold replica) never trips a
breaker or a retry; every caller just waits. With ``Hedge(delay)``, a call that has no
reply (or, for a stream, no first chunk) after ``delay`` seconds starts a second call on
the routes it is not already trying, under the same deadline, and takes whichever
answers first; the other is cancelled, which gives back its limiter slot and breaker
permit. Only async calls hedge: running two attempts at once needs a loop to run them on.
Hedging trades cost for tail latency, so it is opt-in and the delay should sit near the
primary's usual p95.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from ..clock import Clock
from ..events import EventHandler, Hedged
from ..flow.admission import CallReport
from ..flow.effects import Call
from ..policies.backoff import _real
from ..state.memory import Route
from .drivers import AsyncSend, Flow, run_async
from .stranded import Stranded

__all__ = ["Hedge", "run_hedged"]

T = TypeVar("T")


@dataclass(frozen=True, init=False)
class Hedge:
    """Start a second call after ``delay`` seconds without a reply or first chunk."""

    delay: float

    def __init__(self, delay: float | timedelta) -> None:
        object.__setattr__(
            self, "delay", _real("Hedge.delay", delay, "> 0", lambda v: v > 0, duration=True)
        )


async def run_hedged(
    primary: Flow,
    make_hedge: Callable[[Route | None], tuple[Flow, Route] | None],
    clock: Clock,
    send: AsyncSend[T],
    delay: float,
    emit: EventHandler,
    discard: Callable[[T, CallReport], Awaitable[None]] | None = None,
    stranded: Stranded | None = None,
) -> tuple[T, CallReport]:
    """Run ``primary``; if it has not finished after ``delay``, race it against the flow
    ``make_hedge(route the primary is on, if any)`` returns with the route it leaves out
    (None: nothing left to hedge with).

    The first success wins; a success that lands after it is handed to ``discard`` (a
    stream to close). If both fail, the primary's error is raised.
    """
    trying: list[Route] = []

    async def tracked(call: Call) -> tuple[T, int | None]:
        trying.append(call.route)
        return await send(call)

    first = asyncio.ensure_future(run_async(primary, clock, tracked, stranded))
    tasks: list[asyncio.Future[tuple[T, CallReport]]] = [first]
    winner: asyncio.Future[tuple[T, CallReport]] | None = None
    try:
        # The delay runs on the clock, as a timeout on waiting for the primary (not a
        # sleep: a fake clock's sleep would end at once and hedge every call).
        with contextlib.suppress(TimeoutError):
            async with clock.timeout(delay):
                await asyncio.wait({first})
        if first.done():
            return first.result()
        hedge = make_hedge(trying[-1] if trying else None)
        if hedge is None:
            return await first
        flow, slow = hedge
        emit(Hedged(slow.name, clock.now(), delay))
        tasks.append(asyncio.ensure_future(run_async(flow, clock, send, stranded)))
        winner = await _first_success(tasks)
        return winner.result()
    finally:
        for task in tasks:
            task.cancel()
        # Let the losers' drivers run their cleanup (close flows, free admissions).
        await asyncio.gather(*tasks, return_exceptions=True)
        if winner is not None and discard is not None:
            for task in tasks:
                if task is not winner and _succeeded(task):
                    await discard(*task.result())


def _succeeded(task: asyncio.Future[tuple[T, CallReport]]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def _first_success(
    tasks: list[asyncio.Future[tuple[T, CallReport]]],
) -> asyncio.Future[tuple[T, CallReport]]:
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task in done and _succeeded(task):
                return task
    # Both failed: the primary's error carries the call's fuller history.
    error = tasks[0].exception()
    assert error is not None
    raise error
