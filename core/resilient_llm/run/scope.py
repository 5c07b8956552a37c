"""One call's cache lookup and trace, shared by the engine's four call methods.

The engine opens a :class:`CallScope` per call. For a whole reply (``chat``, ``achat``)
the scope is a context manager around the call and ``finish`` stores and marks the reply.
For a stream it wraps the driver's generator: the trace is made current only while the
engine itself runs (inside each ``next``), never while the consumer holds the stream, so
a consumer that interleaves several streams, or abandons one, never sees another call's
context. The chunks are assembled into the reply the cache stores and the trace reports.

With neither a cache nor telemetry configured a scope costs one object and changes
nothing: streams are handed back unwrapped.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Protocol

from ..extras.cache import CacheFront, Lookup, replay_chunk
from ..messages import ChatChunk, ChatRequest, ChatResponse
from .assembly import Assembled
from .streams import aclose_stream, close_stream

__all__ = ["CallScope", "CallTrace"]

_IDLE = contextlib.nullcontext()


class CallTrace(Protocol):
    """What a telemetry backend does for one call (see :mod:`resilient_llm.extras.telemetry`)."""

    def activate(self) -> AbstractContextManager[object]:
        """Make this call current (its span, and the pairing of engine events with it)
        until the block ends; the first activation starts the call's span."""
        ...

    def finish(
        self,
        *,
        reply: ChatResponse | None = None,
        error: BaseException | None = None,
        abandoned: bool = False,
    ) -> None:
        """End the call once: a reply, an error, or a stream its consumer let go of."""
        ...


class CallScope:
    """One call's cache lookup (made at once) and trace (started on first activation)."""

    def __init__(
        self, request: ChatRequest, front: CacheFront | None, trace: CallTrace | None
    ) -> None:
        self._front = front
        self._trace = trace
        self.lookup: Lookup | None = None if front is None else front.lookup(request)
        self._active: AbstractContextManager[object] = _IDLE

    @property
    def hit(self) -> ChatResponse | None:
        """The cached reply, when the cache had one."""
        return None if self.lookup is None else self.lookup.reply

    # -- whole replies ------------------------------------------------------------------

    def __enter__(self) -> CallScope:
        if self._trace is not None:
            self._active = self._trace.activate()
            self._active.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._active.__exit__(kind, error, traceback)
        if error is not None and self._trace is not None:
            self._trace.finish(error=error)

    def finish(self, reply: ChatResponse) -> ChatResponse:
        """Store ``reply`` on a miss, mark it with the cache status, end the trace."""
        if self._front is not None and self.lookup is not None and self.lookup.reply is None:
            reply = self._front.remember(self.lookup, reply)
        if self._trace is not None:
            self._trace.finish(reply=reply)
        return reply

    # -- streams ------------------------------------------------------------------------

    def replay(self) -> Generator[ChatChunk, None, None]:
        """A hit, served to ``stream``."""
        assert self.hit is not None
        return self._relay(iter([replay_chunk(self.hit)]))

    def areplay(self) -> AsyncGenerator[ChatChunk, None]:
        """A hit, served to ``astream``."""
        assert self.hit is not None
        return self._arelay(_once(replay_chunk(self.hit)))

    def relay(self, chunks: Generator[ChatChunk, None, None]) -> Generator[ChatChunk, None, None]:
        """The driver's stream, traced step by step and stored if it runs to its end."""
        if self._front is None and self._trace is None:
            return chunks
        return self._relay(chunks)

    def arelay(self, chunks: AsyncGenerator[ChatChunk, None]) -> AsyncGenerator[ChatChunk, None]:
        """The async twin of :meth:`relay`."""
        if self._front is None and self._trace is None:
            return chunks
        return self._arelay(chunks)

    def _relay(self, chunks: Iterator[ChatChunk]) -> Generator[ChatChunk, None, None]:
        seen = Assembled()
        try:
            while True:
                with self._step():
                    try:
                        chunk = next(chunks)
                    except StopIteration:
                        break
                yield self._pulled(seen, chunk)
        except GeneratorExit:
            with self._step():
                close_stream(chunks)
            self._ended(abandoned=True)
            raise
        except BaseException as error:
            with self._step():
                close_stream(chunks)
            self._ended(error=error)
            raise
        self._ended(reply=seen.reply())

    async def _arelay(self, chunks: AsyncIterator[ChatChunk]) -> AsyncGenerator[ChatChunk, None]:
        seen = Assembled()
        try:
            while True:
                with self._step():
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                yield self._pulled(seen, chunk)
        except GeneratorExit:
            with self._step():
                await aclose_stream(chunks)
            self._ended(abandoned=True)
            raise
        except BaseException as error:
            with self._step():
                await aclose_stream(chunks)
            self._ended(error=error)
            raise
        self._ended(reply=seen.reply())

    def _step(self) -> AbstractContextManager[object]:
        return _IDLE if self._trace is None else self._trace.activate()

    def _pulled(self, seen: Assembled, chunk: ChatChunk) -> ChatChunk:
        if seen.first is None and self.lookup is not None and self.lookup.reply is None:
            chunk = dataclasses.replace(
                chunk, metadata={**chunk.metadata, "cache": self.lookup.status}
            )
        return seen.add(chunk)

    def _ended(
        self,
        *,
        reply: ChatResponse | None = None,
        error: BaseException | None = None,
        abandoned: bool = False,
    ) -> None:
        lookup = self.lookup
        if (
            reply is not None
            and self._front is not None
            and lookup is not None
            and lookup.reply is None
        ):
            self._front.remember(lookup, reply)
        if self._trace is not None:
            self._trace.finish(reply=reply, error=error, abandoned=abandoned)


async def _once(chunk: ChatChunk) -> AsyncGenerator[ChatChunk, None]:
    yield chunk
