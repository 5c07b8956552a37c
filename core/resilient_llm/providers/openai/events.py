"""A chat-completions stream read as its events' JSON, for the SDK client's ``post``.

The client makes the request, raises its status errors and hands the open response to
the ``stream_cls`` it is given; these classes are that hand-off, subclasses of the SDK's
``Stream``/``AsyncStream`` as ``post`` requires. They read the body a chunk at a time with
:class:`~resilient_llm.providers._sse.SSEDecoder`, rather than through the SDK's three
nested generators per event, which left suspended after ``[DONE]`` each cost the loop a
task to finalize: most of a short stream's cost, and work for the garbage collector.

As the SDK's streams do: ``data: [DONE]`` ends the events (the rest of the body is still
read, so the connection can be reused); an event whose JSON holds ``error`` raises the
SDK's ``APIError`` with it as the body (an in-band error, mapped as the SDK's is); the
response is closed at the end, or when the reader closes the stream early.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai

from .._sse import SSEDecoder

__all__ = ["AsyncEvents", "Events"]

_DONE = "[DONE]"
_NONE = object()  # no event decoded yet (an event may be JSON null)


class _Reading:
    """What both streams share: events decoded and waiting, and whether ``[DONE]`` came.

    A chunk may hold good events and then a bad one (an in-band error, JSON that does not
    parse): the good ones are handed out first, then the bad one raises, as event by
    event reading would have it."""

    def __init__(self, response: Any) -> None:
        self.decoder = SSEDecoder()
        self.ready: deque[object] = deque()
        self.done = False
        self.failed: Exception | None = None
        self.request = response.request

    def take(self, pairs: list[tuple[str, str]]) -> None:
        for _, data in pairs:
            if self.done or self.failed is not None:
                return  # the rest is read only to free the connection
            if data.startswith(_DONE):
                self.done = True
                return
            try:
                event = json.loads(data)
            except ValueError as exc:
                self.failed = exc
                return
            if isinstance(event, dict) and event.get("error"):
                self.failed = _in_band(event["error"], self.request)
                return
            self.ready.append(event)

    def next_event(self) -> object:
        """The next event decoded, or ``_NONE``; raises a bad one once the good are out."""
        if self.ready:
            return self.ready.popleft()
        if self.failed is not None:
            failed, self.failed = self.failed, None
            self.done = True
            raise failed
        return _NONE


def _in_band(error: object, request: Any) -> openai.APIError:
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=request, body=error)


class Events(openai.Stream[object]):
    """A sync stream of events as JSON values."""

    def __init__(self, *, response: Any, **_: object) -> None:  # the SDK's other arguments
        self.response = response
        self._chunks: Iterator[bytes] = response.iter_bytes()
        self._reading = _Reading(response)
        self._ended = False

    def __iter__(self) -> Iterator[object]:
        return self

    def __next__(self) -> object:
        reading = self._reading
        while (event := reading.next_event()) is _NONE:
            if self._ended:
                raise StopIteration
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
                self.close()
                reading.take(reading.decoder.finish())
            else:
                reading.take(reading.decoder.feed(chunk))
        return event

    def close(self) -> None:
        self._ended = True
        closer = getattr(self._chunks, "close", None)
        if closer is not None:
            closer()
        self.response.close()


class AsyncEvents(openai.AsyncStream[object]):
    """An async stream of events as JSON values."""

    def __init__(self, *, response: Any, **_: object) -> None:  # the SDK's other arguments
        self.response = response
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        self._reading = _Reading(response)
        self._ended = False

    def __aiter__(self) -> AsyncIterator[object]:
        return self

    async def __anext__(self) -> object:
        reading = self._reading
        while (event := reading.next_event()) is _NONE:
            if self._ended:
                raise StopAsyncIteration
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                await self.close()
                reading.take(reading.decoder.finish())
            else:
                reading.take(reading.decoder.feed(chunk))
        return event

    async def close(self) -> None:
        self._ended = True
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()
        await self.response.aclose()
