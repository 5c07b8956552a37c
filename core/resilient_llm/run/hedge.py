"""Hedged calls: when an attempt shows no sign of life, ask the next route beside it.

The flow decides which attempts may be raced and how long each may stay quiet
(:class:`~resilient_llm.policies.hedging.Hedge`, on ``Call.hedge_after``); this module
races. The primary's run says when its attempt has been quiet too long (an attempt says
it is alive with :func:`~resilient_llm.run.drivers.alive`: a whole reply read through the
stream does so at its first chunk, :mod:`~resilient_llm.run.assembly`); a second run is
then started on the routes the primary is not on, under the same deadline, and the first
complete answer wins (for a stream, the first chunk). The other run is cancelled, which
gives back its limiter slot, bulkhead slot and breaker permit, and counts neither way.

Async runs race as tasks on the caller's loop. A sync primary runs on the caller's thread,
and its quiet spells arm a timer on the clock's one shared thread
(:mod:`~resilient_llm.run.timers`): only a call whose attempt stays quiet pays for a
thread, the hedge's. A sync loser's reads are cut at once (its attempt's watch shuts its
connection down, :mod:`resilient_llm._watch`), so its run ends within one read and gives
back what its flow held.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..events import EventHandler, Hedged
from ..flow.admission import CallReport
from ..flow.effects import Call, Relay
from ..flow.ops import SharedRoute
from ..policies.hedging import DEFAULT_HEDGE, Hedge
from .drivers import Abandoned, AsyncRun, AsyncSend, SyncRun, SyncSend
from .timers import Timer, arm, disarm

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


class _SyncRace(Generic[T]):
    """A sync call's primary, run on the caller's thread, and the hedge a quiet attempt of
    it starts on a thread of its own.

    Every field below is read and changed under ``lock``. The primary's quiet spells arm
    a timer on the clock's shared thread (:mod:`~resilient_llm.run.timers`); the timer
    starts the hedge. The first answer wins: the hedge's cuts the primary's reads
    (``abandon``), the primary's cancels the hedge's run.
    """

    def __init__(
        self,
        primary: SyncRun[T],
        make_hedge: Callable[[SharedRoute | None], tuple[SyncRun[T], SharedRoute] | None],
        send: SyncSend[T],
        emit: EventHandler,
        discard: Callable[[SyncRun[T], T], None] | None,
    ) -> None:
        self.primary = primary
        self.make_hedge = make_hedge
        self.send = send
        self.emit = emit
        self.discard = discard
        self.lock = threading.Lock()
        self.timer: Timer | None = None
        self.racing = True  # no hedge started, and one may be
        self.running = True  # the primary's run has not ended
        self.winner: SyncRun[T] | None = None
        self.lane: _Lane[T] | None = None
        # The caller's context (its trace) goes with the hedge's thread.
        self.context = contextvars.copy_context()

    def quiet(self, call: Call | None, at: float) -> None:
        """The primary's attempt ``call`` is quiet until ``at`` (None: it is not now)."""
        with self.lock:
            old, self.timer = self.timer, None
            if call is not None and self.racing:
                self.timer = arm(self.primary.clock, at, functools.partial(self._due, call))
        if old is not None:
            disarm(old)

    def _due(self, call: Call, timer: Timer) -> None:
        """On the clock's thread: the primary's attempt stayed quiet; start the hedge."""
        with self.lock:
            if timer is not self.timer or not self.racing:
                return  # a sign of life, or the primary's end, came first
            self.timer, self.racing = None, False
            lane = self.lane = _Lane(self, call)
        try:
            lane.thread.start()
        except BaseException:  # no thread to be had: the primary goes on alone
            lane.ended.set()
            raise

    def won(self, lane: _Lane[T], result: _Stop[T]) -> bool:
        """On the hedge's thread: its run answered; whether that answer is the call's."""
        with self.lock:
            if self.winner is not None or lane.lost:
                return False
            self.winner, lane.result = lane.run, result
            if self.running:
                self.primary.abandon()  # its thread, the caller's, then takes this answer
        return True

    def ended(
        self, result: _Stop[T] | None, error: BaseException | None
    ) -> tuple[SyncRun[T], T | None, Relay | CallReport]:
        """On the caller's thread: the primary's run returned ``result`` or raised ``error``;
        the call's answer (the hedge's, if it won or the primary failed and it answers)."""
        with self.lock:
            self.running = self.racing = False
            timer, self.timer = self.timer, None
            if self.winner is None and result is not None:
                self.winner = self.primary
            winner, lane = self.winner, self.lane
        if timer is not None:
            disarm(timer)
        if winner is self.primary:
            assert result is not None
            if lane is not None:
                lane.lose()
            return (self.primary, *result)
        if lane is None:
            assert error is not None
            raise error
        if winner is None:
            if error is not None and not isinstance(error, Exception):
                lane.lose()  # an interrupt: nobody waits for the hedge
                raise error
            try:
                lane.ended.wait()  # the primary failed: the hedge may yet answer
            except BaseException:
                lane.lose()
                raise
            with self.lock:
                winner = self.winner
            if winner is None:
                # Both failed: the primary's error carries the call's fuller history.
                assert error is not None
                raise error
        elif error is not None and not isinstance(error, Exception | Abandoned):
            lane.lose()  # the hedge answered, but the caller was interrupted
            raise error
        if result is not None:
            self.drop(self.primary, result)  # the primary answered just after the hedge
        assert lane.result is not None
        assert lane.run is not None
        return (lane.run, *lane.result)

    def drop(self, run: SyncRun[T], result: _Stop[T]) -> None:
        value, stop = result
        if self.discard is not None and isinstance(stop, Relay) and value is not None:
            self.discard(run, value)


