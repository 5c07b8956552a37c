"""Drivers: the only code that sleeps and calls, interpreting :mod:`flow`'s effects.

``run_sync`` and ``run_async`` differ only in ``sleep`` vs ``await asleep`` and in how the
attempt is made; every decision stays in the flow. Every wait here (sleeps, an attempt's
timeout, stream stall limits, bulkhead queues) is measured on the injected clock. The
streaming drivers run the same flow until the first chunk (so retry and failover apply
before anything reaches the caller), then relay the rest; after the first chunk a failure
raises :class:`StreamInterrupted` with the partial text, since retrying would repeat text
the caller already has.

Whatever interrupts a driver (task cancellation, ``KeyboardInterrupt``, a caller
abandoning a stream), it closes the flow or finishes the admission, so the call's
reservation and breaker permit are returned.
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
from typing import TypeVar

from ..clock import Clock
from ..errors import ProviderUnavailable, ResilientLLMError, StreamInterrupted
from ..flow.admission import Admission, CallReport
from ..flow.effects import Call, Effect, Enter, Entered, Failed, Outcome, Succeeded, Wait
from ..messages import ChatChunk, Usage
from .stall import Pump, Stalled, StreamTimeouts
from .stranded import Stranded

__all__ = [
    "aclose_stream",
    "close_stream",
    "discard_stream",
    "run_async",
    "run_async_stream",
    "run_sync",
    "run_sync_stream",
    "timed_out",
]

T = TypeVar("T")
Flow = Generator[Effect, float | Outcome | Entered, CallReport]
# An attempt returns its value and the tokens the provider reported (None if unknown).
SyncSend = Callable[[Call], tuple[T, int | None]]
AsyncSend = Callable[[Call], Awaitable[tuple[T, int | None]]]


def run_sync(flow: Flow, clock: Clock, send: SyncSend[T]) -> tuple[T, CallReport]:
    """Drive ``flow`` with blocking sleeps and calls; return the value and the report."""
    value: T | None = None
    try:
        effect = next(flow)
        while True:
            if isinstance(effect, Wait):
                clock.sleep(effect.seconds)
                effect = flow.send(clock.now())
                continue
            if isinstance(effect, Enter):
                queued = not effect.bulkhead.try_enter()
                entered = not queued or effect.bulkhead.enter(effect.timeout, clock)
                effect = flow.send(Entered(clock.now(), entered, queued))
                continue
            try:
                value, usage = send(effect)
            except ResilientLLMError as error:
                effect = flow.send(Failed(clock.now(), error, timed_out(error)))
            else:
                effect = flow.send(Succeeded(clock.now(), usage))
    except StopIteration as stop:
        return value, stop.value  # type: ignore[return-value]
    finally:
        flow.close()


async def run_async(
    flow: Flow, clock: Clock, send: AsyncSend[T], stranded: Stranded | None = None
) -> tuple[T, CallReport]:
    """Drive ``flow`` on the running event loop; each attempt is bounded by its timeout.

    With ``stranded``, closing the flow is registered under the loop, so a loop closed
    under the call still gives back what the flow holds."""
    with _holding(stranded, flow.close):
        return await _run_async(flow, clock, send)


def _holding(
    stranded: Stranded | None, release: Callable[[], None]
) -> AbstractContextManager[None]:
    return contextlib.nullcontext() if stranded is None else stranded.holding(release)


async def _run_async(flow: Flow, clock: Clock, send: AsyncSend[T]) -> tuple[T, CallReport]:
    value: T | None = None
    try:
        effect = next(flow)
        while True:
            if isinstance(effect, Wait):
                await clock.asleep(effect.seconds)
                effect = flow.send(clock.now())
                continue
            if isinstance(effect, Enter):
                queued = not effect.bulkhead.try_enter()
                entered = not queued or await effect.bulkhead.aenter(effect.timeout, clock)
                effect = flow.send(Entered(clock.now(), entered, queued))
                continue
            try:
                async with clock.timeout(effect.timeout):
                    value, usage = await send(effect)
            except ResilientLLMError as error:
                effect = flow.send(Failed(clock.now(), error, timed_out(error)))
            except TimeoutError:
                effect = flow.send(Failed(clock.now(), _timed_out(effect), timed_out=True))
            else:
                effect = flow.send(Succeeded(clock.now(), usage))
    except StopIteration as stop:
        return value, stop.value  # type: ignore[return-value]
    finally:
        flow.close()


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
    """What a stream delivered after its first chunk, and how its admission ends."""

    def __init__(self, report: CallReport, first: ChatChunk) -> None:
        assert report.admission is not None, "a stream flow keeps its admission open"
        self.admission: Admission = report.admission
        self.route = report.route
        self.text = ""
        self.usage: Usage | None = None
        self.first = dataclasses.replace(
            self.add(first), metadata={**first.metadata, **report.metadata()}
        )

    def add(self, chunk: ChatChunk) -> ChatChunk:
        self.text += chunk.delta
        self.usage = chunk.usage or self.usage
        return chunk

    def finished(self, now: float) -> None:
        self.admission.succeed(now, self.usage.total_tokens if self.usage else None)

    def interrupted(self, error: ResilientLLMError, now: float) -> StreamInterrupted:
        self.admission.fail(now)
        return StreamInterrupted(
            f"the stream from {self.route!r} failed after its first chunk: {error.message}",
            partial_text=self.text,
            usage=self.usage,
            provider=self.route,
            status_code=error.status_code,
        )


def run_sync_stream(
    flow: Flow,
    clock: Clock,
    open_stream: Callable[[Call], Iterator[ChatChunk]],
    timeouts: StreamTimeouts | None = None,
) -> Generator[ChatChunk, None, None]:
    """Stream with retry and failover until the first chunk, then relay."""
    if timeouts is not None:
        return _run_sync_stream_watched(flow, clock, open_stream, timeouts)

    def first_chunk(call: Call) -> tuple[tuple[ChatChunk, Iterator[ChatChunk]], None]:
        chunks = open_stream(call)
        try:
            return (next(chunks), chunks), None
        except StopIteration:
            raise _no_first_chunk(call) from None
        except BaseException:
            close_stream(chunks)
            raise

    return _relay_sync(flow, clock, first_chunk)


def _refusal(report: CallReport) -> list[ChatChunk] | None:
    """The chunks of the refused stream that is the call's answer, if every route refused."""
    if report.refused is None:
        return None
    chunks = list(report.refused.reply)
    first = chunks[0]
    chunks[0] = dataclasses.replace(first, metadata={**first.metadata, **report.metadata()})
    return chunks


