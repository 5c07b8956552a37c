"""Streams: the same flow until the first chunk, then the chunks relayed to the caller.

Retry and failover apply until the first chunk reaches the caller; then the flow is told
``Relay``'s answer when the stream ends: ``StreamEnded`` (its usage settles the limiter),
``StreamBroke`` (a failure for the route's breaker) or ``StreamDropped`` (the caller let
go: nobody's failure). After a break the caller gets :class:`StreamInterrupted` with the
partial text, since retrying would repeat what it already has, unless the call has a
:class:`~resilient_llm.run.resume.Resumer` (``stream_recovery="continue"``): then the
answer goes on from where it stopped, in a new flow of the call, and the relay carries
on with its chunks. A pump thread bounds a sync stream's stalls; an async stream's
waits are bounded on the clock.
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

from ..clock import Clock
from ..errors import ResilientLLMError
from ..flow.admission import CallReport
from ..flow.call import Flow
from ..flow.effects import Call, Relay, StreamBroke, StreamDropped
from ..messages import ChatChunk
from .drivers import AsyncRun, AsyncSend, SyncRun, SyncSend
from .resume import Resumer, Tally
from .stall import StreamTimeouts
from .starts import (
    AsyncStreamStart,
    StreamStart,
    aclose_stream,
    async_first_chunk,
    close_stream,
    stalled,
    sync_first_chunk,
)
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
    resume: Resumer | None = None,
) -> Generator[ChatChunk, None, None]:
    """Stream with retry and failover until the first chunk, then relay.

    ``first_phase`` runs the flow up to the first chunk (default: this flow alone; a
    hedged call races two flows there and says which one won). ``resume`` continues the
    answer after a break."""
    first_chunk = sync_first_chunk(clock, open_stream, timeouts)
    return _relay_sync(SyncRun(flow, clock), first_chunk, first_phase, resume)


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
    resume: Resumer | None,
) -> Generator[ChatChunk, None, None]:
    if first_phase is None:
        start, stop = run.start(first_chunk)
    else:
        run, start, stop = first_phase(run, first_chunk)
    if not isinstance(stop, Relay):
        yield from _refusal(stop)
        return
    assert start is not None, "a relayed stream has its first chunk"
    tally = Tally(stop)
    clock = run.clock
    while True:
        first, chunks = start
        try:
            for chunk in _chain(first, chunks):
                out = tally.add(chunk)
                if out is not None:
                    yield out
            held = tally.flush()
            if held is not None:
                yield held
        except ResilientLLMError as error:
            run.end(StreamBroke(clock.now()))
            if resume is None or not resume.can(tally):
                raise tally.interrupted(error) from error
            held = tally.flush()
            if held is not None:
                yield held
            run, start, stop = resume.sync(tally, error)
            continue
        except BaseException:
            run.end(StreamDropped())
            raise
        else:
            run.end(tally.ended(clock.now()))
            return
        finally:
            close_stream(chunks)


def _chain(first: ChatChunk, chunks: Iterator[ChatChunk]) -> Iterator[ChatChunk]:
    yield first
    yield from chunks


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
    resume: Resumer | None = None,
) -> AsyncGenerator[ChatChunk, None]:
    """The async twin of :func:`run_sync_stream`; the first chunk is bounded by the timeout.

    ``first_phase`` runs the flow up to the first chunk (default: this flow alone; a
    hedged call races two flows there and says which one won).
    """
    idle = timeouts.idle if timeouts else None
    first_chunk = async_first_chunk(clock, open_stream, timeouts)
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
    tally = Tally(stop)
    while True:
        first, chunks = start
        try:
            with run.holding():
                out = tally.add(first)
                if out is not None:
                    yield out
                while True:
                    try:
                        async with clock.timeout(idle):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        raise stalled(tally.route, idle) from None
                    out = tally.add(chunk)
                    if out is not None:
                        yield out
                held = tally.flush()
                if held is not None:
                    yield held
        except ResilientLLMError as error:
            await run.end(StreamBroke(clock.now()))
            if resume is None or not resume.can(tally):
                raise tally.interrupted(error) from error
            held = tally.flush()
            if held is not None:
                yield held
            run, start, stop = await resume.asynchronous(tally, error)
            continue
        except BaseException:
            await run.end(StreamDropped())
            raise
        else:
            await run.end(tally.ended(clock.now()))
            return
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
