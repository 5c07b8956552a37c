"""A RedisState engine used before ``os.fork()`` keeps working in the child and the parent.

The route's turn lock is renewed in the child (another thread may hold it at the fork) and
redis-py gives the child its own connections, so neither process reads the other's replies
from Redis. Each process checks every reply it gets; the child reports through a pipe.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import threading

import pytest
import redis

import resilient_llm.providers.openai.adapter  # noqa: F401 - the SDK imported once, not in a call
from resilient_llm import BreakerPolicy, Provider, RateLimit, ResilientLLM, RetryPolicy
from resilient_llm.flow.ops import Ticket
from resilient_llm.messages import ChatResponse
from resilient_llm.state.redis import RedisState
from resilient_llm.state.redis._route import RedisPermit, RedisRoute, RedisSlot
from resilient_llm.state.redis.cache import RedisCache
from resilient_llm.testing.chaos import ChaosServer

from ..reliability.forking import calls, collect, engine_locks, fork, report
from ..timing import eventually
from .conftest import RedisServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")


def _child(llm: ResilientLLM, number: int) -> dict[str, object]:
    return report(calls(llm, "chat", f"child-{number}", 10))


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
            children = [fork(functools.partial(_child, llm, c)) for c in range(2)]
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


# ------------------------------------------------ a fork while a decision is in flight

_POLICY = BreakerPolicy(failure_threshold=1000)
_LIMIT = RateLimit(requests_per_minute=1_000_000)


def decisions(state: RedisState, cache: RedisCache | None, count: int) -> dict[str, object]:
    """``count`` sync and ``count`` awaited decisions on a route of ``state``; each must
    come from Redis (a fallback would mean the child could not reach it)."""
    route = state.route("forked", _LIMIT, _POLICY, attempt_timeout=None, emit=lambda e: None)
    local: list[str] = []

    def take(ticket: Ticket) -> None:
        if not isinstance(ticket.slot, RedisSlot) or not isinstance(ticket.permit, RedisPermit):
            local.append(repr(ticket))

    for _ in range(count):
        ticket = route.admit(0, 0.0)
        take(ticket)
        route.succeed(ticket.slot, ticket.permit, 0.0, None)  # type: ignore[arg-type]

    async def awaited() -> None:
        async def one() -> None:
            ticket, _ = await route.aperform("admit", (0, 0.0))
            take(ticket)
            await route.afinish("succeed", ticket.slot, ticket.permit, 0.0, None)

        await asyncio.gather(*(one() for _ in range(count)))
        await state.aclose()

    asyncio.run(awaited())
    hits = 0
    if cache is not None:
        reply = ChatResponse(content="cached", provider="p", model="m")
        for i in range(count):
            cache.set(f"child-{os.getpid()}-{i}", reply)
            hits += cache.get(f"child-{os.getpid()}-{i}") == reply
    return {"local": local, "hits": hits}


class Busy:
    """Threads of the parent inside Redis decisions (sync, and awaited on a loop of their
    own) and cache round trips, until stopped; ``rounds`` counts their finished turns."""

    def __init__(self, state: RedisState, cache: RedisCache | None) -> None:
        self.route = state.route("forked", _LIMIT, _POLICY, attempt_timeout=None, emit=print)
        self.cache = cache
        self.stop = threading.Event()
        self.rounds = threading.Semaphore(0)
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._sync),
            threading.Thread(target=lambda: asyncio.run(self._async())),
        ]
        if cache is not None:
            self.threads.append(threading.Thread(target=self._cache))
        for thread in self.threads:
            thread.start()

    def _sync(self) -> None:
        while not self.stop.is_set():
            ticket = self.route.admit(0, 0.0)
            self.route.succeed(ticket.slot, ticket.permit, 0.0, None)  # type: ignore[arg-type]
            self.rounds.release()

    async def _async(self) -> None:
        while not self.stop.is_set():
            ticket, _ = await self.route.aperform("admit", (0, 0.0))
            await self.route.afinish("succeed", ticket.slot, ticket.permit, 0.0, None)
            self.rounds.release()

    def _cache(self) -> None:
        assert self.cache is not None
        reply = ChatResponse(content="cached", provider="p", model="m")
        while not self.stop.is_set():
            self.cache.set("parent", reply)
            self.cache.get("parent")

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def test_forks_while_threads_are_inside_redis_decisions(redis_url: str, prefix: str) -> None:
    """Threads of the parent loop over decisions (sync, awaited) and cache round trips
    while it forks again and again: each child decides through Redis, sync and in
    ``asyncio.run``, and exits; none blocks on a lock or reads a parent's reply."""
    state = RedisState(redis_url, prefix=prefix, time="client", timeout=10.0)
    cache = RedisCache(redis_url, prefix=prefix)
    busy = Busy(state, cache)
    reports = []
    try:
        for _ in range(6):
            for _ in range(3):  # forks land at different points of the threads' turns
                busy.rounds.acquire()
            pid, read = fork(lambda: decisions(state, cache, 5))
            reports.append(collect(pid, read))
    finally:
        busy.join()
        cache.close()
        state.close()
    assert reports == [{"local": [], "hits": 5, "exit": 0}] * 6


def _admit(route: RedisRoute, into: list[Ticket]) -> None:
    into.append(route.admit(0, 0.0))


def _aadmit(route: RedisRoute, into: list[Ticket]) -> None:
    into.append(asyncio.run(route.aperform("admit", (0, 0.0)))[0])


def test_a_fork_while_redis_holds_a_reply_back(own_redis: RedisServer, prefix: str) -> None:
    """Redis frozen (SIGSTOP) with a sync and an awaited decision of the parent waiting
    on their connections: a child forked then has connections of its own, gets its own
    replies once Redis thaws, and so do the parent's waiting threads."""
    assert own_redis.process is not None
    state = RedisState(own_redis.url, prefix=prefix, time="client", timeout=30.0)
    route = state.route("forked", _LIMIT, _POLICY, attempt_timeout=None, emit=lambda e: None)
    made = 0
    try:
        for _ in range(3):
            waiting: list[Ticket] = []
            own_redis.process.send_signal(signal.SIGSTOP)
            try:
                sync = threading.Thread(target=_admit, args=(route, waiting))
                awaited = threading.Thread(target=_aadmit, args=(route, waiting))
                sync.start()
                awaited.start()

                # Both decisions have taken a connection and sent their script (redis-py
                # internals: the pools' connections in use).
                def sent() -> bool:
                    loops = [client.connection_pool for client, _ in list(state._async.values())]
                    assert isinstance(state.client, redis.Redis)
                    return bool(state.client.connection_pool._in_use_connections) and any(
                        pool._in_use_connections for pool in loops
                    )

                assert eventually(sent, timeout=25.0)
                pid, read = fork(lambda: decisions(state, None, 5))
            finally:
                own_redis.process.send_signal(signal.SIGCONT)
            report = collect(pid, read)
            sync.join()
            awaited.join()
            made += 2 + 2 * 5
            assert report == {"local": [], "hits": 0, "exit": 0}
            assert all(isinstance(t.slot, RedisSlot) for t in waiting), waiting
        assert route.snapshot(0.0).limiter.requests_used == made
    finally:
        state.close()