def _relay_sync(
    flow: Flow,
    clock: Clock,
    first_chunk: Callable[[Call], tuple[tuple[ChatChunk, Iterator[ChatChunk]], None]],
) -> Generator[ChatChunk, None, None]:
    start, report = run_sync(flow, clock, first_chunk)
    refusal = _refusal(report)
    if refusal is not None:
        yield from refusal
        return
    first, chunks = start
    tally = _Tally(report, first)
    try:
        yield tally.first
        for chunk in chunks:
            yield tally.add(chunk)
    except ResilientLLMError as error:
        raise tally.interrupted(error, clock.now()) from error
    except BaseException:
        tally.admission.release()
        raise
    else:
        tally.finished(clock.now())
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
    def first_chunk(call: Call) -> tuple[tuple[ChatChunk, Iterator[ChatChunk]], None]:
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
        return (first, _watched(pump, timeouts.idle, call.route.name, clock)), None

    return _relay_sync(flow, clock, first_chunk)


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


StreamStart = tuple[ChatChunk, AsyncIterator[ChatChunk]]
FirstPhase = Callable[[Flow, AsyncSend[StreamStart]], Awaitable[tuple[StreamStart, CallReport]]]


async def run_async_stream(
    flow: Flow,
    clock: Clock,
    open_stream: Callable[[Call], AsyncIterator[ChatChunk]],
    timeouts: StreamTimeouts | None = None,
    first_phase: FirstPhase | None = None,
    stranded: Stranded | None = None,
) -> AsyncGenerator[ChatChunk, None]:
    """The async twin of :func:`run_sync_stream`; the first chunk is bounded by the timeout.

    ``first_phase`` runs the flow up to the first chunk (default :func:`run_async`; a
    hedged call races two flows there).
    """
    first_token = timeouts.first_token if timeouts else None
    idle = timeouts.idle if timeouts else None

    async def first_chunk(call: Call) -> tuple[tuple[ChatChunk, AsyncIterator[ChatChunk]], None]:
        chunks = open_stream(call)
        limit = _limit(first_token, call.timeout) if first_token is not None else None
        try:
            async with clock.timeout(limit):
                return (await anext(chunks), chunks), None
        except StopAsyncIteration:
            await aclose_stream(chunks)
            raise _no_first_chunk(call) from None
        except TimeoutError:
            await aclose_stream(chunks)
            if limit is None or limit >= call.timeout:
                raise  # the attempt's own timeout: run_async reports it
            raise _no_first_chunk_in(call, limit) from None
        except BaseException:
            await aclose_stream(chunks)
            raise

    if first_phase is None:
        start, report = await run_async(flow, clock, first_chunk, stranded)
    else:
        start, report = await first_phase(flow, first_chunk)
    refusal = _refusal(report)
    if refusal is not None:
        for chunk in refusal:
            yield chunk
        return
    first, chunks = start
    tally = _Tally(report, first)
    try:
        with _holding(stranded, tally.admission.release):
            yield tally.first
            while True:
                try:
                    async with clock.timeout(idle):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _stalled(report.route, idle) from None
                yield tally.add(chunk)
    except ResilientLLMError as error:
        raise tally.interrupted(error, clock.now()) from error
    except BaseException:
        tally.admission.release()
        raise
    else:
        tally.finished(clock.now())
    finally:
        await aclose_stream(chunks)


async def discard_stream(start: StreamStart, report: CallReport) -> None:
    """Drop a stream that got its first chunk but lost a race: close it, free its route."""
    await aclose_stream(start[1])
    if report.admission is not None:
        report.admission.release()


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
