"""The Gemini adapter: ``generateContent`` through the official ``google-genai`` SDK.

SDK retries are off (``HttpRetryOptions(attempts=1)``, which also stops the aiohttp path
from retrying connection errors on its own). google-genai's timeout is in milliseconds;
the API version is ``v1beta`` (the Developer API's home of JSON-schema tools and
structured output). The sync client is made on first use and kept (a dropped genai
``Client`` closes its pool); async calls get one client per event loop.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ..errors import ProviderUnavailable, ResilientLLMError
from ..messages import ChatChunk, ChatRequest, ChatResponse
from ..policies.hints import retry_delay_from_gemini_error
from ..secrets import Secret
from ._common import (
    body_error,
    error_from_status,
    header_items,
    says_auth_failure,
    says_context_length,
    status_for_error_type,
    transport_errors,
    unavailable_from_transport,
)
from ._drivers import Clients, aiterate_stream, iterate_stream
from ._gemini_convert import (
    GeminiStreamState,
    build_config,
    build_contents,
    model_name,
    response_from_generate,
)
from ._redact import redact, redact_chain
from .base import Provider

__all__ = ["API_VERSION", "GeminiAdapter", "map_gemini_error"]

API_VERSION = "v1beta"


def _errors() -> tuple[type[BaseException], ...]:
    return (genai_errors.APIError, genai_errors.UnknownApiResponseError, *transport_errors())


def map_gemini_error(
    exc: BaseException, route: str, secret: Secret | None = None
) -> ResilientLLMError:
    """The engine's error for anything google-genai (or its transport) raised.

    ``APIError`` maps by its code (or, for an in-band stream error without one, by its
    ``google.rpc`` status), except that a body naming a bad key (400 ``INVALID_ARGUMENT``
    with ``ErrorInfo`` reason ``API_KEY_INVALID``) is an ``AuthError``; a 429's wait
    comes from the body's ``RetryInfo``, else the headers. Unreadable bodies, timeouts,
    resets and aiohttp/httpx2 errors are ``ProviderUnavailable``. Anything else is a bug: re-raised.
    """
    if isinstance(exc, ResilientLLMError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        message, kind, _ = body_error(exc.details)
        message = message or (exc.message if isinstance(exc.message, str) else None)
        kind = kind or (exc.status if isinstance(exc.status, str) else None)
        code = exc.code if isinstance(exc.code, int) and 100 <= exc.code < 600 else None
        status = code if code is not None else status_for_error_type(kind)
        response = getattr(exc, "response", None)
        return error_from_status(
            route,
            status,
            redact(message or kind or "", secret),
            headers=header_items(getattr(response, "headers", None)),
            retry_after=retry_delay_from_gemini_error(exc.details),
            context_length=says_context_length(message),
            auth=says_auth_failure(exc.details),
        )
    if isinstance(exc, genai_errors.UnknownApiResponseError):
        return ProviderUnavailable(f"{route}: the reply was not valid JSON", provider=route)
    if isinstance(exc, transport_errors()):
        return unavailable_from_transport(route, exc)
    raise exc


def _http_options(timeout: float) -> dict[str, Any]:
    """Per-call options: the timeout in milliseconds, and no SDK retries."""
    return {"timeout": max(1, math.ceil(timeout * 1000)), "retry_options": {"attempts": 1}}


def _make_client(provider: Provider, key: str) -> genai.Client:
    options = types.HttpOptions(
        base_url=provider.base_url,
        api_version=API_VERSION,
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(vertexai=False, api_key=key, http_options=options)


async def _aclose(client: genai.Client) -> None:
    await client.aio.aclose()
    client.close()  # each per-loop Client also made a sync pool


class GeminiAdapter:
    """A :class:`~resilient_llm.providers.base.ChatAdapter` over ``google-genai``."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._clients: Clients[genai.Client, genai.Client] = Clients(
            provider,
            lambda key: _make_client(provider, key),
            lambda key: _make_client(provider, key),
            _aclose,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r})"

    def _map(self, exc: BaseException) -> ResilientLLMError:
        # The SDK's exception stays the cause of ours: mask the key on it too.
        secret = self._clients.secret
        return map_gemini_error(redact_chain(exc, secret), self.provider.name, secret)

    def _arguments(self, request: ChatRequest, timeout: float) -> dict[str, Any]:
        system, contents = build_contents(request.messages)
        return {
            "model": model_name(request, self.provider),
            "contents": contents,
            "config": build_config(request, system, _http_options(timeout)),
        }

    def _reply(self, response: types.GenerateContentResponse, model: str) -> ChatResponse:
        http = getattr(response, "sdk_http_response", None)
        headers = header_items(getattr(http, "headers", None))
        return response_from_generate(response, self.provider.name, model, headers)

    def chat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        arguments = self._arguments(request, timeout)
        client = self._clients.sync()
        try:
            response = client.models.generate_content(**arguments)
        except _errors() as exc:
            raise self._map(exc) from exc
        return self._reply(response, arguments["model"])

    async def achat(self, request: ChatRequest, timeout: float) -> ChatResponse:
        arguments = self._arguments(request, timeout)
        client = await self._clients.aget()
        try:
            response = await client.aio.models.generate_content(**arguments)
        except _errors() as exc:
            raise self._map(exc) from exc
        return self._reply(response, arguments["model"])

    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]:
        arguments = self._arguments(request, timeout)

        def open_stream() -> Iterator[types.GenerateContentResponse]:
            return self._clients.sync().models.generate_content_stream(**arguments)

        def close(events: Iterator[Any]) -> None:
            closer = getattr(events, "close", None)
            if callable(closer):
                closer()

        state = GeminiStreamState(self.provider.name, arguments["model"])
        return iterate_stream(open_stream, state, _errors(), self._map, close)

    def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]:
        arguments = self._arguments(request, timeout)

        async def open_stream() -> AsyncIterator[types.GenerateContentResponse]:
            client = await self._clients.aget()
            return await client.aio.models.generate_content_stream(**arguments)

        async def close(events: AsyncIterator[Any]) -> None:
            closer = getattr(events, "aclose", None)
            if callable(closer):
                await cast(Any, closer)()

        state = GeminiStreamState(self.provider.name, arguments["model"])
        return aiterate_stream(open_stream, state, _errors(), self._map, close)

    def close(self) -> None:
        """Close the sync client; close async clients whose loop still runs."""
        self._clients.close()
