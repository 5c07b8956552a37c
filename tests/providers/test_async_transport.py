"""The openai and anthropic async clients ride aiohttp, and fail just as the sync ones do.

Nothing is mocked: the transport is read off the SDK client the adapter really uses, and
every fault goes through the real SDKs to the chaos server.
"""

from __future__ import annotations

import asyncio
import gc
import re
import ssl
import types
import warnings
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx2
import pytest

from resilient_llm.errors import ConfigurationError, ResilientLLMError
from resilient_llm.messages import ChatRequest, Message
from resilient_llm.providers import ChatAdapter, create_adapter
from resilient_llm.providers._common import async_http_client, unavailable_from_transport
from resilient_llm.providers.base import Provider
from resilient_llm.testing.chaos import ChaosServer, Fault

from .conftest import Route, _route

FRANCE = ChatRequest((Message("user", "What is the capital of France?"),))
PARIS = "The capital of France is Paris."


@pytest.fixture(params=["openai", "anthropic"])
def sdk_route(request: pytest.FixtureRequest, server: ChaosServer) -> Iterator[Route]:
    yield from _route(server, request.param)


async def _client(adapter: ChatAdapter) -> Any:
    return await adapter._clients.aget()  # type: ignore[attr-defined]


def _transport(client: Any) -> Any:
    # Both SDKs keep their httpx2 client as ``_client``; its transport does the I/O.
    return client._client._transport


def test_the_async_client_rides_aiohttp_by_default(sdk_route: Route) -> None:
    adapter = sdk_route.adapter()

    async def main() -> aiohttp.ClientSession:
        assert (await adapter.achat(FRANCE, timeout=5)).content == PARIS
        transport = _transport(await _client(adapter))
        assert type(transport).__name__ == "AiohttpTransport"
        session = transport.client
        assert isinstance(session, aiohttp.ClientSession)
        assert not session.closed
        return session

    session = asyncio.run(main())
    assert session.closed, "the loop's end closed the session, and with it its sockets"


def test_each_loop_s_client_shares_one_verifying_tls_context(sdk_route: Route) -> None:
    adapter = sdk_route.adapter()

    async def context() -> ssl.SSLContext:
        await adapter.achat(FRANCE, timeout=5)
        return _transport(await _client(adapter)).ssl_context  # type: ignore[no-any-return]

    first, second = asyncio.run(context()), asyncio.run(context())
    assert first is second, "a new loop's client does not reload the CA bundle"
    assert first.verify_mode is ssl.CERT_REQUIRED
    assert first.check_hostname


def test_async_transport_httpx_opts_out(sdk_route: Route) -> None:
    adapter = sdk_route.adapter(options={"async_transport": "httpx"})

    async def main() -> None:
        assert (await adapter.achat(FRANCE, timeout=5)).content == PARIS
        assert isinstance(_transport(await _client(adapter)), httpx2.AsyncHTTPTransport)

    asyncio.run(main())


def test_closing_inside_a_running_loop_closes_the_session(sdk_route: Route) -> None:
    adapter = sdk_route.adapter()

    async def main() -> None:
        await adapter.achat(FRANCE, timeout=5)
        session = _transport(await _client(adapter)).client
        adapter.close()
        # The dropped client is closed by a task the loop schedules: give it a few turns.
        for _ in range(100):
            if session.closed:
                break
            await asyncio.sleep(0)
        assert session.closed
        assert (await adapter.achat(FRANCE, timeout=5)).content == PARIS

    asyncio.run(main())


def test_no_unclosed_session_is_left_behind(sdk_route: Route) -> None:
    adapter = sdk_route.adapter()

    async def calls() -> None:
        await adapter.achat(FRANCE, timeout=5)
        chunks = adapter.astream(FRANCE, timeout=5)
        assert (await anext(chunks)).delta
        await chunks.aclose()  # type: ignore[attr-defined]

    # What earlier tests on this worker left for the collector (sessions of loops they
    # closed on purpose) is collected first, so only this adapter's leftovers are seen.
    gc.collect()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            asyncio.run(calls())
        adapter.close()
        gc.collect()
    assert [w for w in seen if "Unclosed" in str(w.message)] == []


