"""Drivers: the only code that sleeps, calls and performs, interpreting the flow's effects.

:class:`SyncRun` and :class:`AsyncRun` step one call's flow: they sleep (``clock.sleep`` vs
``await clock.asleep``), make attempts, and perform the route-state effects (inline vs
awaited, see :mod:`~resilient_llm.run.perform`); every decision stays in the flow. Every
wait here (sleeps, an attempt's timeout, stream stall limits, bulkhead queues) is
measured on the injected clock. The streaming drivers run the same flow until the first
chunk (so retry and failover apply before anything reaches the caller), relay the rest,
and tell the flow how the stream ended; after the first chunk a failure raises
:class:`StreamInterrupted` with the partial text, since retrying would repeat text the
caller already has.

Whatever interrupts a driver (task cancellation, ``KeyboardInterrupt``, a caller
abandoning a stream), it tells the flow or closes it and gives back what the flow left
held, so the call's reservation, breaker permit and bulkhead slot are returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from ..clock import Clock
from ..errors import ProviderUnavailable, ResilientLLMError, StreamInterrupted
from ..flow.admission import CallReport
from ..flow.call import Flow
from ..flow.effects import (
    Call,
    Effect,
    Failed,
    Outcome,
    Relay,
    StreamBroke,
    StreamDropped,
    StreamEnded,
    StreamOutcome,
    Succeeded,
    Wait,
)
from ..messages import ChatChunk, Usage
from ..policies.hints import RateLimitHints
from .perform import aperform, astop, perform, stop
from .stall import Pump, Stalled, StreamTimeouts
from .stranded import Stranded

__all__ = [
    "AsyncRun",
    "SyncRun",
    "aclose_stream",
    "close_stream",
    "run_async",
    "run_async_stream",
    "run_sync",
    "run_sync_stream",
    "timed_out",
]

T = TypeVar("T")
# An attempt returns its value, the tokens the provider reported (None if unknown) and what
# its rate-limit headers said (None if nothing).
Sent = tuple[T, int | None, RateLimitHints | None]
SyncSend = Callable[[Call], Sent[T]]
AsyncSend = Callable[[Call], Awaitable[Sent[T]]]


class SyncRun(Generic[T]):
    """One call's flow, stepped on the caller's thread."""

    def __init__(self, flow: Flow, clock: Clock) -> None:
        self.flow = flow
        self.clock = clock

    def start(self, send: SyncSend[T]) -> tuple[T | None, Relay | CallReport]:
        """Step until the flow ends (its report) or hands a stream over (``Relay``)."""
        return self._drive(next(self.flow), send)

    def end(self, outcome: StreamOutcome) -> CallReport:
        """Tell the flow how a relayed stream ended; step it to its end."""
        _, stop = self._drive(self.flow.send(outcome), None)
        if isinstance(stop, Relay):
            raise TypeError("a flow relays one stream")
        return stop

    def _drive(
        self, effect: Effect, send: SyncSend[T] | None
    ) -> tuple[T | None, Relay | CallReport]:
        value: T | None = None
        flow, clock = self.flow, self.clock
        try:
            while True:
                if isinstance(effect, Relay):
                    return value, effect
                if isinstance(effect, Wait):
                    clock.sleep(effect.seconds)
                    effect = flow.send(clock.now())
                elif isinstance(effect, Call):
                    if send is None:
                        raise TypeError("a flow makes no attempt after its stream")
                    try:
                        value, usage, quota = send(effect)
                    except ResilientLLMError as error:
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

    def close(self) -> None:
        """Stop the flow early; give back what it held."""
        stop(self.flow, self.clock)


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

    async def start(self, send: AsyncSend[T]) -> tuple[T | None, Relay | CallReport]:
        with self.holding():
            return await self._drive(next(self.flow), send)

    async def end(self, outcome: StreamOutcome) -> CallReport:
        with self.holding():
            _, stop = await self._drive(self.flow.send(outcome), None)
        if isinstance(stop, Relay):
            raise TypeError("a flow relays one stream")
        return stop

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
                            value, usage, quota = await send(effect)
                    except ResilientLLMError as error:
                        outcome = Failed(clock.now(), error, timed_out(error))
                    except TimeoutError:
                        outcome = Failed(clock.now(), _timed_out(effect), timed_out=True)
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

    async def aclose(self) -> None:
        """Stop the flow early; give back what it held (store round trips awaited)."""
        await astop(self.flow, self.clock)

    def close_sync(self) -> None:
        """Stop the flow from outside its loop (the loop is gone); give back blocking."""
        stop(self.flow, self.clock)


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
        raise TypeError("a whole reply's flow must not relay a stream")
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


def _timed_out(call: Call) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"attempt {call.attempt} on {call.route.name!r} timed out after {call.timeout:.3g}s",
        provider=call.route.name,
    )


def _no_first_chunk(call: Call) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"the stream from {call.route.name!r} ended before its first chunk",
        provider=call.route.name,
    )


class _Tally:
    """What a stream delivered after its first chunk."""

    def __init__(self, relay: Relay, first: ChatChunk) -> None:
        self.route = relay.route.name
        self.text = ""
        self.usage: Usage | None = None
        self.first = dataclasses.replace(
            self.add(first), metadata={**first.metadata, **relay.report.metadata()}
        )

    def add(self, chunk: ChatChunk) -> ChatChunk:
        self.text += chunk.delta
        self.usage = chunk.usage or self.usage
        return chunk

    def ended(self, now: float) -> StreamEnded:
        return StreamEnded(now, self.usage.total_tokens if self.usage else None)

    def interrupted(self, error: ResilientLLMError) -> StreamInterrupted:
        return StreamInterrupted(
            f"the stream from {self.route!r} failed after its first chunk: {error.message}",
            partial_text=self.text,
            usage=self.usage,
            provider=self.route,
            status_code=error.status_code,
        )


StreamStart = tuple[ChatChunk, Iterator[ChatChunk]]
AsyncStreamStart = tuple[ChatChunk, AsyncIterator[ChatChunk]]


def _started(first: ChatChunk, chunks: T) -> Sent[tuple[ChatChunk, T]]:
    # A stream's quota headers arrive with its start: the first chunk carries them.
    return (first, chunks), None, first.quota


def run_sync_stream(
    flow: Flow,
    clock: Clock,
    open_stream: Callable[[Call], Iterator[ChatChunk]],
    timeouts: StreamTimeouts | None = None,
) -> Generator[ChatChunk, None, None]:
    """Stream with retry and failover until the first chunk, then relay."""
    if timeouts is not None:
        return _run_sync_stream_watched(flow, clock, open_stream, timeouts)

    def first_chunk(call: Call) -> Sent[StreamStart]:
        chunks = open_stream(call)
        try:
            return _started(next(chunks), chunks)
        except StopIteration:
            raise _no_first_chunk(call) from None
        except BaseException:
            close_stream(chunks)
            raise

    return _relay_sync(SyncRun(flow, clock), first_chunk)


def _refusal(report: CallReport) -> list[ChatChunk]:
    """The chunks of the refused stream that is the call's answer, if every route refused."""
    chunks = list(report.refused.reply)
    first = chunks[0]
    chunks[0] = dataclasses.replace(first, metadata={**first.metadata, **report.metadata()})
    return chunks


