"""The "echo" kind's adapter, on the shared SDK adapter base; httpx is its "SDK".

Everything the kind needs is here and in :data:`SPEC`: no file of the engine names it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx

from resilient_llm.errors import (
    AuthError,
    BadRequest,
    ProviderUnavailable,
    RateLimited,
    ResilientLLMError,
)
from resilient_llm.messages import ChatChunk, ChatRequest, ChatResponse, Usage
from resilient_llm.providers import Provider, ProviderSpec, SDKAdapter
from resilient_llm.secrets import Secret

_Body = dict[str, Any]
_Event = dict[str, Any]


class _Lines:
    """A streamed response read as one JSON object a line (the sync "SDK stream")."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> _Event:
        line = ""
        while not line:
            line = next(self._lines)
        event: _Event = json.loads(line)
        return event

    def close(self) -> None:
        self.response.close()


class _ALines:
    """The async twin of :class:`_Lines`."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    def __aiter__(self) -> _ALines:
        return self

    async def __anext__(self) -> _Event:
        line = ""
        while not line:
            line = await anext(self._lines)
        event: _Event = json.loads(line)
        return event

    async def aclose(self) -> None:
        await self.response.aclose()


class _State:
    def __init__(self, route: str, model: str) -> None:
        self.route, self.model, self.done = route, model, False

    def feed(self, event: _Event) -> list[ChatChunk]:
        if event.get("done"):
            self.done = True
            usage = Usage(event["usage"]["input"], event["usage"]["output"])
            return [
                ChatChunk(provider=self.route, model=self.model, usage=usage, finish_reason="stop")
            ]
        return [ChatChunk(delta=event["delta"], provider=self.route, model=self.model)]

    def finish(self) -> list[ChatChunk]:
        if not self.done:
            raise ProviderUnavailable(f"{self.route}: the stream ended early", provider=self.route)
        return []


class EchoAdapter(SDKAdapter[httpx.Client, httpx.AsyncClient, _Body, _Body, _Event]):
    def sync_client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=str(self.provider.base_url), headers=_auth(key))

    def async_client(self, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=str(self.provider.base_url), headers=_auth(key))

    async def close_async_client(self, client: httpx.AsyncClient) -> None:
        await client.aclose()

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        return (httpx.HTTPError, json.JSONDecodeError, KeyError)

    def map_error(self, exc: BaseException, route: str, secret: Secret | None) -> ResilientLLMError:
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            text = f"{route}: HTTP {status}"
            retry = exc.response.headers.get("retry-after")
            after = float(retry) if retry is not None else None
            if status == 429:
                return RateLimited(text, provider=route, status_code=status, retry_after=after)
            if status in (401, 403):
                return AuthError(text, provider=route, status_code=status)
            if status >= 500:
                return ProviderUnavailable(
                    text, provider=route, status_code=status, retry_after=after
                )
            return BadRequest(text, provider=route, status_code=status)
        return ProviderUnavailable(f"{route}: {type(exc).__name__}", provider=route)

    def prepare(self, request: ChatRequest, timeout: float, *, stream: bool) -> _Body:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        model = request.model or self.provider.model
        return {"model": model, "messages": messages, "stream": stream}

    def call(self, client: httpx.Client, prepared: _Body, timeout: float) -> tuple[_Body, object]:
        response = client.post("/echo", json=prepared, timeout=timeout)
        response.raise_for_status()
        body: _Body = response.json()
        return body, response.headers

    async def acall(
        self, client: httpx.AsyncClient, prepared: _Body, timeout: float
    ) -> tuple[_Body, object]:
        response = await client.post("/echo", json=prepared, timeout=timeout)
        response.raise_for_status()
        body: _Body = response.json()
        return body, response.headers

    def parse(
        self, reply: _Body, headers: Mapping[str, str] | None, request: ChatRequest, prepared: _Body
    ) -> ChatResponse:
        usage = Usage(reply["usage"]["input"], reply["usage"]["output"])
        return ChatResponse(
            reply["content"], self.provider.name, reply["model"], usage=usage, finish_reason="stop"
        )

    def open_stream(
        self, client: httpx.Client, prepared: _Body, timeout: float
    ) -> Iterator[_Event]:
        response = client.send(
            client.build_request("POST", "/echo", json=prepared, timeout=timeout), stream=True
        )
        if response.is_error:
            response.read()
            response.close()
            response.raise_for_status()
        return _Lines(response)

    async def aopen_stream(
        self, client: httpx.AsyncClient, prepared: _Body, timeout: float
    ) -> AsyncIterator[_Event]:
        request = client.build_request("POST", "/echo", json=prepared, timeout=timeout)
        response = await client.send(request, stream=True)
        if response.is_error:
            await response.aread()
            await response.aclose()
            response.raise_for_status()
        return _ALines(response)

    def stream_state(self, request: ChatRequest, prepared: _Body) -> _State:
        return _State(self.provider.name, prepared["model"])


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _build(provider: Provider) -> EchoAdapter:
    return EchoAdapter(provider)


SPEC = ProviderSpec(
    adapter=_build,
    sdk="httpx",
    install="httpx",
    env_keys=("ECHO_API_KEY",),
    telemetry_name="echo",
    langsmith_name="echo",
)
