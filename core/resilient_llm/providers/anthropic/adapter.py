"""The Anthropic adapter: the Messages API through the official ``anthropic`` SDK.

SDK retries are off (``max_retries=0``): the engine is the one retry authority. Async
clients ride the SDK's aiohttp transport unless the route's options ask for httpx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import anthropic

from ...errors import ResilientLLMError
from ...messages import ChatRequest, ChatResponse
from ...secrets import Secret
from .._adapter import SDKAdapter
from .._common import async_http_client, plain_events, warm_transport
from .._watched import watched_http_client
from ..base import Provider
from .convert import (
    AnthropicStreamState,
    build_params,
    response_from_message,
    sdk_kwargs,
    wraps_schema,
)
from .errors import map_anthropic_error, sdk_errors
from .thinking import sdk_takes

__all__ = ["AnthropicAdapter", "map_anthropic_error"]

_Params = dict[str, Any]


class AnthropicAdapter(
    SDKAdapter[anthropic.Anthropic, anthropic.AsyncAnthropic, _Params, Any, Any]
):
    """A :class:`~resilient_llm.providers.ChatAdapter` over ``anthropic``."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(provider)
        warm_transport()
        sdk_takes("temperature")

    def sync_client(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            api_key=key,
            base_url=self.provider.base_url,
            max_retries=0,
            http_client=watched_http_client(anthropic),
        )

    def async_client(self, key: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=key,
            base_url=self.provider.base_url,
            max_retries=0,
            http_client=async_http_client(self.provider, anthropic),
        )

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        return sdk_errors()

    def map_error(self, exc: BaseException, route: str, secret: Secret | None) -> ResilientLLMError:
        return map_anthropic_error(exc, route, secret)

    def prepare(self, request: ChatRequest, timeout: float, *, stream: bool) -> _Params:
        """The SDK's keyword arguments: ``build_params``, with any key this SDK's ``create``
        does not take (a passthrough key) sent in ``extra_body``."""
        return sdk_kwargs(build_params(request, self.provider))

    def call(
        self, client: anthropic.Anthropic, prepared: _Params, timeout: float
    ) -> tuple[Any, object]:
        raw = client.messages.with_raw_response.create(**prepared, timeout=timeout)
        # The body as JSON, not the SDK's model of it: the parser reads either.
        return raw.http_response.json(), raw.headers

    async def acall(
        self, client: anthropic.AsyncAnthropic, prepared: _Params, timeout: float
    ) -> tuple[Any, object]:
        raw = await client.messages.with_raw_response.create(**prepared, timeout=timeout)
        return raw.http_response.json(), raw.headers

    def parse(
        self,
        reply: Any,
        headers: Mapping[str, str] | None,
        request: ChatRequest,
        prepared: _Params,
    ) -> ChatResponse:
        return response_from_message(reply, self.provider.name, headers, wraps_schema(request))

    def open_stream(
        self, client: anthropic.Anthropic, prepared: _Params, timeout: float
    ) -> Iterator[Any]:
        return plain_events(client.messages.create(**prepared, stream=True, timeout=timeout))

    async def aopen_stream(
        self, client: anthropic.AsyncAnthropic, prepared: _Params, timeout: float
    ) -> AsyncIterator[Any]:
        return plain_events(await client.messages.create(**prepared, stream=True, timeout=timeout))

    def stream_state(self, request: ChatRequest, prepared: _Params) -> AnthropicStreamState:
        return AnthropicStreamState(self.provider.name, wrapped=wraps_schema(request))
