"""One SDK adapter base: ``chat``, ``achat``, ``stream`` and ``astream`` written once.

A provider's adapter subclasses :class:`SDKAdapter` and fills in hooks: how to make its
clients, build the SDK's arguments, make the call, parse the reply, follow a stream and map
the SDK's errors. The base owns what every provider must do the same way: the SDK's calls
alone sit inside ``try`` (a bug in a converter is not a provider failure), every SDK error
leaves as the engine's own with the key masked, a stream is closed however its consumer
stops, and quota headers are parsed once into ``reply.quota`` (a stream's first chunk).
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from ..errors import ResilientLLMError
from ..messages import ChatChunk, ChatRequest, ChatResponse
from ..policies.hints import RateLimitHints
from ..secrets import Secret
from ._common import header_items
from ._drivers import Clients, StreamState
from ._hints import quota_hints
from ._redact import redact_chain
from .base import Provider, rate_limit_headers

__all__ = ["SDKAdapter"]

_S = TypeVar("_S")  # the sync client
_A = TypeVar("_A")  # the async client
_P = TypeVar("_P")  # the prepared call: the SDK's arguments
_R = TypeVar("_R")  # a reply as the SDK returns it
_E = TypeVar("_E")  # one stream event as the SDK yields it


class SDKAdapter(ABC, Generic[_S, _A, _P, _R, _E]):
    """A :class:`~resilient_llm.providers.ChatAdapter` over one SDK, from its hooks.

    Clients: the sync one is made on first use and kept, async ones per event loop
    (:class:`~resilient_llm.providers._drivers.Clients`); both from the route's key, so a
    missing key is an ``AuthError`` at call time. A subclass does its CPU-heavy set-up
    (the SDK import, TLS contexts) in ``__init__``, so nothing heavy waits for the first
    call on the caller's event loop.
    """

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._errors = self.sdk_errors()
        self._clients: Clients[Any, _A] = Clients(
            provider, self.sync_client, self.async_client, self.close_async_client
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r})"

    # -- hooks ------------------------------------------------------------------------

    @abstractmethod
    def sync_client(self, key: str) -> _S:
        """A new sync client for ``key`` (which may be a placeholder for a custom base_url)."""

    @abstractmethod
    def async_client(self, key: str) -> _A:
        """A new async client for ``key``, used on the event loop that asked for it."""

    async def close_async_client(self, client: _A) -> None:
        """Close an async client on its loop (the default awaits its ``close()``)."""
        await _maybe_await(getattr(client, "close", _nothing)())

    @abstractmethod
    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        """Every exception the SDK and its transport raise; anything else is a bug."""

    @abstractmethod
    def map_error(self, exc: BaseException, route: str, secret: Secret | None) -> ResilientLLMError:
        """The engine's error for an SDK error (``secret`` to mask in its message)."""

    @abstractmethod
    def prepare(self, request: ChatRequest, timeout: float, *, stream: bool) -> _P:
        """The SDK's arguments for ``request``; raises ``BadRequest`` before any call."""

    @abstractmethod
    def call(self, client: _S, prepared: _P, timeout: float) -> tuple[_R, object]:
        """Make the call: the SDK's reply and the response's headers (any mapping, or None)."""

    @abstractmethod
    async def acall(self, client: _A, prepared: _P, timeout: float) -> tuple[_R, object]:
        """The async twin of :meth:`call`."""

    @abstractmethod
    def parse(
        self,
        reply: _R,
        headers: Mapping[str, str] | None,
        request: ChatRequest,
        prepared: _P,
    ) -> ChatResponse:
        """The neutral reply; a malformed one raises ``ProviderUnavailable``."""

    @abstractmethod
    def open_stream(self, client: _S, prepared: _P, timeout: float) -> Iterator[_E]:
        """Open a stream: the SDK's iterator of events."""

    @abstractmethod
    async def aopen_stream(self, client: _A, prepared: _P, timeout: float) -> AsyncIterator[_E]:
        """The async twin of :meth:`open_stream`."""

    @abstractmethod
    def stream_state(self, request: ChatRequest, prepared: _P) -> StreamState[_E]:
        """A fresh state that turns the stream's events into chunks."""

    def stream_headers(self, events: object, first: _E) -> object:
        """The stream's response headers, read when its first event arrives (the default
        reads the SDK stream's ``response.headers``)."""
        return getattr(getattr(events, "response", None), "headers", None)

    def close_stream(self, events: Iterator[_E]) -> None:
        """Close a sync stream however its consumer stopped."""
        closer = getattr(events, "close", None)
        if callable(closer):
            closer()

    async def aclose_stream(self, events: AsyncIterator[_E]) -> None:
        """Close an async stream however its consumer stopped."""
        closer = getattr(events, "aclose", None) or getattr(events, "close", None)
        if callable(closer):
            await _maybe_await(closer())

    # -- the four calls, written once -------------------------------------------------

    def _map(self, exc: BaseException) -> ResilientLLMError:
        # The SDK's exception stays the cause of ours: mask the key on it too.
        secret = self._clients.secret
        return self.map_error(redact_chain(exc, secret), self.provider.name, secret)

    def _reply(
        self, reply: _R, headers: object, request: ChatRequest, prepared: _P
    ) -> ChatResponse:
        items = header_items(headers)
        response = self.parse(reply, items, request, prepared)
        quota = quota_hints(items)
        return response if quota is None else dataclasses.replace(response, quota=quota)

    def chat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        prepared = self.prepare(request, timeout, stream=False)
        client = self._clients.sync()
        try:
            reply, headers = self.call(client, prepared, timeout)
        except self._errors as exc:
            raise self._map(exc) from exc
        return self._reply(reply, headers, request, prepared)

    async def achat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        prepared = self.prepare(request, timeout, stream=False)
        client = await self._clients.aget()
        try:
            reply, headers = await self.acall(client, prepared, timeout)
        except self._errors as exc:
            raise self._map(exc) from exc
        return self._reply(reply, headers, request, prepared)

    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]:
        # Prepared now, so a request the SDK cannot take fails at the call, not at next().
        prepared = self.prepare(request, timeout, stream=True)
        return self._stream(request, prepared, timeout)

    def stream_with_headers(
        self, request: ChatRequest, timeout: float
    ) -> tuple[Iterator[ChatChunk], Mapping[str, str]]:
        """:meth:`stream`, and the response's rate-limit headers (``rate_limit_headers``
        of a whole reply), filled in as the first event arrives."""
        prepared = self.prepare(request, timeout, stream=True)
        heard: dict[str, str] = {}
        return self._stream(request, prepared, timeout, heard), heard

    def astream_with_headers(
        self, request: ChatRequest, timeout: float
    ) -> tuple[AsyncIterator[ChatChunk], Mapping[str, str]]:
        """The async twin of :meth:`stream_with_headers`."""
        prepared = self.prepare(request, timeout, stream=True)
        heard: dict[str, str] = {}
        return self._astream(request, prepared, timeout, heard), heard

    def _stream(
        self,
        request: ChatRequest,
        prepared: _P,
        timeout: float,
        heard: dict[str, str] | None = None,
    ) -> Iterator[ChatChunk]:
        state = self.stream_state(request, prepared)
        try:
            events = self.open_stream(self._clients.sync(), prepared, timeout)
        except self._errors as exc:
            raise self._map(exc) from exc
        quota: _Quota | None = None
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration:
                    break
                except self._errors as exc:
                    raise self._map(exc) from exc
                if quota is None:
                    quota = _Quota(self.stream_headers(events, event), heard)
                yield from quota.mark(state.feed(event))
            yield from (quota or _Quota(None)).mark(state.finish())
        finally:
            self.close_stream(events)

    def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]:
        prepared = self.prepare(request, timeout, stream=True)
        return self._astream(request, prepared, timeout)

    async def _astream(
        self,
        request: ChatRequest,
        prepared: _P,
        timeout: float,
        heard: dict[str, str] | None = None,
    ) -> AsyncIterator[ChatChunk]:
        state = self.stream_state(request, prepared)
        try:
            events = await self.aopen_stream(await self._clients.aget(), prepared, timeout)
        except self._errors as exc:
            raise self._map(exc) from exc
        quota: _Quota | None = None
        try:
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except self._errors as exc:
                    raise self._map(exc) from exc
                if quota is None:
                    quota = _Quota(self.stream_headers(events, event), heard)
                fed = state.feed(event)
                if quota.pending:
                    fed = quota.mark(fed)
                for chunk in fed:
                    yield chunk
            for chunk in (quota or _Quota(None)).mark(state.finish()):
                yield chunk
        finally:
            await self.aclose_stream(events)

    def close(self) -> None:
        """Close the sync client; close async clients whose loop still runs."""
        self._clients.close()


class _Quota:
    """A stream's quota hints, put on its first chunk: the headers came with its start.
    ``heard`` (when given) gets the rate-limit headers themselves."""

    def __init__(self, headers: object, heard: dict[str, str] | None = None) -> None:
        items = header_items(headers)
        self._hints: RateLimitHints | None = quota_hints(items)
        if heard is not None:
            heard.update(rate_limit_headers(items))

    @property
    def pending(self) -> bool:
        """Whether the hints are still to be put on a chunk (none has come yet)."""
        return self._hints is not None

    def mark(self, chunks: Iterable[ChatChunk]) -> Iterator[ChatChunk]:
        for chunk in chunks:
            if self._hints is not None:
                chunk, self._hints = dataclasses.replace(chunk, quota=self._hints), None
            yield chunk


def _nothing() -> None:
    return None


async def _maybe_await(value: object) -> object:
    return await value if inspect.isawaitable(value) else value
