"""Drivers: the only code that sleeps, calls and performs, interpreting the flow's effects.

:class:`SyncRun` and :class:`AsyncRun` step one call's flow: they sleep (``clock.sleep`` vs
``await clock.asleep``), make attempts, and perform the route-state effects (inline vs
awaited, see :mod:`~resilient_llm.run.perform`); every decision stays in the flow. Every
wait here (sleeps, an attempt's timeout, stream stall limits, bulkhead queues) is
measured on the injected clock. :mod:`~resilient_llm.run.streams` runs the same flow
until a stream's first chunk, relays the rest, and tells the flow how the stream ended.

Whatever interrupts a driver (task cancellation, ``KeyboardInterrupt``, a caller
abandoning a stream), it tells the flow or closes it and gives back what the flow left
held, so the call's reservation, breaker permit and bulkhead slot are returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import (
    Awaitable,
    Callable,
)
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from .._watch import Watch, watching
from ..clock import Clock, SystemClock
from ..errors import ProviderUnavailable, ResilientLLMError
from ..flow.admission import CallReport
from ..flow.call import Flow
from ..flow.effects import (
    Call,
    Effect,
    Failed,
    Outcome,
    Relay,
    StreamOutcome,
    Succeeded,
    Wait,
)
from ..policies.hints import RateLimitHints
from .perform import aperform, astop_flow, perform, stop_flow
from .stranded import Stranded

__all__ = [
    "Abandoned",
    "AsyncRun",
    "AsyncSend",
    "Sent",
    "SyncRun",
    "SyncSend",
    "alive",
    "run_async",
    "run_sync",
    "timed_out",
    "timed_out_error",
]

T = TypeVar("T")
# An attempt returns its value, the tokens the provider reported (None if unknown) and what
# its rate-limit headers said (None if nothing).
Sent = tuple[T, int | None, RateLimitHints | None]
SyncSend = Callable[[Call], Sent[T]]
AsyncSend = Callable[[Call], Awaitable[Sent[T]]]


# Told by an attempt that it shows a sign of life (a whole reply read through a stream has
# its first chunk): the quiet timer of the attempt being made in this context stops.
_ALIVE: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "resilient_llm_alive", default=None
)


def alive() -> None:
    """The attempt being made here shows a sign of life: it is not to be hedged now."""
    told = _ALIVE.get()
    if told is not None:
        told()


def apart() -> contextvars.Context:
    """A copy of the context here for another run of the call to start in: the same,
    but for the attempt's own sign of life."""
    context = contextvars.copy_context()
    context.run(_ALIVE.set, None)
    return context


class Abandoned(BaseException):
    """A sync run stopped from another thread (a hedge it lost): not the provider's failure."""


