"""The OpenAI adapter: chat completions, for OpenAI and any OpenAI-compatible ``base_url``.

SDK retries are off (``max_retries=0``): the engine is the one retry authority. Async
clients ride the SDK's aiohttp transport unless the route's options ask for httpx.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import openai

from ...errors import ResilientLLMError
from ...messages import ChatRequest, ChatResponse
from ...secrets import Secret
from .._adapter import SDKAdapter
from .._common import async_http_client, parsed, plain_events, warm_transport
from .._watched import watched_http_client
from ..base import Provider
from .convert import build_params
from .errors import map_openai_error, sdk_errors
from .reply import OpenAIStreamState, response_from_completion

__all__ = ["OpenAIAdapter", "map_openai_error"]

_Params = dict[str, Any]


@functools.cache
def create_params() -> frozenset[str]:
    """The keyword arguments the installed SDK's ``chat.completions.create`` takes: a
    passthrough key among them is sent as one, any other in ``extra_body``."""
    signature = inspect.signature(openai.resources.chat.Completions.create)
    return frozenset(
        name for name, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY
    ) - {"extra_body", "timeout", "stream", "messages", "model"}


class OpenAIAdapter(SDKAdapter[openai.OpenAI, openai.AsyncOpenAI, _Params, Any, Any]):
    """A :class:`~resilient_llm.providers.ChatAdapter` over ``openai``."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(provider)
        warm_transport()

    def sync_client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=key,
            base_url=self.provider.base_url,
            max_retries=0,
            http_client=watched_http_client(openai),
        )

    def async_client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key,
            base_url=self.provider.base_url,
            max_retries=0,
            http_client=async_http_client(self.provider, openai),
        )

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        return sdk_errors()

    def map_error(self, exc: BaseException, route: str, secret: Secret | None) -> ResilientLLMError:
        return map_openai_error(exc, route, secret)

    def prepare(self, request: ChatRequest, timeout: float, *, stream: bool) -> _Params:
        params = build_params(request, self.provider, create_params())
        if stream:
            params["stream_options"] = {"include_usage": True}
        return params

    def call(self, client: openai.OpenAI, prepared: _Params, timeout: float) -> tuple[Any, object]:
        raw = client.chat.completions.with_raw_response.create(**prepared, timeout=timeout)
        return raw.parse(), raw.headers

    async def acall(
        self, client: openai.AsyncOpenAI, prepared: _Params, timeout: float
    ) -> tuple[Any, object]:
        raw = await client.chat.completions.with_raw_response.create(**prepared, timeout=timeout)
        return await parsed(raw.parse()), raw.headers

    def parse(
        self,
        reply: Any,
        headers: Mapping[str, str] | None,
        request: ChatRequest,
        prepared: _Params,
    ) -> ChatResponse:
        return response_from_completion(reply, self.provider.name, headers)

    def open_stream(
        self, client: openai.OpenAI, prepared: _Params, timeout: float
    ) -> Iterator[Any]:
        events = client.chat.completions.create(**prepared, stream=True, timeout=timeout)
        return plain_events(events)

    async def aopen_stream(
        self, client: openai.AsyncOpenAI, prepared: _Params, timeout: float
    ) -> AsyncIterator[Any]:
        events = await client.chat.completions.create(**prepared, stream=True, timeout=timeout)
        return plain_events(events)

    def stream_state(self, request: ChatRequest, prepared: _Params) -> OpenAIStreamState:
        return OpenAIStreamState(self.provider.name)
