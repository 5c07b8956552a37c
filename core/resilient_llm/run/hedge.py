"""Hedged calls: when an attempt shows no sign of life, ask the next route beside it.

The flow decides which attempts may be raced and how long each may stay quiet
(:class:`~resilient_llm.policies.hedging.Hedge`, on ``Call.hedge_after``); this module
races. The primary's run says when its attempt has been quiet too long (an attempt says
it is alive with :func:`~resilient_llm.run.drivers.alive`: a whole reply read through the
stream does so at its first chunk, :mod:`~resilient_llm.run.assembly`); a second run is
then started on the routes the primary is not on, under the same deadline, and the first
complete answer wins (for a stream, the first chunk). The other run is cancelled, which
gives back its limiter slot, bulkhead slot and breaker permit, and counts neither way.

Async runs race as tasks on the caller's loop. Sync runs race on two threads, the caller
waiting on the clock for the first answer; a sync loser's reads are cut at once (its
attempt's watch shuts its connection down, :mod:`resilient_llm._watch`), so its thread
ends within one read and gives back what its flow held.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..events import EventHandler, Hedged
from ..flow.admission import CallReport
from ..flow.effects import Call, Relay
from ..flow.ops import SharedRoute
from ..policies.hedging import DEFAULT_HEDGE, Hedge
from .drivers import AsyncRun, AsyncSend, SyncRun, SyncSend

__all__ = ["DEFAULT_HEDGE", "Hedge", "run_hedged", "run_hedged_sync"]

T = TypeVar("T")
_Stop = tuple[T | None, Relay | CallReport]
_Won = tuple[AsyncRun[T], T | None, Relay | CallReport]


def _hedged(call: Call, route: SharedRoute, now: float) -> Hedged:
    return Hedged(route.name, now, call.hedge_after or 0.0, call.why)


async def run_hedged(
    primary: AsyncRun[T],
    make_hedge: Callable[[SharedRoute | None], tuple[AsyncRun[T], SharedRoute] | None],
    send: AsyncSend[T],
    emit: EventHandler,
    discard: Callable[[AsyncRun[T], T], Awaitable[None]] | None = None,
) -> _Won[T]:
    """Run ``primary``; once one of its attempts has been quiet too long, race it against
    the run ``make_hedge(the route of that attempt)`` returns with the route it leaves out
    (None: nothing left to hedge with).

    The first success wins: its run, value and where its flow stopped are returned. A
    success that lands after it is handed to ``discard`` (a stream to close). If both
    fail, the primary's error is raised.
    """
    clock = primary.clock
    # Set by the primary's first quiet attempt, or (None) by the primary's end.
    heard: asyncio.Future[Call | None] = asyncio.get_running_loop().create_future()

    def on_quiet(call: Call | None) -> None:
        if not heard.done():
            heard.set_result(call)

    primary.quiet = on_quiet
    runs = [primary]
    first = asyncio.ensure_future(primary.start(send))
    first.add_done_callback(lambda _: on_quiet(None))
    tasks: list[asyncio.Future[_Stop[T]]] = [first]
    winner: asyncio.Future[_Stop[T]] | None = None
    try:
        call = await heard
        primary.quiet = None
        if call is None or first.done():
            winner = first
            return (primary, *first.result())
        hedge = make_hedge(call.route)
        if hedge is None:
            winner = first
            return (primary, *(await first))
        run, slow = hedge
        emit(_hedged(call, slow, clock.now()))
        runs.append(run)
        tasks.append(asyncio.ensure_future(run.start(send)))
        winner = await _first_success(tasks)
        return (runs[tasks.index(winner)], *winner.result())
    finally:
        if not all(task.done() for task in tasks):
            for task in tasks:
                task.cancel()
            # Let the losers' drivers run their cleanup (close flows, free admissions).
            await asyncio.gather(*tasks, return_exceptions=True)
        if winner is not None and discard is not None:
            for loser, task in zip(runs, tasks, strict=True):
                if task is not winner and _succeeded(task):
                    value, stop = task.result()
                    if isinstance(stop, Relay) and value is not None:
                        await discard(loser, value)


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


class _Lane(Generic[T]):
    """One sync run on its own thread, raced against another."""

    def __init__(
        self,
        run: SyncRun[T],
        send: SyncSend[T],
        changed: threading.Event,
        discard: Callable[[SyncRun[T], T], None] | None,
    ) -> None:
        self.run = run
        self.changed = changed
        self.discard = discard
        self.lock = threading.Lock()
        self.done = False
        self.lost = False
        self.result: _Stop[T] | None = None
        self.error: BaseException | None = None
        self.quiet_call: Call | None = None
        self.quiet_at: float | None = None
        # The caller's context (its trace) goes with the run.
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._go, send), name="resilient-llm-hedge", daemon=True
        )

    def watch_quiet(self) -> None:
        self.run.quiet = self._quiet

    def _quiet(self, call: Call | None, at: float) -> None:
        self.quiet_call = call
        self.quiet_at = None if call is None else at
        self.changed.set()

    def _go(self, send: SyncSend[T]) -> None:
        try:
            result = self.run.start(send)
        except BaseException as error:  # handed to the racer; a lost run's is dropped
            with self.lock:
                self.error, self.done = error, True
            self.changed.set()
            return
        with self.lock:
            self.done = not self.lost
            if self.done:
                self.result = result
        if self.done:
            self.changed.set()
        else:
            self._drop(result)  # it won its own race after losing the call's

    def _drop(self, result: _Stop[T]) -> None:
        value, stop = result
        if self.discard is not None and isinstance(stop, Relay) and value is not None:
            self.discard(self.run, value)

    def succeeded(self) -> bool:
        return self.done and self.error is None and self.result is not None

    def lose(self) -> None:
        """Cancel this lane: its run stops at once; a result it already has is dropped."""
        with self.lock:
            self.lost = True
            result, self.result = self.result, None
        self.run.quiet = None
        if result is not None:
            self._drop(result)
        else:
            self.run.abandon()


def run_hedged_sync(
    primary: SyncRun[T],
    make_hedge: Callable[[SharedRoute | None], tuple[SyncRun[T], SharedRoute] | None],
    send: SyncSend[T],
    emit: EventHandler,
    discard: Callable[[SyncRun[T], T], None] | None = None,
) -> tuple[SyncRun[T], T | None, Relay | CallReport]:
    """The sync twin of :func:`run_hedged`: each run on a thread, the caller waiting on the
    clock for the first answer (or for the primary's attempt to be quiet too long)."""
    clock = primary.clock
    changed = threading.Event()
    lanes = [_Lane(primary, send, changed, discard)]
    lanes[0].watch_quiet()
    lanes[0].thread.start()
    racing = True
    winner: _Lane[T] | None = None
    try:
        while winner is None:
            changed.clear()  # before looking, so a change made after the look is seen
            winner = next((lane for lane in lanes if lane.succeeded()), None)
            if winner is not None:
                break
            if all(lane.done for lane in lanes):
                error = lanes[0].error
                assert error is not None
                raise error
            wait: float | None = None
            first = lanes[0]
            at, call = first.quiet_at, first.quiet_call
            if racing and at is not None and call is not None:
                wait = at - clock.now()
                if wait <= 0:
                    racing = False
                    first.run.quiet = None
                    hedge = make_hedge(call.route)
                    if hedge is not None:
                        run, slow = hedge
                        emit(_hedged(call, slow, clock.now()))
                        lanes.append(_Lane(run, send, changed, discard))
                        lanes[-1].thread.start()
                    continue
            clock.wait(changed, wait)
    finally:
        for lane in lanes:
            if lane is not winner:
                lane.lose()
    assert winner.result is not None
    return (winner.run, *winner.result)
