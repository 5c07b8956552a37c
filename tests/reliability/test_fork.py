"""An engine used before ``os.fork()`` serves the parent and every child, each its own replies.

Prefork servers (gunicorn ``--preload``, Celery) build the engine and often make a call
before forking their workers. The children must not read replies from the parent's HTTP
connections, and must not block on a lock some other thread of the parent held at the
fork. Every process here checks that each reply answers its own request (the chaos
provider echoes the prompt, after a random delay, so requests on a shared connection would
cross); children report through a pipe and their exit code.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Iterator

import pytest

import resilient_llm.policies.tokens

# The SDKs are imported once, here, not inside a first attempt (adapters import lazily).
import resilient_llm.providers
import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter
from resilient_llm import Provider, RateLimit, ResilientLLM, RetryPolicy
from resilient_llm.testing.chaos import ChaosServer, Fault

from .forking import calls, collect, engine_locks, fork, report

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")

KINDS = ("openai", "anthropic", "gemini")
CHILDREN = 3
CALLS = 12  # per process (and per background thread of the parent)


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _engine(server: ChaosServer, kind: str) -> ResilientLLM:
    provider = Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=server.base_url(kind),
        api_key="test-key",
        rate_limit=RateLimit(requests_per_minute=100_000),
        max_concurrency=64,
    )
    return ResilientLLM([provider], retry=RetryPolicy(max_retries=0), timeout=30)


def _jitter(server: ChaosServer, kind: str, count: int, seed: int) -> None:
    """Answer the next ``count`` requests each after a random delay, so they interleave."""
    rng = random.Random(seed)
    server.script(kind, *[Fault("ok", delay=rng.uniform(0.0, 0.02)) for _ in range(count)])


@pytest.mark.parametrize("busy", [0, 2], ids=["idle", "busy"])
@pytest.mark.parametrize("mode", ["chat", "achat"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_process_gets_its_own_replies_after_afork(
    server: ChaosServer, kind: str, mode: str, busy: int
) -> None:
    """``busy``: that many other threads of the parent are inside calls as it forks."""
    llm = _engine(server, kind)
    total = CALLS * (CHILDREN + 4) + 3
    _jitter(server, kind, total, seed=len(kind))
    # A call before the fork leaves the sync client's pool with an open connection.
    assert llm.chat("warm up").content == "Echo: warm up"
    # The SDKs import parts of their async stack on first use: done before threads start,
    # since a module import another thread is inside at a fork is Python's own hazard.
    asyncio.run(llm.achat("warm up"))
    background: list[tuple[int, list[str]]] = []
    threads = [
        threading.Thread(
            target=lambda n=n: background.append(calls(llm, mode, f"parent-thread-{n}", CALLS))
        )
        for n in range(busy)
    ]
    for thread in threads:
        thread.start()
    children = [
        fork(lambda c=c: report(calls(llm, mode, f"child-{c}", CALLS))) for c in range(CHILDREN)
    ]
    own = calls(llm, mode, "parent", CALLS)
    reports = [collect(pid, read) for pid, read in children]
    for thread in threads:
        thread.join()
    # The children have exited: the parent's connections still serve it.
    after = calls(llm, mode, "parent after", 2)
    llm.close()

    assert reports == [{"wrong": 0, "errors": [], "exit": 0}] * CHILDREN
    assert own == (0, [])
    assert background == [(0, [])] * busy
    assert after == (0, [])


@pytest.mark.parametrize("kind", KINDS)
def test_a_child_never_blocks_on_a_lock_held_at_thefork(server: ChaosServer, kind: str) -> None:
    """Another thread holds every lock of the engine (limiter, breaker, routes, bulkhead,
    clients, the SDK import, the tokenizer) at the moment of the fork; the child's calls
    still go through, and so do the parent's once the thread lets go."""
    llm = _engine(server, kind)
    llm.chat("warm up")
    asyncio.run(llm.achat("warm up"))
    locks = engine_locks([llm, resilient_llm.policies.tokens, resilient_llm.providers])
    assert len(locks) >= 8, "the walk reaches the engine's locks"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait()
        for lock in locks:
            lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        pid, read = fork(
            lambda: {
                "chat": llm.chat("from the child").content,
                "achat": asyncio.run(llm.achat("from the child, async")).content,
            }
        )
    finally:
        release.set()
        holder.join()
    report = collect(pid, read)
    assert report == {
        "chat": "Echo: from the child",
        "achat": "Echo: from the child, async",
        "exit": 0,
    }
    assert llm.chat("parent again").content == "Echo: parent again"
    llm.close()