class _Lane(Generic[T]):
    """A sync call's hedge: a second run on its own thread."""

    def __init__(self, race: _SyncRace[T], call: Call) -> None:
        self.race = race
        self.call = call
        self.run: SyncRun[T] | None = None
        self.result: _Stop[T] | None = None  # its answer, once it is the call's
        self.lost = False
        self.ended = threading.Event()
        self.thread = threading.Thread(
            target=race.context.run, args=(self._go,), name="resilient-llm-hedge", daemon=True
        )

    def _go(self) -> None:
        try:
            self._race()
        except BaseException:  # a failed hedge; the primary's own outcome stands
            pass
        finally:
            self.ended.set()

    def _race(self) -> None:
        race = self.race
        made = race.make_hedge(self.call.route)
        if made is None:
            return  # nothing left to hedge with
        run, slow = made
        with race.lock:
            if self.lost:
                return  # the primary answered meanwhile; the run never started
            self.run = run
        race.emit(_hedged(self.call, slow, run.clock.now()))
        result = run.start(race.send)
        if not race.won(self, result):
            race.drop(run, result)  # it answered after the primary

    def lose(self) -> None:
        """Cancel the hedge: its run stops at once; an answer it already has is dropped."""
        race = self.race
        with race.lock:
            self.lost = True
            result, self.result = self.result, None
            run = self.run
        if run is None:
            return
        if result is not None:
            race.drop(run, result)
        else:
            run.abandon()


def run_hedged_sync(
    primary: SyncRun[T],
    make_hedge: Callable[[SharedRoute | None], tuple[SyncRun[T], SharedRoute] | None],
    send: SyncSend[T],
    emit: EventHandler,
    discard: Callable[[SyncRun[T], T], None] | None = None,
) -> tuple[SyncRun[T], T | None, Relay | CallReport]:
    """The sync twin of :func:`run_hedged`: the primary runs on the caller's thread, and
    only once one of its attempts has been quiet too long does the hedge get a thread."""
    race = _SyncRace(primary, make_hedge, send, emit, discard)
    primary.quiet = race.quiet
    try:
        result = primary.start(send)
    except BaseException as error:
        primary.quiet = None
        return race.ended(None, error)
    primary.quiet = None
    return race.ended(result, None)
