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

from ..events import EventHandler, Hedged
from ..flow.admission import CallReport
from ..flow.effects import Call, Relay
from ..flow.ops import SharedRoute
from ..policies.backoff import _real
from .drivers import AsyncRun, AsyncSend, Sent

__all__ = ["Hedge", "run_hedged"]

T = TypeVar("T")
_Stop = tuple[T | None, Relay | CallReport]


@dataclass(frozen=True, init=False)
class Hedge:
    """Start a second call after ``delay`` seconds without a reply or first chunk."""

    delay: float

    def __init__(self, delay: float | timedelta) -> None:
        object.__setattr__(
            self, "delay", _real("Hedge.delay", delay, "> 0", lambda v: v > 0, duration=True)
        )


async def run_hedged(
    primary: AsyncRun[T],
    make_hedge: Callable[[SharedRoute | None], tuple[AsyncRun[T], SharedRoute] | None],
    send: AsyncSend[T],
    delay: float,
    emit: EventHandler,
    discard: Callable[[AsyncRun[T], T], Awaitable[None]] | None = None,
) -> tuple[AsyncRun[T], T | None, Relay | CallReport]:
    """Run ``primary``; if it has not got its reply (or first chunk) after ``delay``, race it
    against the run ``make_hedge(route the primary is on, if any)`` returns with the route it
    leaves out (None: nothing left to hedge with).

    The first success wins: its run, value and where its flow stopped are returned. A
    success that lands after it is handed to ``discard`` (a stream to close). If both
    fail, the primary's error is raised.
    """
    clock = primary.clock
    trying: list[SharedRoute] = []

    async def tracked(call: Call) -> Sent[T]:
        trying.append(call.route)
        return await send(call)

    runs = [primary]
    first = asyncio.ensure_future(primary.start(tracked))
    tasks: list[asyncio.Future[tuple[T | None, Relay | CallReport]]] = [first]
    winner: asyncio.Future[tuple[T | None, Relay | CallReport]] | None = None
    try:
        # The delay runs on the clock, as a timeout on waiting for the primary (not a
        # sleep: a fake clock's sleep would end at once and hedge every call).
        with contextlib.suppress(TimeoutError):
            async with clock.timeout(delay):
                await asyncio.wait({first})
        if first.done():
            winner = first
            return (primary, *first.result())
        hedge = make_hedge(trying[-1] if trying else None)
        if hedge is None:
            winner = first
            return (primary, *(await first))
        run, slow = hedge
        emit(Hedged(slow.name, clock.now(), delay))
        runs.append(run)
        tasks.append(asyncio.ensure_future(run.start(send)))
        winner = await _first_success(tasks)
        return (runs[tasks.index(winner)], *winner.result())
    finally:
        for task in tasks:
            task.cancel()
        # Let the losers' drivers run their cleanup (close flows, free admissions).
        await asyncio.gather(*tasks, return_exceptions=True)
        if winner is not None and discard is not None:
            for run, task in zip(runs, tasks, strict=True):
                if task is not winner and _succeeded(task):
                    value, stop = task.result()
                    if isinstance(stop, Relay) and value is not None:
                        await discard(run, value)


def _succeeded(task: asyncio.Future[_Stop[T]]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def _first_success(tasks: list[asyncio.Future[_Stop[T]]]) -> asyncio.Future[_Stop[T]]:
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