def _relay_sync(
    run: SyncRun[StreamStart], first_chunk: SyncSend[StreamStart]
) -> Generator[ChatChunk, None, None]:
    start, stop = run.start(first_chunk)
    if not isinstance(stop, Relay):
        yield from _refusal(stop)
        return
    assert start is not None, "a relayed stream has its first chunk"
    first, chunks = start
    tally = _Tally(stop, first)
    clock = run.clock
    try:
        yield tally.first
        for chunk in chunks:
            yield tally.add(chunk)
    except ResilientLLMError as error:
        run.end(StreamBroke(clock.now()))
        raise tally.interrupted(error) from error
    except BaseException:
        run.end(StreamDropped())
        raise
    else:
        run.end(tally.ended(clock.now()))
    finally:
        close_stream(chunks)


def _run_sync_stream_watched(
    flow: Flow,
    clock: Clock,
    open_stream: Callable[[Call], Iterator[ChatChunk]],
    timeouts: StreamTimeouts,
) -> Generator[ChatChunk, None, None]:
    # A pump thread reads the stream, so waiting for a chunk can end on time even while
    # the read itself blocks.
    def first_chunk(call: Call) -> Sent[StreamStart]:
        pump = Pump(open_stream(call), call.route.name)
        limit = _limit(timeouts.first_token, call.timeout)
        try:
            first = pump.next(limit, clock)
        except StopIteration:
            pump.abandon()
            raise _no_first_chunk(call) from None
        except Stalled as stalled:
            pump.abandon()
            if limit >= call.timeout:  # the attempt's own timeout, as in run_async
                raise _timed_out(call) from TimeoutError(stalled)
            raise _no_first_chunk_in(call, limit) from None
        except BaseException:
            pump.abandon()
            raise
        return _started(first, _watched(pump, timeouts.idle, call.route.name, clock))

    return _relay_sync(SyncRun(flow, clock), first_chunk)


