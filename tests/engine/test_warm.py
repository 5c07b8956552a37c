"""Adapters are built off the caller's event loop: by ``awarm()``, or by a cold async call.

Building one imports its SDK and can take a second, during which every task on the loop
would freeze. These tests check where the build runs (which thread) and how often, never
how long it takes.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from resilient_llm import Provider, ResilientLLM
from resilient_llm.providers import ChatAdapter, create_adapter

from .conftest import ANSWER, QUESTION, RETRY, Bench


class _Recorder:
    """An adapter factory that notes which thread built which route."""

    def __init__(self) -> None:
        self.built: list[tuple[str, int]] = []

    def __call__(self, provider: Provider) -> ChatAdapter:
        self.built.append((provider.name, threading.get_ident()))
        return create_adapter(provider)


def _engine(bench: Bench, factory: _Recorder, *providers: Provider) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers), adapter_factory=factory, retry=RETRY, timeout=5.0, jitter_seed=0
    )
    bench.engines.append(llm)
    return llm


def test_awarm_builds_every_route_once_off_the_loop(bench: Bench) -> None:
    factory = _Recorder()
    first, second = bench.route("openai", "first"), bench.route("gemini", "second")
    llm = _engine(bench, factory, first, second)

    async def warm_then_call() -> tuple[int, str]:
        await llm.awarm()
        await llm.awarm()  # a second warm-up finds every route built
        reply = await llm.achat(QUESTION)
        return threading.get_ident(), reply.content

    loop_thread, content = asyncio.run(warm_then_call())
    assert content == ANSWER
    assert [name for name, _ in factory.built] == [first.name, second.name]
    assert all(thread != loop_thread for _, thread in factory.built)


@pytest.mark.parametrize("mode", ["achat", "astream"])
def test_a_cold_async_call_builds_its_route_in_a_worker_thread(bench: Bench, mode: str) -> None:
    factory = _Recorder()
    primary, fallback = bench.route("anthropic", "primary"), bench.route("openai", "fallback")
    bench.script(primary, "server_error", "server_error")  # the call fails over to a cold route
    llm = _engine(bench, factory, primary, fallback)

    async def call() -> tuple[int, str]:
        if mode == "achat":
            text = (await llm.achat(QUESTION)).content
        else:
            text = "".join([chunk.delta async for chunk in llm.astream(QUESTION)])
        return threading.get_ident(), text

    loop_thread, text = asyncio.run(call())
    assert text == ANSWER
    assert [name for name, _ in factory.built] == [primary.name, fallback.name]
    assert all(thread != loop_thread for _, thread in factory.built)


def test_warm_builds_every_route_before_the_first_call(bench: Bench) -> None:
    factory = _Recorder()
    only = bench.route("gemini", "only")
    llm = _engine(bench, factory, only)
    llm.warm()
    assert [name for name, _ in factory.built] == [only.name]
    assert llm.chat(QUESTION).content == ANSWER
    assert len(factory.built) == 1