# fault -> (what the chaos server does, the attempt's timeout); None: a closed port
FAULTS: dict[str, tuple[Fault | None, float]] = {
    "reset": (Fault("reset"), 5),
    "truncate": (Fault("truncate"), 5),
    "malformed": (Fault("malformed"), 5),
    "hang": (Fault("hang", delay=10), 0.5),
    "slow_first_token": (Fault("slow_first_token", delay=3), 0.5),
    "refused": (None, 2),
    "overloaded": (Fault("overloaded"), 5),
    "stream_error": (Fault("stream_error"), 5),
}


def _outcome(adapter: ChatAdapter, mode: str, timeout: float) -> tuple[object, ...]:
    """``("ok",)``, or the error's type, status and message without the transport's
    exception name (httpx2's and aiohttp's differ; what they say must not)."""

    async def drain() -> None:
        async for _ in adapter.astream(FRANCE, timeout):
            pass

    try:
        if mode == "chat":
            adapter.chat(FRANCE, timeout)
        elif mode == "stream":
            list(adapter.stream(FRANCE, timeout))
        elif mode == "achat":
            asyncio.run(adapter.achat(FRANCE, timeout))
        else:
            asyncio.run(drain())
    except ResilientLLMError as error:
        return type(error), error.status_code, re.sub(r" \(\w+\)$", "", error.message)
    return ("ok",)


@pytest.mark.parametrize(("sync_mode", "async_mode"), [("chat", "achat"), ("stream", "astream")])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_maps_as_on_the_sync_path(
    sdk_route: Route, fault: str, sync_mode: str, async_mode: str
) -> None:
    scripted, timeout = FAULTS[fault]
    if scripted is None:
        url = sdk_route.server.base_url(sdk_route.prefix)
        provider = Provider(
            sdk_route.kind,  # type: ignore[arg-type]
            "m",
            name=f"route-{sdk_route.prefix}",
            base_url=url.replace(sdk_route.server.url, "http://127.0.0.1:9"),
            api_key="k",
        )
        adapter = create_adapter(provider)
        sdk_route.adapters.append(adapter)
    else:
        sdk_route.script(scripted, scripted)
        adapter = sdk_route.adapter()
    assert _outcome(adapter, async_mode, timeout) == _outcome(adapter, sync_mode, timeout)


@pytest.mark.parametrize("value", ["curl", "HTTPX", "", 3, None])
def test_a_bad_async_transport_names_the_option(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"Provider\.options\['async_transport'\]"):
        Provider("openai", "m", options={"async_transport": value})


def test_gemini_takes_no_async_transport() -> None:
    with pytest.raises(ConfigurationError, match="'openai' and 'anthropic' only"):
        Provider("gemini", "m", options={"async_transport": "aiohttp"})


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("value", ["aiohttp", "httpx"])
def test_both_async_transports_are_accepted(kind: str, value: str) -> None:
    provider = Provider(kind, "m", options={"async_transport": value})  # type: ignore[arg-type]
    assert provider.options == {"async_transport": value}


def test_an_sdk_without_an_aiohttp_transport_keeps_its_default() -> None:
    def missing_extra(**_kwargs: object) -> None:
        raise RuntimeError("To use the aiohttp client you must have installed the extra")

    provider = Provider("openai", "m")
    assert async_http_client(provider, types.SimpleNamespace()) is None
    no_extra = types.SimpleNamespace(DefaultAioHttpClient=missing_extra)
    assert async_http_client(provider, no_extra) is None


def test_the_aiohttp_error_underneath_names_the_failure() -> None:
    # openai's aiohttp transport re-raises a server hanging up as a ConnectTimeout.
    wrapped = httpx2.ConnectTimeout("")
    wrapped.__cause__ = aiohttp.ServerDisconnectedError()
    error = unavailable_from_transport("r", wrapped)
    assert error.message == "r: the connection broke mid-reply (ServerDisconnectedError)"
    bare = unavailable_from_transport("r", aiohttp.ServerDisconnectedError())
    assert bare.message == error.message
