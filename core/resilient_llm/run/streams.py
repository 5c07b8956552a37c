"""Streams: the same flow until the first chunk, then the chunks relayed to the caller.

Retry and failover apply until the first chunk reaches the caller; then the flow is told
``Relay``'s answer when the stream ends: ``StreamEnded`` (its usage settles the limiter),
``StreamBroke`` (a failure for the route's breaker; the caller gets
:class:`StreamInterrupted` with the partial text, since retrying would repeat what it
already has) or ``StreamDropped`` (the caller let go: nobody's failure). A pump thread
bounds a sync stream's stalls; an async stream's waits are bounded on the clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from typing import TypeVar

from ..clock import Clock
from ..errors import ProviderUnavailable, ResilientLLMError, StreamInterrupted
from ..flow.admission import CallReport
from ..flow.call import Flow
from ..flow.effects import Call, Relay, StreamBroke, StreamDropped, StreamEnded
from ..messages import ChatChunk, Usage
from .drivers import AsyncRun, AsyncSend, Sent, SyncRun, SyncSend, timed_out_error
from .stall import Pump, Stalled, StreamTimeouts
from .stranded import Stranded

__all__ = [
    "AsyncStreamStart",
    "FirstPhase",
    "StreamStart",
    "SyncFirstPhase",
    "aclose_stream",
    "close_stream",
    "discard_stream",
    "discard_sync_stream",
    "run_async_stream",
    "run_sync_stream",
]

T = TypeVar("T")


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


SyncFirstPhase = Callable[
    [SyncRun[StreamStart], SyncSend[StreamStart]],
    tuple[SyncRun[StreamStart], StreamStart | None, Relay | CallReport],
]


def run_sync_stream(
    flow: Flow,
    clock: Clock,
    open_stream: Callable[[Call], Iterator[ChatChunk]],
    timeouts: StreamTimeouts | None = None,
    first_phase: SyncFirstPhase | None = None,
) -> Generator[ChatChunk, None, None]:
    """Stream with retry and failover until the first chunk, then relay.

    ``first_phase`` runs the flow up to the first chunk (default: this flow alone; a
    hedged call races two flows there and says which one won)."""
    if timeouts is not None:
        return _run_sync_stream_watched(flow, clock, open_stream, timeouts, first_phase)

    def first_chunk(call: Call) -> Sent[StreamStart]:
        chunks = open_stream(call)
        try:
            return _started(next(chunks), chunks)
        except StopIteration:
            raise _no_first_chunk(call) from None
        except BaseException:
            close_stream(chunks)
            raise

    return _relay_sync(SyncRun(flow, clock), first_chunk, first_phase)


def _refusal(report: CallReport) -> list[ChatChunk]:
    """The chunks of the refused stream that is the call's answer, if every route refused."""
    chunks = list(report.refused.reply)
    first = chunks[0]
    chunks[0] = dataclasses.replace(first, metadata={**first.metadata, **report.metadata()})
    return chunks


def _relay_sync(
    run: SyncRun[StreamStart],
    first_chunk: SyncSend[StreamStart],
    first_phase: SyncFirstPhase | None,
) -> Generator[ChatChunk, None, None]:
    if first_phase is None:
        start, stop = run.start(first_chunk)
    else:
        run, start, stop = first_phase(run, first_chunk)
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
    first_phase: SyncFirstPhase | None,
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
                raise timed_out_error(call) from TimeoutError(stalled)
            raise _no_first_chunk_in(call, limit) from None
        except BaseException:
            pump.abandon()
            raise
        pump.watch.lift()  # the deadline bounds a stream until its first chunk only
        return _started(first, _watched(pump, timeouts.idle, call.route.name, clock))

    return _relay_sync(SyncRun(flow, clock), first_chunk, first_phase)


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
        except GeneratorExit:
            # Finalised on a loop that is gone: the stream is mid-read and cannot be
            # awaited shut; the garbage collector finalises it in turn.
            raise
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


def discard_sync_stream(run: SyncRun[StreamStart], start: StreamStart) -> None:
    """The sync twin of :func:`discard_stream`."""
    close_stream(start[1])
    run.end(StreamDropped())


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