class SyncRun(Generic[T]):
    """One call's flow, stepped on the caller's thread."""

    def __init__(self, flow: Flow, clock: Clock) -> None:
        self.flow = flow
        self.clock = clock
        # Told when an attempt that may be raced starts (with the moment it will have
        # been quiet too long) and when it ends (None): see run.hedge.
        self.quiet: Callable[[Call | None, float], None] | None = None
        self._stop = threading.Event()
        self._watch: Watch | None = None

    def abandon(self) -> None:
        """From another thread: stop this run (its attempt's reads end at once); the
        thread running it gives back what the flow holds and raises ``Abandoned``."""
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.cancel()

    def start(self, send: SyncSend[T]) -> tuple[T | None, Relay | CallReport]:
        """Step until the flow ends (its report) or hands a stream over (``Relay``)."""
        return self._drive(next(self.flow), send)

    def end(self, outcome: StreamOutcome) -> CallReport:
        """Tell the flow how a relayed stream ended; step it to its end."""
        try:
            effect = self.flow.send(outcome)
        except StopIteration as done:
            return _whole(done.value)
        _, stop = self._drive(effect, None)
        return _whole(stop)

    def _drive(
        self, effect: Effect, send: SyncSend[T] | None
    ) -> tuple[T | None, Relay | CallReport]:
        value: T | None = None
        flow, clock = self.flow, self.clock
        try:
            while True:
                # Only attempts are abandoned: a relayed stream's end (no ``send``) is told
                # to its flow even when the stream is dropped after losing a race.
                if send is not None and self._stop.is_set():
                    raise Abandoned
                if isinstance(effect, Relay):
                    return value, effect
                if isinstance(effect, Wait):
                    self._sleep(effect.seconds)
                    effect = flow.send(clock.now())
                elif isinstance(effect, Call):
                    if send is None:
                        raise TypeError("a flow makes no attempt after its stream")
                    try:
                        value, usage, quota = self._send(send, effect)
                    except ResilientLLMError as error:
                        if self._stop.is_set():
                            # Cut by whoever abandoned the run: no failure of the provider's.
                            raise Abandoned from error
                        effect = flow.send(Failed(clock.now(), error, timed_out(error)))
                    else:
                        effect = flow.send(Succeeded(clock.now(), usage, quota))
                else:
                    effect = flow.send(perform(effect, clock))
        except StopIteration as stop:
            return value, stop.value
        except BaseException:
            self.close()
            raise

    def _sleep(self, seconds: float) -> None:
        clock = self.clock
        if type(clock).sleep is SystemClock.sleep:
            # The real sleep, cut short by abandon(): a raced primary runs on the caller's
            # thread, which takes the hedge's answer as soon as this run stops.
            if seconds > 0:
                self._stop.wait(seconds)
        else:
            clock.sleep(seconds)  # a fake clock's sleep ends at once

    def _send(self, send: SyncSend[T], call: Call) -> Sent[T]:
        # A blocking read cannot be cut from outside: the reads made for this attempt are
        # bounded by its time left, however the bytes arrive (see resilient_llm._watch).
        clock = self.clock
        until = clock.now() + call.timeout
        watch = self._watch = Watch(lambda: until - clock.now())
        if self._stop.is_set():
            watch.cancel()
        quiet = self.quiet if call.hedge_after is not None else None
        if quiet is None:
            with watching(watch):
                return send(call)
        assert call.hedge_after is not None
        quiet(call, clock.now() + call.hedge_after)
        told = _ALIVE.set(lambda: quiet(None, 0.0))
        try:
            with watching(watch):
                return send(call)
        finally:
            _ALIVE.reset(told)
            quiet(None, 0.0)  # a sign of life, or the attempt is over

    def close(self) -> None:
        """Stop the flow early; give back what it held."""
        stop_flow(self.flow, self.clock)


class AsyncRun(Generic[T]):
    """One call's flow, stepped on the running event loop.

    With ``stranded``, giving back what the flow holds is registered under the loop while
    it runs, so a loop closed under the call still returns the route's slots."""

    def __init__(
        self,
        flow: Flow,
        clock: Clock,
        stranded: Stranded | None = None,
    ) -> None:
        self.flow = flow
        self.clock = clock
        self.stranded = stranded
        # Called when an attempt that may be raced has been quiet too long: see run.hedge.
        self.quiet: Callable[[Call], None] | None = None

    async def start(self, send: AsyncSend[T]) -> tuple[T | None, Relay | CallReport]:
        with self.holding():
            return await self._drive(next(self.flow), send)

    async def end(self, outcome: StreamOutcome) -> CallReport:
        try:
            effect = self.flow.send(outcome)
        except StopIteration as done:
            return _whole(done.value)
        with self.holding():
            _, stop = await self._drive(effect, None)
        return _whole(stop)

    def holding(self) -> AbstractContextManager[None]:
        if self.stranded is None:
            return contextlib.nullcontext()
        return self.stranded.holding(self.close_sync)

    async def _drive(
        self, effect: Effect, send: AsyncSend[T] | None
    ) -> tuple[T | None, Relay | CallReport]:
        value: T | None = None
        flow, clock = self.flow, self.clock
        try:
            while True:
                if isinstance(effect, Relay):
                    return value, effect
                if isinstance(effect, Wait):
                    await clock.asleep(effect.seconds)
                    effect = flow.send(clock.now())
                elif isinstance(effect, Call):
                    if send is None:
                        raise TypeError("a flow makes no attempt after its stream")
                    outcome: Outcome
                    try:
                        async with clock.timeout(effect.timeout):
                            value, usage, quota = await self._sent(send, effect)
                    except ResilientLLMError as error:
                        outcome = Failed(clock.now(), error, timed_out(error))
                    except TimeoutError:
                        outcome = Failed(clock.now(), timed_out_error(effect), timed_out=True)
                    else:
                        outcome = Succeeded(clock.now(), usage, quota)
                    effect = flow.send(outcome)
                else:
                    effect = flow.send(await aperform(effect, clock))
        except StopIteration as stop:
            return value, stop.value
        except BaseException:
            await self.aclose()
            raise

    async def _sent(self, send: AsyncSend[T], call: Call) -> Sent[T]:
        quiet = self.quiet
        after = call.hedge_after
        if quiet is None or after is None:
            return await send(call)
        if type(self.clock) is SystemClock:
            return await _timed_quiet(send, call, quiet, after)
        return await _clocked_quiet(send, call, quiet, self.clock, after)

    async def aclose(self) -> None:
        """Stop the flow early; give back what it held (store round trips awaited)."""
        await astop_flow(self.flow, self.clock)

    def close_sync(self) -> None:
        """Stop the flow from outside its loop (the loop is gone); give back blocking."""
        stop_flow(self.flow, self.clock)


