"""A RedisState engine used before ``os.fork()`` keeps working in the child and the parent.

The route's turn lock is renewed in the child (another thread may hold it at the fork) and
redis-py gives the child its own connections, so neither process reads the other's replies
from Redis. Each process checks every reply it gets; the child reports through a pipe.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

import resilient_llm.providers.openai.adapter  # noqa: F401 - the SDK imported once, not in a call
from resilient_llm import Provider, RateLimit, ResilientLLM, RetryPolicy
from resilient_llm.state.redis import RedisState
from resilient_llm.testing.chaos import ChaosServer

from ..reliability.forking import calls, collect, engine_locks, fork, report

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")


def test_a_redis_engine_serves_parent_and_child_after_afork(redis_url: str, prefix: str) -> None:
    with ChaosServer() as server:
        llm = ResilientLLM(
            [
                Provider(
                    "openai",
                    "chaos-model",
                    base_url=server.base_url("openai"),
                    api_key="test-key",
                    rate_limit=RateLimit(requests_per_minute=100_000),
                )
            ],
            retry=RetryPolicy(max_retries=0),
            state=RedisState(redis_url, prefix=prefix),
            timeout=30,
        )
        assert llm.chat("warm up").content == "Echo: warm up"
        locks = engine_locks([llm])
        held, release = threading.Event(), threading.Event()

        def hold() -> None:  # another thread is inside the route's Redis turn at the fork
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
            children = [
                fork(lambda c=c: report(calls(llm, "chat", f"child-{c}", 10))) for c in range(2)
            ]
        finally:
            release.set()
            holder.join()
        own = calls(llm, "chat", "parent", 10)
        reports = [collect(pid, read) for pid, read in children]
        after = asyncio.run(llm.achat("parent after")).content
        snapshot = llm.snapshot()
        llm.close()

    assert reports == [{"wrong": 0, "errors": [], "exit": 0}] * 2
    assert own == (0, [])
    assert after == "Echo: parent after"
    # All three processes counted their requests in the one shared limiter.
    assert snapshot.routes[0].limiter.requests_used == 1 + 2 * 10 + 10 + 1
