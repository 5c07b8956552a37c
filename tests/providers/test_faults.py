"""Every chaos fault, through each SDK, maps to the right engine error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from resilient_llm.errors import (
    AuthError,
    BadRequest,
    ContextLengthExceeded,
    ProviderUnavailable,
    RateLimited,
    ResilientLLMError,
)
from resilient_llm.messages import ChatChunk, ChatRequest, Message
from resilient_llm.providers import ChatAdapter
from resilient_llm.testing.chaos import Fault

from .conftest import Route

FRANCE = ChatRequest((Message("user", "What is the capital of France?"),))
CANARY = "sk-canary-123"
Mode = Callable[[ChatAdapter, float], object]


def _chat(adapter: ChatAdapter, timeout: float) -> object:
    return adapter.chat(FRANCE, timeout)


def _achat(adapter: ChatAdapter, timeout: float) -> object:
    return asyncio.run(adapter.achat(FRANCE, timeout))


def _stream(adapter: ChatAdapter, timeout: float) -> object:
    return list(adapter.stream(FRANCE, timeout))


def _astream(adapter: ChatAdapter, timeout: float) -> object:
    async def run() -> list[ChatChunk]:
        return [chunk async for chunk in adapter.astream(FRANCE, timeout)]

    return asyncio.run(run())


def consume(adapter: ChatAdapter, mode: str, received: list[ChatChunk]) -> None:
    """Iterate a stream, keeping every chunk that arrived before any failure."""

    async def drain() -> None:
        async for chunk in adapter.astream(FRANCE, 5):
            received.append(chunk)

    if mode == "stream":
        received.extend(adapter.stream(FRANCE, 5))  # extend keeps items seen before a raise
    else:
        asyncio.run(drain())


MODES = {"chat": _chat, "achat": _achat, "stream": _stream, "astream": _astream}

# fault -> (error class, HTTP status per provider kind; None: no status)
STATUS_FAULTS: dict[str, tuple[type[ResilientLLMError], dict[str, int]]] = {
    "overloaded": (ProviderUnavailable, {"openai": 503, "anthropic": 529, "gemini": 503}),
    "server_error": (ProviderUnavailable, {"openai": 500, "anthropic": 500, "gemini": 500}),
    "unavailable": (ProviderUnavailable, {"openai": 503, "anthropic": 503, "gemini": 503}),
    "bad_request": (BadRequest, {"openai": 400, "anthropic": 400, "gemini": 400}),
    "context_length": (ContextLengthExceeded, {"openai": 400, "anthropic": 400, "gemini": 400}),
    "auth": (AuthError, {"openai": 401, "anthropic": 401, "gemini": 401}),
    "not_found": (AuthError, {"openai": 404, "anthropic": 404, "gemini": 404}),
}


def raised(route: Route, mode: str, fault: Fault | str, timeout: float = 5.0) -> ResilientLLMError:
    route.script(fault)
    adapter = route.adapter(api_key=CANARY)
    with pytest.raises(ResilientLLMError) as info:
        MODES[mode](adapter, timeout)
    error = info.value
    assert error.provider == f"route-{route.prefix}"
    assert error.__cause__ is not None, "the SDK's exception stays as __cause__"
    assert CANARY not in str(error)
    assert CANARY not in repr(error)
    assert CANARY not in repr(adapter)
    return error


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("fault", list(STATUS_FAULTS))
def test_status_faults(route: Route, fault: str, mode: str) -> None:
    kind, statuses = STATUS_FAULTS[fault]
    error = raised(route, mode, fault)
    assert type(error) is kind
    assert error.status_code == statuses[route.kind]
    assert error.retryable is (kind is ProviderUnavailable)
    assert len(error.message) < 500


@pytest.mark.parametrize("mode", list(MODES))
def test_rate_limit_carries_the_scripted_retry_after(route: Route, mode: str) -> None:
    error = raised(route, mode, Fault("rate_limit", retry_after=2.5))
    assert type(error) is RateLimited
    assert (error.status_code, error.retry_after, error.retryable) == (429, 2.5, True)


def test_overloaded_retry_after_is_kept(route: Route) -> None:
    error = raised(route, "chat", Fault("overloaded", retry_after=7))
    assert type(error) is ProviderUnavailable
    assert error.retry_after == 7.0


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("fault", ["reset", "malformed", "truncate"])
def test_broken_replies_are_unavailable(route: Route, fault: str, mode: str) -> None:
    error = raised(route, mode, fault)
    assert type(error) is ProviderUnavailable
    assert error.retryable


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_truncated_stream_raises_while_iterating(route: Route, mode: str) -> None:
    route.script("truncate")
    received: list[ChatChunk] = []
    with pytest.raises(ProviderUnavailable):
        consume(route.adapter(), mode, received)
    assert received, "the first half of the stream arrived before the failure"
    assert all(c.finish_reason is None for c in received), "never a clean end"


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_in_band_stream_error_after_the_first_chunk(route: Route, mode: str) -> None:
    route.script("stream_error")
    received: list[ChatChunk] = []
    with pytest.raises(ProviderUnavailable) as info:
        consume(route.adapter(), mode, received)
    # Anthropic's first body frame opens a content block (no text yet).
    assert received or route.kind == "anthropic"
    expected = {"openai": 500, "anthropic": 529, "gemini": 503}[route.kind]
    assert info.value.status_code == expected
    assert "in-band" in info.value.message or route.kind == "gemini"


@pytest.mark.parametrize("mode", list(MODES))
def test_hang_times_out_within_the_timeout(route: Route, mode: str) -> None:
    # The hang lasts a minute: only the SDK's own 0.5 s timeout can have ended the call
    # with a timeout, however busy the machine (a hang that ran out would be a reset).
    error = raised(route, mode, Fault("hang", delay=60), timeout=0.5)
    assert type(error) is ProviderUnavailable
    assert "timed out" in error.message or "timeout" in error.message.lower(), error.message


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_slow_first_token_past_the_timeout(route: Route, mode: str) -> None:
    error = raised(route, mode, Fault("slow_first_token", delay=60), timeout=0.5)
    assert type(error) is ProviderUnavailable


def test_slow_first_token_within_the_timeout_is_fine(route: Route) -> None:
    route.script(Fault("slow_first_token", delay=0.2))
    chunks = list(route.adapter().stream(FRANCE, 5))
    assert "".join(c.delta for c in chunks) == "The capital of France is Paris."


def test_the_canary_key_never_shows(route: Route) -> None:
    adapter = route.adapter(api_key=CANARY)
    reply = adapter.chat(FRANCE, 5)
    chunks = list(adapter.stream(FRANCE, 5))
    for shown in (str(reply), repr(reply), repr(chunks), repr(adapter), str(adapter)):
        assert CANARY not in shown


def test_a_connection_refused_is_unavailable(route: Route) -> None:
    adapter = route.adapter(name="down")
    port_url = route.server.base_url(route.prefix).replace(route.server.url, "http://127.0.0.1:9")
    from resilient_llm.providers import create_adapter
    from resilient_llm.providers.base import Provider

    down = create_adapter(Provider(route.kind, "m", base_url=port_url, api_key="k"))  # type: ignore[arg-type]
    route.adapters.append(down)
    for mode in MODES.values():
        with pytest.raises(ProviderUnavailable):
            mode(down, 2)
    del adapter