async def _timed_quiet(
    send: AsyncSend[T], call: Call, quiet: Callable[[Call], None], after: float
) -> Sent[T]:
    """The attempt, awaited here; on the real clock its quiet timer is a loop timer that
    its first sign of life (or its end) cancels: no task beside it."""
    handle = asyncio.get_running_loop().call_later(max(after, 0.0), quiet, call)
    told = _ALIVE.set(handle.cancel)
    try:
        return await send(call)
    finally:
        _ALIVE.reset(told)
        handle.cancel()


async def _clocked_quiet(
    send: AsyncSend[T], call: Call, quiet: Callable[[Call], None], clock: Clock, after: float
) -> Sent[T]:
    """The attempt as a task, its quiet time waited on ``clock`` (whose timeouts are the
    only timers it offers: a fake clock's end when the test moves time)."""
    loop = asyncio.get_running_loop()
    signs: asyncio.Future[None] = loop.create_future()
    heard = False

    def wake() -> None:
        if not signs.done():
            signs.set_result(None)

    def sign() -> None:
        nonlocal heard
        heard = True
        wake()

    # The task copies this context as it is made: its attempt's alive() is ``sign``.
    told = _ALIVE.set(sign)
    try:
        task = asyncio.ensure_future(send(call))
    finally:
        _ALIVE.reset(told)
    task.add_done_callback(lambda _: wake())
    try:
        # On the clock, as a timeout on waiting (a fake clock's sleep ends at once).
        with contextlib.suppress(TimeoutError):
            async with clock.timeout(after):
                await signs
        if not task.done() and not heard:
            quiet(call)
        return await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


def run_sync(flow: Flow, clock: Clock, send: SyncSend[T]) -> tuple[T, CallReport]:
    """Drive ``flow`` with blocking sleeps and calls; return the value and the report."""
    run: SyncRun[T] = SyncRun(flow, clock)
    value, stop = run.start(send)
    return value, _whole(stop)  # type: ignore[return-value]


async def run_async(
    flow: Flow,
    clock: Clock,
    send: AsyncSend[T],
    stranded: Stranded | None = None,
) -> tuple[T, CallReport]:
    """Drive ``flow`` on the running event loop; each attempt is bounded by its timeout."""
    run: AsyncRun[T] = AsyncRun(flow, clock, stranded)
    value, stop = await run.start(send)
    return value, _whole(stop)  # type: ignore[return-value]


def _whole(stop: Relay | CallReport) -> CallReport:
    if isinstance(stop, Relay):
        raise TypeError("a flow relays at most one stream, and a whole reply's none")
    return stop


def timed_out(error: BaseException) -> bool:
    """Whether an attempt's error is its running out of time rather than a provider's answer.

    Adapters raise their error from the SDK's, which is raised from the transport's: the
    root of that chain of causes says what happened. Only the root, since transports
    relabel (openai's aiohttp transport calls a reset connection a ``ConnectTimeout``); a
    ``CancelledError`` there is the cancellation by which ``asyncio.timeout`` cut the wait.
    A root that is a builtin ``TimeoutError`` or named for one (httpcore's
    ``ReadTimeout``) is a timeout.
    """
    seen: set[int] = set()
    root = error
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if not isinstance(link, asyncio.CancelledError):
            root = link
        link = link.__cause__
    return isinstance(root, TimeoutError) or any(
        "Timeout" in kind.__name__ for kind in type(root).__mro__
    )


def timed_out_error(call: Call) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"attempt {call.attempt} on {call.route.name!r} timed out after {call.timeout:.3g}s",
        provider=call.route.name,
    )
