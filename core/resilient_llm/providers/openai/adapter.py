"""The OpenAI adapter: chat completions, for OpenAI and any OpenAI-compatible ``base_url``.

SDK retries are off (``max_retries=0``): the engine is the one retry authority. Async
clients ride the SDK's aiohttp transport unless the route's options ask for httpx.

Requests go through the SDK client's ``post`` (its documented way to send a body it does
not build) rather than ``chat.completions.create``: ``create`` walks every parameter
against its typed signature before sending and builds a model of every reply, together
about half the SDK's CPU per call, while ``build_params`` already makes the JSON body and
the reply parsers read plain JSON. The client still does everything else: auth, headers,
timeouts, the transport and the error classes; a stream's body is read by ``events``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from ...errors import ResilientLLMError
from ...messages import ChatRequest, ChatResponse
from ...secrets import Secret
from .._adapter import SDKAdapter
from .._common import async_http_client, warm_transport
from .._watched import watched_http_client
from ..base import Provider
from .convert import REQUEST_OPTIONS, build_params
from .errors import map_openai_error, sdk_errors
from .events import AsyncEvents, Events
from .reply import OpenAIStreamState, response_from_completion

__all__ = ["OpenAIAdapter", "map_openai_error"]

_PATH = "/chat/completions"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A call as the SDK client's ``post`` takes it: the JSON body and request options."""

    body: dict[str, Any]
    options: dict[str, Any]

    def sent(self, timeout: float) -> Any:
        return {**self.options, "timeout": timeout}

    def streamed(self, timeout: float, events: type[Any]) -> dict[str, Any]:
        """``post``'s arguments for the stream, read by ``events`` (see ``events``)."""
        return {
            "cast_to": object,
            "body": self.body,
            "options": self.sent(timeout),
            "stream": True,
            "stream_cls": events,
        }


def prepared(body: dict[str, Any]) -> Prepared:
    """``body`` with the passthrough's ``extra_headers``/``extra_query`` moved out of it
    into the request options they are."""
    options = {option: body.pop(key) for key, option in REQUEST_OPTIONS.items() if key in body}
    return Prepared(body, options)


class OpenAIAdapter(SDKAdapter[openai.OpenAI, openai.AsyncOpenAI, Prepared, Any, Any]):
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

    def prepare(self, request: ChatRequest, timeout: float, *, stream: bool) -> Prepared:
        body = build_params(request, self.provider)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return prepared(body)

    def call(self, client: openai.OpenAI, prepared: Prepared, timeout: float) -> tuple[Any, object]:
        raw = client.post(
            _PATH,
            cast_to=openai.APIResponse[object],
            body=prepared.body,
            options=prepared.sent(timeout),
        )
        return raw.parse(), raw.headers

    async def acall(
        self, client: openai.AsyncOpenAI, prepared: Prepared, timeout: float
    ) -> tuple[Any, object]:
        raw = await client.post(
            _PATH,
            cast_to=openai.AsyncAPIResponse[object],
            body=prepared.body,
            options=prepared.sent(timeout),
        )
        return await raw.parse(), raw.headers

    def parse(
        self,
        reply: Any,
        headers: Mapping[str, str] | None,
        request: ChatRequest,
        prepared: Prepared,
    ) -> ChatResponse:
        return response_from_completion(reply, self.provider.name, headers)

    def open_stream(
        self, client: openai.OpenAI, prepared: Prepared, timeout: float
    ) -> Iterator[Any]:
        return client.post(_PATH, **prepared.streamed(timeout, Events))  # type: ignore[no-any-return]

    async def aopen_stream(
        self, client: openai.AsyncOpenAI, prepared: Prepared, timeout: float
    ) -> AsyncIterator[Any]:
        return await client.post(_PATH, **prepared.streamed(timeout, AsyncEvents))  # type: ignore[no-any-return]

    def stream_state(self, request: ChatRequest, prepared: Prepared) -> OpenAIStreamState:
        return OpenAIStreamState(self.provider.name)
