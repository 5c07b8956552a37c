"""A fourth provider kind, added through the registry alone.

The "echo" kind lives in this folder (a local server, an adapter on the shared base, its
spec); the only other thing it takes is ``register_provider("echo", SPEC)``. Then an engine
mixes it with a built-in kind: the four call modes, a failover from echo to OpenAI, the
snapshot, quota headers fed back, and events.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
from collections.abc import Iterator

import pytest

from resilient_llm import ChatChunk, Provider, ResilientLLM, RetryPolicy
from resilient_llm.errors import ConfigurationError
from resilient_llm.events import AttemptFinished, Event, Failover
from resilient_llm.providers import (
    ProviderSpec,
    create_adapter,
    known_kinds,
    register_provider,
)
from resilient_llm.providers.registry import _unregister
from resilient_llm.testing.chaos import ChaosServer, Plan

from .adapter import SPEC, EchoAdapter
from .server import REMAINING, EchoServer

_TAGS = itertools.count()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    register_provider("echo", SPEC)
    try:
        with EchoServer() as server:
            yield server
    finally:
        # Other tests in this worker see the built-in kinds only.
        _unregister("echo")


def _echo_route(echo: EchoServer) -> Provider:
    return Provider("echo", model="e1", base_url=echo.base_url, api_key="echo-key")


def _openai_route(server: ChaosServer) -> Provider:
    prefix = f"openai-echo{next(_TAGS)}"
    server.set_plan(prefix, Plan())
    return Provider(
        "openai", model="chaos-model", base_url=server.base_url(prefix), api_key="k", name=prefix
    )


def _modes(llm: ResilientLLM) -> dict[str, tuple[str, str]]:
    """Each mode's (text, route) for one question."""

    def joined(chunks: list[ChatChunk]) -> tuple[str, str]:
        return "".join(c.delta for c in chunks), chunks[0].provider

    async def both() -> tuple[tuple[str, str], tuple[str, str]]:
        reply = await llm.achat("hello there")
        chunks = [c async for c in llm.astream("hello there")]
        return (reply.content, reply.provider), joined(chunks)

    reply = llm.chat("hello there")
    streamed = joined(list(llm.stream("hello there")))
    achat, astream = asyncio.run(both())
    return {
        "chat": (reply.content, reply.provider),
        "stream": streamed,
        "achat": achat,
        "astream": astream,
    }


def test_a_registered_kind_serves_every_mode(echo: EchoServer, server: ChaosServer) -> None:
    assert "echo" in known_kinds()
    events: list[Event] = []
    llm = ResilientLLM([_echo_route(echo), _openai_route(server)], on_event=events.append)
    try:
        answers = _modes(llm)
    finally:
        llm.close()
    assert {mode: text.strip() for mode, (text, _) in answers.items()} == dict.fromkeys(
        answers, "echo: hello there"
    )
    assert {route for _, route in answers.values()} == {"echo"}
    assert echo.calls == 4
    assert set(echo.keys) == {"Bearer echo-key"}
    assert [e.outcome for e in events if isinstance(e, AttemptFinished)] == ["ok"] * 4
    assert not [e for e in events if isinstance(e, Failover)]
    # The quota header, parsed by the base adapter, reached the route.
    quota = llm.snapshot()["echo"].provider_quota
    assert quota is not None
    assert quota.remaining_requests == int(REMAINING)


def test_quota_comes_on_the_reply_and_the_first_chunk(echo: EchoServer) -> None:
    adapter = create_adapter(_echo_route(echo))
    assert isinstance(adapter, EchoAdapter)
    try:
        request = ResilientLLM([_echo_route(echo)]).request("hi")
        reply = adapter.chat(request, timeout=5)
        assert reply.quota is not None
        assert reply.quota.remaining_requests == int(REMAINING)
        chunks = list(adapter.stream(request, timeout=5))
        assert [c.quota is not None for c in chunks] == [True] + [False] * (len(chunks) - 1)
    finally:
        adapter.close()


def test_a_failing_echo_fails_over_to_openai(echo: EchoServer, server: ChaosServer) -> None:
    echo.fail_with = 503
    events: list[Event] = []
    llm = ResilientLLM(
        [_echo_route(echo), _openai_route(server)],
        retry=RetryPolicy(max_retries=0),
        on_event=events.append,
    )
    try:
        answers = _modes(llm)
    finally:
        llm.close()
    assert {route for _, route in answers.values()} != {"echo"}
    assert all(route.startswith("openai-echo") for _, route in answers.values())
    failovers = [e for e in events if isinstance(e, Failover)]
    assert [e.route for e in failovers[:1]] == ["echo"]
    assert all(e.route == "echo" for e in failovers)
    failed = [e for e in events if isinstance(e, AttemptFinished) and e.route == "echo"]
    assert failed
    assert {e.status_code for e in failed} == {503}
    snapshot = llm.snapshot()
    assert set(snapshot.to_dict()) == {"echo", llm.providers[1].name}
    assert "echo" in str(snapshot)
    assert snapshot["echo"].breaker.failures >= 1


def test_an_unknown_kind_names_the_known_ones(echo: EchoServer) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Provider("parrot", model="p1")
    message = str(raised.value)
    for kind in ("openai", "anthropic", "gemini", "echo"):
        assert repr(kind) in message
    assert "register_provider" in message


def test_a_kind_not_registered_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"\['openai', 'anthropic', 'gemini'\]"):
        Provider("echo", model="e1")


def test_a_built_in_kind_cannot_be_replaced() -> None:
    with pytest.raises(ConfigurationError, match="built-in"):
        register_provider("openai", SPEC)


def test_a_kind_whose_sdk_is_missing_names_what_to_install() -> None:
    def needs_its_sdk(provider: Provider) -> EchoAdapter:
        importlib.import_module("resilient_llm_ghost_sdk")
        raise AssertionError("imported a module that does not exist")

    register_provider(
        "ghost",
        ProviderSpec(adapter=needs_its_sdk, sdk="resilient_llm_ghost_sdk", install="ghost-sdk"),
    )
    try:
        with pytest.raises(ConfigurationError, match=r"pip install 'ghost-sdk'"):
            create_adapter(Provider("ghost", model="g1"))
    finally:
        _unregister("ghost")