def _watched(
    pump: Pump[ChatChunk], idle: float | None, route: str, clock: Clock
) -> Generator[ChatChunk]:
    try:
        while True:
            try:
                yield pump.next(idle, clock)
            except StopIteration:
                return
            except Stalled:
                raise _stalled(route, idle) from None
    finally:
        pump.abandon()


FirstPhase = Callable[
    [AsyncRun[AsyncStreamStart], AsyncSend[AsyncStreamStart]],
    Awaitable[tuple[AsyncRun[AsyncStreamStart], AsyncStreamStart | None, Relay | CallReport]],
]


async def run_async_stream(
    flow: Flow,
    clock: Clock,
    open_stream: Callable[[Call], AsyncIterator[ChatChunk]],
    timeouts: StreamTimeouts | None = None,
    first_phase: FirstPhase | None = None,
    stranded: Stranded | None = None,
) -> AsyncGenerator[ChatChunk, None]:
    """The async twin of :func:`run_sync_stream`; the first chunk is bounded by the timeout.

    ``first_phase`` runs the flow up to the first chunk (default: this flow alone; a
    hedged call races two flows there and says which one won).
    """
    first_token = timeouts.first_token if timeouts else None
    idle = timeouts.idle if timeouts else None

    async def first_chunk(call: Call) -> Sent[AsyncStreamStart]:
        chunks = open_stream(call)
        limit = _limit(first_token, call.timeout) if first_token is not None else None
        try:
            async with clock.timeout(limit):
                return _started(await anext(chunks), chunks)
        except StopAsyncIteration:
            await aclose_stream(chunks)
            raise _no_first_chunk(call) from None
        except TimeoutError:
            await aclose_stream(chunks)
            if limit is None or limit >= call.timeout:
                raise  # the attempt's own timeout: the run reports it
            raise _no_first_chunk_in(call, limit) from None
        except BaseException:
            await aclose_stream(chunks)
            raise

    run: AsyncRun[AsyncStreamStart] = AsyncRun(flow, clock, stranded)
    if first_phase is None:
        start, stop = await run.start(first_chunk)
    else:
        run, start, stop = await first_phase(run, first_chunk)
    if not isinstance(stop, Relay):
        for chunk in _refusal(stop):
            yield chunk
        return
    assert start is not None, "a relayed stream has its first chunk"
    first, chunks = start
    tally = _Tally(stop, first)
    try:
        with run.holding():
            yield tally.first
            while True:
                try:
                    async with clock.timeout(idle):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _stalled(tally.route, idle) from None
                yield tally.add(chunk)
    except ResilientLLMError as error:
        await run.end(StreamBroke(clock.now()))
        raise tally.interrupted(error) from error
    except BaseException:
        await run.end(StreamDropped())
        raise
    else:
        await run.end(tally.ended(clock.now()))
    finally:
        await aclose_stream(chunks)


async def discard_stream(run: AsyncRun[AsyncStreamStart], start: AsyncStreamStart) -> None:
    """Drop a stream that got its first chunk but lost a race: close it, free its route."""
    await aclose_stream(start[1])
    await run.end(StreamDropped())


def _limit(first_token: float | None, attempt: float) -> float:
    return attempt if first_token is None else min(first_token, attempt)


def _no_first_chunk_in(call: Call, seconds: float) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"no first chunk from {call.route.name!r} within {seconds:.3g}s", provider=call.route.name
    )


def _stalled(route: str, idle: float | None) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"the stream from {route!r} stalled: no chunk for {idle:.3g}s", provider=route
    )


def close_stream(chunks: Iterator[ChatChunk]) -> None:
    """Close a stream that may or may not be a generator."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def aclose_stream(chunks: AsyncIterator[ChatChunk]) -> None:
    """The async twin of :func:`close_stream`."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
