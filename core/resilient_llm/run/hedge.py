"""Hedged calls: when an attempt shows no sign of life, ask the next route beside it.

The flow decides which attempts may be raced and how long each may stay quiet
(:class:`~resilient_llm.policies.hedging.Hedge`, on ``Call.hedge_after``); this module
races. The primary's run says when its attempt has been quiet too long (an attempt says
it is alive with :func:`~resilient_llm.run.drivers.alive`: a whole reply read through the
stream does so at its first chunk, :mod:`~resilient_llm.run.assembly`); a second run is
then started on the routes the primary is not on, under the same deadline, and the first
complete answer wins (for a stream, the first chunk). The other run is cancelled, which
gives back its limiter slot, bulkhead slot and breaker permit, and counts neither way.

An async primary runs in the caller's task, its quiet spells timed by the loop; only a
call whose attempt stays quiet pays for a task, the hedge's, which interrupts the primary
if it wins. A sync primary runs on the caller's thread, and its quiet spells arm a timer
on the clock's one shared thread (:mod:`~resilient_llm.run.timers`): only a call whose
attempt stays quiet pays for a thread, the hedge's. A sync loser's reads are cut at once
(its attempt's watch shuts its connection down, :mod:`resilient_llm._watch`), so its run
ends within one read and gives back what its flow held.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from .drivers import Abandoned, AsyncRun, AsyncSend, SyncRun, SyncSend, apart
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

    The primary runs in the caller's task, as an unhedged call does: a task per call
    would cost every call its allocations (and the collector's time over them at high
    concurrency) to serve the few that stay quiet. Only the hedge is a task; if it wins,
    it interrupts the primary by cancelling the caller's task, which this function takes
    back (``uncancel``) unless the caller was also cancelled from elsewhere.
    """
    race = _AsyncRace(primary, make_hedge, send, emit)
    primary.quiet = race.on_quiet
    hedge_answers = False
    try:
        race.running = True
        try:
            value, stop = await primary.start(send)
        finally:
            race.running = False
            primary.quiet = None
    except asyncio.CancelledError:
        if race.caller is None or not race.won or race.caller.uncancel() > 0:
            raise
        hedge_answers = True
        return await race.hedge_answer()
    except BaseException:
        race.settle_cancel()
        if race.task is None:
            raise
        # The primary failed with a hedge in flight: the hedge's success is the answer;
        # if it fails too, the primary's error (the call's fuller history) is raised.
        with contextlib.suppress(Exception):
            hedge_answers = True
            return await race.hedge_answer()
        hedge_answers = False
        raise
    finally:
        if not hedge_answers:
            await race.stop_hedge(discard)
    race.settle_cancel()
    return (primary, value, stop)


class _AsyncRace(Generic[T]):
    """An async call's hedge: started by the primary's first quiet attempt, as a task."""

    def __init__(
        self,
        primary: AsyncRun[T],
        make_hedge: Callable[[SharedRoute | None], tuple[AsyncRun[T], SharedRoute] | None],
        send: AsyncSend[T],
        emit: EventHandler,
    ) -> None:
        self.primary = primary
        self.make_hedge = make_hedge
        self.send = send
        self.emit = emit
        self.caller = asyncio.current_task()
        self.running = False  # the primary is in flight in the caller's task
        self.won = False  # the hedge succeeded first, and the primary was interrupted
        self.run: AsyncRun[T] | None = None
        self.task: asyncio.Task[_Stop[T]] | None = None

    def on_quiet(self, call: Call) -> None:
        self.primary.quiet = None  # one hedge per call
        if not self.running or self.caller is None or self.task is not None:
            return
        hedge = self.make_hedge(call.route)
        if hedge is None:
            return
        run, slow = hedge
        self.emit(_hedged(call, slow, self.primary.clock.now()))
        self.run = run
        loop = asyncio.get_running_loop()
        # Called back in the quiet attempt's context, whose alive() is the primary's own.
        self.task = loop.create_task(run.start(self.send), context=apart())
        self.task.add_done_callback(self._hedge_done)

    def _hedge_done(self, task: asyncio.Future[_Stop[T]]) -> None:
        # Only while the primary is in flight in the caller's task: the cancel then lands
        # inside it, at the await it waits on (or instead of the value it was about to get).
        if self.running and self.caller is not None and _succeeded(task):
            self.won = True
            self.caller.cancel()

    def settle_cancel(self) -> None:
        """Take back a winning hedge's cancel that the primary did not end by (it turned
        it into another error, or finished anyway): the caller is not being cancelled."""
        if self.won and self.caller is not None:
            self.won = False
            self.caller.uncancel()

    async def hedge_answer(self) -> _Won[T]:
        """The hedge's answer (awaited if still running); raises its error if it failed."""
        assert self.task is not None
        assert self.run is not None
        value, stop = await self.task
        return (self.run, value, stop)

    async def stop_hedge(self, discard: Callable[[AsyncRun[T], T], Awaitable[None]] | None) -> None:
        """The primary answered (or the call ends): stop the hedge if one started, and hand
        a success it had already to ``discard``."""
        task, run = self.task, self.run
        if task is None or run is None:
            return
        if not task.done():
            task.cancel()
            # Let the loser's driver run its cleanup (close its flow, free its admission).
            await asyncio.gather(task, return_exceptions=True)
        if discard is not None and _succeeded(task):
            value, stop = task.result()
            if isinstance(stop, Relay) and value is not None:
                await discard(run, value)


def _succeeded(task: asyncio.Future[_Stop[T]]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


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
