"""A stream's start: its first chunk, within the limits that bound waiting for it.

Shared by a call's first stream and by the continuations of a broken one
(:mod:`~resilient_llm.run.resume`), so both meet the same first-token and idle limits.
Sync streams with limits are read by a pump thread, so a wait can end on time even
while a read blocks; async ones are bounded on the clock.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from typing import TypeVar

from ..clock import Clock
from ..errors import ProviderUnavailable
from ..flow.effects import Call
from ..messages import ChatChunk
from .drivers import Sent, timed_out_error
from .stall import Pump, Stalled, StreamTimeouts

__all__ = [
    "AsyncStreamStart",
    "StreamStart",
    "aclose_stream",
    "async_first_chunk",
    "close_stream",
    "stalled",
    "sync_first_chunk",
]

T = TypeVar("T")
StreamStart = tuple[ChatChunk, Iterator[ChatChunk]]
AsyncStreamStart = tuple[ChatChunk, AsyncIterator[ChatChunk]]


def _started(first: ChatChunk, chunks: T) -> Sent[tuple[ChatChunk, T]]:
    # A stream's quota headers arrive with its start: the first chunk carries them.
    return (first, chunks), None, first.quota


def sync_first_chunk(
    clock: Clock,
    open_stream: Callable[[Call], Iterator[ChatChunk]],
    timeouts: StreamTimeouts | None,
) -> Callable[[Call], Sent[StreamStart]]:
    """The attempt a sync stream's flow makes: open the stream, wait for its first chunk."""
    if timeouts is not None:
        return _watched_first_chunk(clock, open_stream, timeouts)

    def first_chunk(call: Call) -> Sent[StreamStart]:
        chunks = open_stream(call)
        try:
            return _started(next(chunks), chunks)
        except StopIteration:
            raise _no_first_chunk(call) from None
        except BaseException:
            close_stream(chunks)
            raise

    return first_chunk


def _watched_first_chunk(
    clock: Clock,
    open_stream: Callable[[Call], Iterator[ChatChunk]],
    timeouts: StreamTimeouts,
) -> Callable[[Call], Sent[StreamStart]]:
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
        except Stalled as stall:
            pump.abandon()
            if limit >= call.timeout:  # the attempt's own timeout, as in run_async
                raise timed_out_error(call) from TimeoutError(stall)
            raise _no_first_chunk_in(call, limit) from None
        except BaseException:
            pump.abandon()
            raise
        pump.watch.lift()  # the deadline bounds a stream until its first chunk only
        return _started(first, _watched(pump, timeouts.idle, call.route.name, clock))

    return first_chunk


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
                raise stalled(route, idle) from None
    finally:
        pump.abandon()


def async_first_chunk(
    clock: Clock,
    open_stream: Callable[[Call], AsyncIterator[ChatChunk]],
    timeouts: StreamTimeouts | None,
) -> Callable[[Call], Awaitable[Sent[AsyncStreamStart]]]:
    """The async twin of :func:`sync_first_chunk`; the first chunk is bounded on the clock."""
    first_token = timeouts.first_token if timeouts else None

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

    return first_chunk


def _no_first_chunk(call: Call) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"the stream from {call.route.name!r} ended before its first chunk",
        provider=call.route.name,
    )


def _limit(first_token: float | None, attempt: float) -> float:
    return attempt if first_token is None else min(first_token, attempt)


def _no_first_chunk_in(call: Call, seconds: float) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"no first chunk from {call.route.name!r} within {seconds:.3g}s", provider=call.route.name
    )


def stalled(route: str, idle: float | None) -> ProviderUnavailable:
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
