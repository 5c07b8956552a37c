"""The Anthropic adapter: the Messages API through the official ``anthropic`` SDK.

SDK retries are off (``max_retries=0``): the engine is the one retry authority. The sync
client is made on first use and reused; async clients are kept per event loop and ride
the SDK's aiohttp transport unless the route's options ask for httpx. An in-band stream
error (``event: error`` inside a 200 stream, which the SDK raises as an ``APIStatusError``
with status 200) is classified on its ``type``: ``overloaded_error`` is a 529,
``rate_limit_error`` a 429, and so on.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic

from ..errors import ResilientLLMError
from ..messages import ChatChunk, ChatRequest, ChatResponse
from ..secrets import Secret
from ._anthropic_convert import (
    AnthropicStreamState,
    build_params,
    response_from_message,
    wraps_schema,
)
from ._common import (
    async_http_client,
    body_error,
    error_from_status,
    header_items,
    map_generated_sdk_error,
    parsed,
    says_auth_failure,
    says_context_length,
    status_for_error_type,
    transport_errors,
)
from ._drivers import Clients, aiterate_stream, iterate_stream
from ._redact import redact, redact_chain
from .base import Provider

__all__ = ["AnthropicAdapter", "map_anthropic_error"]


def _errors() -> tuple[type[BaseException], ...]:
    return (anthropic.AnthropicError, *transport_errors())


def map_anthropic_error(
    exc: BaseException, route: str, secret: Secret | None = None
) -> ResilientLLMError:
    """The engine's error for anything the Anthropic SDK (or its transport) raised.

    ``APIStatusError`` maps by status, except status 200 (an in-band stream error), which
    maps by the body's error ``type``. Timeouts, connection errors, cut streams and
    unreadable bodies are ``ProviderUnavailable``. Anything else is a bug: re-raised.
    """
    if isinstance(exc, ResilientLLMError):
        return exc
    if isinstance(exc, anthropic.APIStatusError):
        message, kind, code = body_error(exc.body)
        status = exc.status_code
        prefix = ""
        if status < 400:  # "event: error" inside a 200 stream
            status = status_for_error_type(kind, code)
            prefix = f"in-band stream error ({kind or 'unknown'}): "
        text = redact(prefix + (message or exc.message), secret)
        return error_from_status(
            route,
            status,
            text,
            headers=None if prefix else header_items(exc.response.headers),
            context_length=says_context_length(code, kind, message),
            auth=says_auth_failure(exc.body),
        )
    return map_generated_sdk_error(exc, route, secret, anthropic, anthropic.AnthropicError)


@functools.cache
def _sdk_takes(name: str) -> bool:
    return name in inspect.signature(anthropic.resources.messages.Messages.create).parameters


def _params(request: ChatRequest, provider: Provider) -> dict[str, Any]:
    """The SDK's keyword arguments, leaving out sampling options this SDK no longer takes.

    Recent ``anthropic`` releases dropped ``temperature`` from ``messages.create`` (the
    newest models fix their own sampling); passing it would be a ``TypeError``, so it is
    sent only to an SDK that still accepts it.
    """
    params = build_params(request, provider)
    if "temperature" in params and not _sdk_takes("temperature"):
        del params["temperature"]
    return params


async def _aclose(client: anthropic.AsyncAnthropic) -> None:
    await client.close()


class AnthropicAdapter:
    """A :class:`~resilient_llm.providers.base.ChatAdapter` over ``anthropic``."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        url = provider.base_url
        self._clients: Clients[anthropic.Anthropic, anthropic.AsyncAnthropic] = Clients(
            provider,
            lambda key: anthropic.Anthropic(api_key=key, base_url=url, max_retries=0),
            lambda key: anthropic.AsyncAnthropic(
                api_key=key,
                base_url=url,
                max_retries=0,
                http_client=async_http_client(provider, anthropic),
            ),
            _aclose,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r})"

    def _map(self, exc: BaseException) -> ResilientLLMError:
        # The SDK's exception stays the cause of ours: mask the key on it too.
        secret = self._clients.secret
        return map_anthropic_error(redact_chain(exc, secret), self.provider.name, secret)

    def _state(self, request: ChatRequest) -> AnthropicStreamState:
        return AnthropicStreamState(self.provider.name, wrapped=wraps_schema(request))

    def chat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        params = _params(request, self.provider)
        client = self._clients.sync()
        try:
            raw = client.messages.with_raw_response.create(**params, timeout=timeout)
            message = raw.parse()
        except _errors() as exc:
            raise self._map(exc) from exc
        return response_from_message(
            message, self.provider.name, header_items(raw.headers), wraps_schema(request)
        )

    async def achat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        params = _params(request, self.provider)
        client = await self._clients.aget()
        try:
            raw = await client.messages.with_raw_response.create(**params, timeout=timeout)
            message = await parsed(raw.parse())
        except _errors() as exc:
            raise self._map(exc) from exc
        return response_from_message(
            message, self.provider.name, header_items(raw.headers), wraps_schema(request)
        )

    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]:
        params = _params(request, self.provider)

        def open_stream() -> anthropic.Stream[Any]:
            client = self._clients.sync()
            return client.messages.create(**params, stream=True, timeout=timeout)  # type: ignore[no-any-return]

        return iterate_stream(
            open_stream,
            self._state(request),
            _errors(),
            self._map,
            lambda events: events.close(),  # type: ignore[attr-defined]
        )

    def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]:
        params = _params(request, self.provider)

        async def open_stream() -> anthropic.AsyncStream[Any]:
            client = await self._clients.aget()
            return await client.messages.create(**params, stream=True, timeout=timeout)  # type: ignore[no-any-return]

        async def close(events: AsyncIterator[Any]) -> None:
            await events.close()  # type: ignore[attr-defined]

        return aiterate_stream(open_stream, self._state(request), _errors(), self._map, close)

    def close(self) -> None:
        """Close the sync client; close async clients whose loop still runs."""
        self._clients.close()
