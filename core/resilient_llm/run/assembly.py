"""A whole reply read from a stream: the chunks assembled as the non-stream reply would be.

A call that may be hedged reads its whole reply through the provider's stream, so that the
stream's first chunk can tell the driver the attempt is alive (a reply that arrives in one
piece says nothing until it is complete). :class:`Assembled` puts the chunks back together
(the cache and the trace of a stream use it too); :func:`collect` and :func:`acollect` read
a stream to its end within its stall limits. Nothing reaches the caller before the end, so
a stream that breaks after its first chunk is a failed attempt like any whole reply's,
retried or failed over: never ``StreamInterrupted``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from ..clock import Clock
from ..content import Reasoning, join_reasoning
from ..errors import ProviderUnavailable
from ..messages import ChatChunk, ChatRequest, ChatResponse, ToolCall, Usage
from ..policies.hints import RateLimitHints
from .stall import Pump, Stalled, StreamTimeouts

__all__ = ["Assembled", "acollect", "aopen_reply", "collect", "open_reply"]


class Assembled:
    """The reply a stream amounts to: its text, reasoning, calls, usage and end."""

    def __init__(self) -> None:
        self.first: ChatChunk | None = None
        self.text: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.refusal: list[str] = []
        self.reasoning: list[Reasoning] = []
        self.model = ""
        self.quota: RateLimitHints | None = None
        self.metadata: dict[str, Any] = {}

    def add(self, chunk: ChatChunk) -> ChatChunk:
        if self.first is None:
            self.first = chunk
        # The first chunk's, then what later ones add (the terminal one: the reply's id
        # and the provider's own finish reason, as a whole reply's metadata has them).
        self.metadata.update(chunk.metadata)
        self.text.append(chunk.delta)
        if chunk.refusal is not None:
            self.refusal.append(chunk.refusal)
        self.tool_calls.extend(chunk.tool_calls)
        self.reasoning.extend(chunk.reasoning)
        self.usage = chunk.usage or self.usage
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.model = chunk.model or self.model
        self.quota = self.quota or chunk.quota
        return chunk

    def reply(self) -> ChatResponse | None:
        """The reply, or None before any chunk. Without its quota: a cache stores none."""
        if self.first is None:
            return None
        return ChatResponse(
            content="".join(self.text),
            provider=self.first.provider,
            model=self.model,
            tool_calls=tuple(self.tool_calls),
            usage=self.usage,
            finish_reason=self.finish_reason,
            metadata=self.metadata,
            refusal="".join(self.refusal) if self.refusal else None,
            reasoning=join_reasoning(self.reasoning),
        )

    def whole(self, route: str, headers: Mapping[str, str]) -> ChatResponse:
        """The reply of a stream read to its end, with its rate-limit ``headers`` and the
        quota they stated."""
        reply = self.reply()
        if reply is None:
            raise _no_chunk(route)
        return dataclasses.replace(reply, rate_limit_headers=dict(headers), quota=self.quota)


class _Streams(Protocol):
    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]: ...

    def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]: ...


_NONE: Mapping[str, str] = MappingProxyType({})


def open_reply(
    adapter: _Streams, request: ChatRequest, timeout: float
) -> tuple[Iterator[ChatChunk], Mapping[str, str]]:
    """The stream of ``request`` and its rate-limit headers (filled in as it starts), from
    an SDK adapter; another adapter's stream comes without them."""
    opened = getattr(adapter, "stream_with_headers", None)
    if opened is None:
        return adapter.stream(request, timeout), _NONE
    return opened(request, timeout)  # type: ignore[no-any-return]


def aopen_reply(
    adapter: _Streams, request: ChatRequest, timeout: float
) -> tuple[AsyncIterator[ChatChunk], Mapping[str, str]]:
    """The async twin of :func:`open_reply`."""
    opened = getattr(adapter, "astream_with_headers", None)
    if opened is None:
        return adapter.astream(request, timeout), _NONE
    return opened(request, timeout)  # type: ignore[no-any-return]


def collect(
    chunks: Iterator[ChatChunk],
    headers: Mapping[str, str],
    route: str,
    alive: Callable[[], None],
    clock: Clock,
    timeouts: StreamTimeouts | None = None,
) -> ChatResponse:
    """Read ``chunks`` to the end into one reply (``headers``: its rate-limit headers, as
    :func:`open_reply` gives them); ``alive()`` once the first chunk arrives.

    The attempt's watch bounds the reads (its deadline is never lifted here: nothing is
    relayed, so the whole reply must come in time); with ``timeouts`` a pump thread reads,
    so the first chunk and each silence after it are bounded too.
    """
    seen = Assembled()
    if timeouts is None:
        try:
            for chunk in chunks:
                if seen.add(chunk) is seen.first:
                    alive()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return seen.whole(route, headers)
    pump = Pump(chunks, route)
    try:
        while True:
            limit = timeouts.idle if seen.first is not None else timeouts.first_token
            try:
                chunk = pump.next(limit, clock)
            except StopIteration:
                return seen.whole(route, headers)
            except Stalled:
                raise _stalled(route, limit, seen.first is None) from None
            if seen.add(chunk) is seen.first:
                alive()
    finally:
        pump.abandon()


async def acollect(
    chunks: AsyncIterator[ChatChunk],
    headers: Mapping[str, str],
    route: str,
    alive: Callable[[], None],
    clock: Clock,
    timeouts: StreamTimeouts | None = None,
) -> ChatResponse:
    """The async twin of :func:`collect`: each wait is bounded on the clock."""
    seen = Assembled()
    if timeouts is None:
        # Only the attempt's own timeout bounds the reads: no per-chunk timer to arm.
        try:
            async for chunk in chunks:
                if seen.add(chunk) is seen.first:
                    alive()
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        return seen.whole(route, headers)
    try:
        while True:
            limit = None
            if timeouts is not None:
                limit = timeouts.idle if seen.first is not None else timeouts.first_token
            try:
                async with clock.timeout(limit):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return seen.whole(route, headers)
            except TimeoutError:
                if limit is None:
                    raise  # the attempt's own timeout: the run reports it
                raise _stalled(route, limit, seen.first is None) from None
            if seen.add(chunk) is seen.first:
                alive()
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _no_chunk(route: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"the reply from {route!r} ended before it began", provider=route)


def _stalled(route: str, limit: float | None, first: bool) -> ProviderUnavailable:
    what = "no first chunk" if first else "the reply stalled: no chunk"
    return ProviderUnavailable(f"{what} from {route!r} within {limit:.3g}s", provider=route)
