"""The OpenAI adapter: chat completions, for OpenAI and any OpenAI-compatible ``base_url``.

SDK retries are off (``max_retries=0``): the engine is the one retry authority. The sync
client is made on first use and reused; async clients are kept per event loop and ride
the SDK's aiohttp transport unless the route's options ask for httpx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai

from ..errors import ResilientLLMError
from ..messages import ChatChunk, ChatRequest, ChatResponse
from ..secrets import Secret
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
from ._openai_convert import OpenAIStreamState, build_params, response_from_completion
from ._redact import redact, redact_chain
from .base import Provider

__all__ = ["OpenAIAdapter", "map_openai_error"]


def _errors() -> tuple[type[BaseException], ...]:
    return (openai.OpenAIError, *transport_errors())


# APIError's subclasses that are not in-band stream errors; the shared mapping takes them.
_NOT_IN_BAND = (openai.APIConnectionError, openai.APIResponseValidationError)


def map_openai_error(
    exc: BaseException, route: str, secret: Secret | None = None
) -> ResilientLLMError:
    """The engine's error for anything the OpenAI SDK (or its transport) raised.

    The SDK's ``APIStatusError`` maps by status; an ``APIError`` without a status is an
    in-band stream error (``data: {"error": ...}``) and maps by its ``type``/``code``;
    timeouts, connection errors and unreadable bodies are ``ProviderUnavailable``. An
    exception that is neither the SDK's nor a transport's is a bug: it is re-raised.
    """
    if isinstance(exc, ResilientLLMError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        message, kind, code = body_error(exc.body)
        text = redact(message or exc.message, secret)
        return error_from_status(
            route,
            exc.status_code,
            text,
            headers=header_items(exc.response.headers),
            context_length=says_context_length(code, kind, message),
            auth=says_auth_failure(exc.body),
        )
    if isinstance(exc, openai.APIError) and not isinstance(exc, _NOT_IN_BAND):
        # in-band: an error event inside a 200 stream
        message, kind, code = body_error(exc.body)
        status = status_for_error_type(kind, code)
        text = redact(f"in-band stream error: {message or exc.message}", secret)
        return error_from_status(
            route,
            status,
            text,
            context_length=says_context_length(code, kind, message),
            auth=says_auth_failure(exc.body),
        )
    return map_generated_sdk_error(exc, route, secret, openai, openai.OpenAIError)


async def _aclose(client: openai.AsyncOpenAI) -> None:
    await client.close()


class OpenAIAdapter:
    """A :class:`~resilient_llm.providers.base.ChatAdapter` over ``openai``."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._clients: Clients[openai.OpenAI, openai.AsyncOpenAI] = Clients(
            provider,
            lambda key: openai.OpenAI(api_key=key, base_url=provider.base_url, max_retries=0),
            lambda key: openai.AsyncOpenAI(
                api_key=key,
                base_url=provider.base_url,
                max_retries=0,
                http_client=async_http_client(provider, openai),
            ),
            _aclose,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r})"

    def _map(self, exc: BaseException) -> ResilientLLMError:
        # The SDK's exception stays the cause of ours: mask the key on it too.
        secret = self._clients.secret
        return map_openai_error(redact_chain(exc, secret), self.provider.name, secret)

    def _stream_params(self, request: ChatRequest) -> dict[str, Any]:
        params = build_params(request, self.provider)
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        return params

    def chat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        params = build_params(request, self.provider)
        client = self._clients.sync()
        try:
            raw = client.chat.completions.with_raw_response.create(**params, timeout=timeout)
            completion = raw.parse()
        except _errors() as exc:
            raise self._map(exc) from exc
        return response_from_completion(completion, self.provider.name, header_items(raw.headers))

    async def achat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        params = build_params(request, self.provider)
        client = await self._clients.aget()
        try:
            raw = await client.chat.completions.with_raw_response.create(**params, timeout=timeout)
            completion = await parsed(raw.parse())
        except _errors() as exc:
            raise self._map(exc) from exc
        return response_from_completion(completion, self.provider.name, header_items(raw.headers))

    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]:
        params = self._stream_params(request)

        def open_stream() -> openai.Stream[Any]:
            client = self._clients.sync()
            return client.chat.completions.create(**params, timeout=timeout)  # type: ignore[no-any-return]

        return iterate_stream(
            open_stream,
            OpenAIStreamState(self.provider.name),
            _errors(),
            self._map,
            lambda events: events.close(),  # type: ignore[attr-defined]
        )

    def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]:
        params = self._stream_params(request)

        async def open_stream() -> openai.AsyncStream[Any]:
            client = await self._clients.aget()
            return await client.chat.completions.create(**params, timeout=timeout)  # type: ignore[no-any-return]

        async def close(events: AsyncIterator[Any]) -> None:
            await events.close()  # type: ignore[attr-defined]

        return aiterate_stream(
            open_stream, OpenAIStreamState(self.provider.name), _errors(), self._map, close
        )

    def close(self) -> None:
        """Close the sync client; close async clients whose loop still runs."""
        self._clients.close()
