"""Drivers: the only code that sleeps and calls, interpreting :mod:`flow`'s effects.

``run_sync`` and ``run_async`` differ only in ``sleep`` vs ``await asleep`` and in how the
attempt is made; every decision stays in the flow. The streaming drivers run the same
flow until the first chunk (so retry and failover apply before anything reaches the
caller), then relay the rest; after the first chunk a failure raises
:class:`StreamInterrupted` with the partial text, since retrying would repeat text the
caller already has.

Whatever interrupts a driver (task cancellation, ``KeyboardInterrupt``, a caller
abandoning a stream), it closes the flow or finishes the admission, so the call's
reservation and breaker permit are returned.
"""

from __future__ import annotations

import asyncio
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

from .admission import Admission, CallReport
from .clock import Clock
from .effects import Call, Effect, Failed, Outcome, Succeeded, Wait
from .errors import ProviderUnavailable, ResilientLLMError, StreamInterrupted
from .messages import ChatChunk, Usage

__all__ = ["run_async", "run_async_stream", "run_sync", "run_sync_stream"]

T = TypeVar("T")
Flow = Generator[Effect, float | Outcome, CallReport]
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
            try:
                value, usage = send(effect)
            except ResilientLLMError as error:
                effect = flow.send(Failed(clock.now(), error))
            else:
                effect = flow.send(Succeeded(clock.now(), usage))
    except StopIteration as stop:
        return value, stop.value  # type: ignore[return-value]
    finally:
        flow.close()


async def run_async(flow: Flow, clock: Clock, send: AsyncSend[T]) -> tuple[T, CallReport]:
    """Drive ``flow`` on the running event loop; each attempt is bounded by its timeout."""
    value: T | None = None
    try:
        effect = next(flow)
        while True:
            if isinstance(effect, Wait):
                await clock.asleep(effect.seconds)
                effect = flow.send(clock.now())
                continue
            try:
                async with asyncio.timeout(effect.timeout):
                    value, usage = await send(effect)
            except ResilientLLMError as error:
                effect = flow.send(Failed(clock.now(), error))
            except TimeoutError:
                effect = flow.send(Failed(clock.now(), _timed_out(effect)))
            else:
                effect = flow.send(Succeeded(clock.now(), usage))
    except StopIteration as stop:
        return value, stop.value  # type: ignore[return-value]
    finally:
        flow.close()


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
    flow: Flow, clock: Clock, open_stream: Callable[[Call], Iterator[ChatChunk]]
) -> Generator[ChatChunk, None, None]:
    """Stream with retry and failover until the first chunk, then relay."""

    def first_chunk(call: Call) -> tuple[tuple[ChatChunk, Iterator[ChatChunk]], None]:
        chunks = open_stream(call)
        try:
            return (next(chunks), chunks), None
        except StopIteration:
            raise _no_first_chunk(call) from None
        except BaseException:
            _close(chunks)
            raise

    (first, chunks), report = run_sync(flow, clock, first_chunk)
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
        _close(chunks)


async def run_async_stream(
    flow: Flow, clock: Clock, open_stream: Callable[[Call], AsyncIterator[ChatChunk]]
) -> AsyncGenerator[ChatChunk, None]:
    """The async twin of :func:`run_sync_stream`; the first chunk is bounded by the timeout."""

    async def first_chunk(call: Call) -> tuple[tuple[ChatChunk, AsyncIterator[ChatChunk]], None]:
        chunks = open_stream(call)
        try:
            return (await anext(chunks), chunks), None
        except StopAsyncIteration:
            raise _no_first_chunk(call) from None
        except BaseException:
            await _aclose(chunks)
            raise

    (first, chunks), report = await run_async(flow, clock, first_chunk)
    tally = _Tally(report, first)
    try:
        yield tally.first
        async for chunk in chunks:
            yield tally.add(chunk)
    except ResilientLLMError as error:
        raise tally.interrupted(error, clock.now()) from error
    except BaseException:
        tally.admission.release()
        raise
    else:
        tally.finished(clock.now())
    finally:
        await _aclose(chunks)


def _close(chunks: Iterator[ChatChunk]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def _aclose(chunks: AsyncIterator[ChatChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
