"""The Gemini adapter: ``generateContent`` through the official ``google-genai`` SDK.

SDK retries are off (``HttpRetryOptions(attempts=1)``, which also stops the aiohttp path
from retrying connection errors on its own). google-genai's timeout is in milliseconds;
the API version is ``v1beta`` (the Developer API's home of JSON-schema tools and
structured output). The sync client is made on first use and kept (a dropped genai
``Client`` closes its pool); async calls get one client per event loop.
"""

from __future__ import annotations

import functools
import math
import os
import re
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import certifi
import pydantic
from google import genai
from google.genai import types

from ...errors import ConfigurationError, ResilientLLMError
from ...messages import ChatRequest, ChatResponse
from ...policies.capabilities import capabilities_for
from ...secrets import Secret
from .._adapter import SDKAdapter
from .._passthrough import passthrough
from .._watched import watched_transport
from ..base import Provider
from .convert import build_config, build_contents, model_name
from .errors import map_gemini_error, sdk_errors
from .reply import GeminiStreamState, response_from_generate

__all__ = ["API_VERSION", "GeminiAdapter", "map_gemini_error"]

API_VERSION = "v1beta"

_Arguments = dict[str, Any]
_Reply = types.GenerateContentResponse


def _http_options(timeout: float) -> dict[str, Any]:
    """Per-call options: the timeout in milliseconds, and no SDK retries."""
    return {"timeout": max(1, math.ceil(timeout * 1000)), "retry_options": {"attempts": 1}}


@functools.cache
def _tls(cafile: str, capath: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile, capath=capath)


def _tls_context() -> ssl.SSLContext:
    """The TLS context every client of this process shares, as google-genai builds its
    aiohttp one (``certifi``, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``).

    Left to itself, each ``genai.Client`` loads the CA bundle up to three times (httpx,
    aiohttp, websockets): tens of milliseconds of CPU for every event loop's client, on
    that loop. A context holds no loop or connection state, so one serves every client.
    """
    return _tls(os.environ.get("SSL_CERT_FILE", certifi.where()), os.environ.get("SSL_CERT_DIR"))


class GeminiAdapter(SDKAdapter[genai.Client, genai.Client, _Arguments, _Reply, _Reply]):
    """A :class:`~resilient_llm.providers.ChatAdapter` over ``google-genai``."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(provider)
        # Now, not on the caller's loop with its first async client: the TLS context, and
        # the modules google-genai and httpx2 import when their first client is made.
        _tls_context()
        self._client("warm-up").close()

    def _client(self, key: str) -> genai.Client:
        tls = _tls_context()
        options = types.HttpOptions(
            base_url=self.provider.base_url,
            api_version=API_VERSION,
            retry_options=types.HttpRetryOptions(attempts=1),
            # httpx takes it as ``verify``, aiohttp and websockets as ``ssl``; each client
            # keeps only the arguments it knows.
            client_args={"verify": tls, "transport": watched_transport(tls, _sync_http())},
            async_client_args={"verify": tls, "ssl": tls},
        )
        return genai.Client(vertexai=False, api_key=key, http_options=options)

    def sync_client(self, key: str) -> genai.Client:
        return self._client(key)

    def async_client(self, key: str) -> genai.Client:
        return self._client(key)

    async def close_async_client(self, client: genai.Client) -> None:
        await client.aio.aclose()
        client.close()  # each per-loop Client also made a sync pool

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        return sdk_errors()

    def map_error(self, exc: BaseException, route: str, secret: Secret | None) -> ResilientLLMError:
        return map_gemini_error(exc, route, secret)

    def prepare(self, request: ChatRequest, timeout: float, *, stream: bool) -> _Arguments:
        model = model_name(request, self.provider)
        system, contents = build_contents(request.messages, model)
        caps = capabilities_for(model, self.provider.capabilities)
        config = build_config(
            request,
            system,
            _http_options(timeout),
            model=model,
            reasoning=caps.reasoning,
            passthrough=config_fields(passthrough(self.provider, request)),
        )
        return {"model": model, "contents": contents, "config": config}

    def call(
        self, client: genai.Client, prepared: _Arguments, timeout: float
    ) -> tuple[_Reply, object]:
        reply = client.models.generate_content(**prepared)
        return reply, _headers(reply)

    async def acall(
        self, client: genai.Client, prepared: _Arguments, timeout: float
    ) -> tuple[_Reply, object]:
        reply = await client.aio.models.generate_content(**prepared)
        return reply, _headers(reply)

    def parse(
        self,
        reply: _Reply,
        headers: Mapping[str, str] | None,
        request: ChatRequest,
        prepared: _Arguments,
    ) -> ChatResponse:
        return response_from_generate(reply, self.provider.name, prepared["model"], headers)

    def open_stream(
        self, client: genai.Client, prepared: _Arguments, timeout: float
    ) -> Iterator[_Reply]:
        return client.models.generate_content_stream(**prepared)

    async def aopen_stream(
        self, client: genai.Client, prepared: _Arguments, timeout: float
    ) -> AsyncIterator[_Reply]:
        return await client.aio.models.generate_content_stream(**prepared)

    def stream_state(self, request: ChatRequest, prepared: _Arguments) -> GeminiStreamState:
        return GeminiStreamState(self.provider.name, prepared["model"])

    def stream_headers(self, events: object, first: _Reply) -> object:
        # google-genai puts the response's headers on each chunk it yields.
        return _headers(first)


# Config fields that steer the SDK or the adapter, not the request: never passed through.
_NOT_PASSED = frozenset(
    {"http_options", "should_return_http_response", "automatic_function_calling"}
)


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


def config_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """A route's passthrough parameters as ``GenerateContentConfig`` fields (snake_case,
    or the API's camelCase). A name that is no field of the installed SDK's config, or
    one the adapter owns, or a value the SDK's model refuses, is a ``ConfigurationError``
    naming it: never silently dropped, never a failed call.
    """
    known = types.GenerateContentConfig.model_fields
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = _snake(key)
        if name in _NOT_PASSED:
            raise ConfigurationError(f"gemini option {key!r} is set by resilient-llm itself")
        if name not in known:
            raise ConfigurationError(
                f"gemini option {key!r} is not a GenerateContentConfig field of google-genai "
                f"{genai.__version__} (such as thinking_config, safety_settings, top_k, "
                "response_modalities, cached_content, labels)"
            )
        out[name] = value
    try:
        types.GenerateContentConfig.model_validate(out)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(f"gemini options do not validate: {exc}") from None
    return out


def _headers(reply: object) -> object:
    return getattr(getattr(reply, "sdk_http_response", None), "headers", None)


@functools.cache
def _sync_http() -> Any:
    """The HTTP library of google-genai's sync client: httpx2 from its 3.x releases, httpx
    before (a transport must be of the client's own library)."""
    import httpx2

    major = int(genai.__version__.split(".", 1)[0])
    if major >= 3:
        return httpx2
    import httpx

    return httpx
