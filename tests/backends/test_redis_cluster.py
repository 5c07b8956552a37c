"""``RedisState`` over a Redis Cluster: three local masters (no replicas) made with
``redis-cli --cluster create``; a route's keys share one hash tag, so each decision runs on
the master holding that slot, sync or awaited (on an async cluster client per loop).

Two ``RedisState`` objects over their own cluster clients stand for two processes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from benchmarks.cluster_nodes import ClusterNodes, missing
from resilient_llm import BreakerPolicy, RateLimit
from resilient_llm.events import Event, StateDown
from resilient_llm.state.redis import RedisState
from resilient_llm.state.redis._route import RedisPermit, RedisRoute, RedisSlot


@pytest.fixture
def cluster() -> Iterator[ClusterNodes]:
    why = missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; CI must run the cluster test", pytrace=False)
        pytest.skip(why)
    # Without full coverage, a dead master stops only its own slots.
    with ClusterNodes(coverage="no") as nodes:
        yield nodes


def _state(cluster: ClusterNodes, port: int, prefix: str) -> RedisState:
    client = redis.cluster.RedisCluster(
        host="127.0.0.1",
        port=port,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 0),  # a dead master fails at once, not after backoffs
    )
    return RedisState(client, prefix=prefix, time="client", retry_after=60.0)


def _routes(state: RedisState, names: list[str], events: list[Event]) -> list[RedisRoute]:
    limit = RateLimit(requests_per_minute=3)
    return [
        state.route(name, limit, BreakerPolicy(), attempt_timeout=None, emit=events.append)
        for name in names
    ]


def test_processes_share_each_routes_quota_on_its_own_master(
    cluster: ClusterNodes, prefix: str
) -> None:
    a, b = _state(cluster, cluster.ports[0], prefix), _state(cluster, cluster.ports[1], prefix)
    names = [f"route{i}" for i in range(8)]
    owners = {name: cluster.owner(a.keys(name)[0]) for name in names}
    assert len(set(owners.values())) == 3, "the routes spread over the three masters"
    events: list[Event] = []
    mine, theirs = _routes(a, names, events), _routes(b, names, events)
    try:

        async def awaited(route: RedisRoute) -> bool:
            ticket, _ = await route.aperform("admit", (0, 0.0))
            return ticket.permit is not None

        for first, second in zip(mine, theirs, strict=True):
            one, two = first.admit(0, 0.0), second.admit(0, 0.0)
            assert isinstance(two.slot, RedisSlot)
            admitted = [one.permit is not None, two.permit is not None]
            # 3 a minute, shared: one of the two awaited at once is queued
            admitted += sorted(asyncio.run(_both(awaited(first), awaited(second))))
            assert admitted == [True, True, False, True]
        # Each route's keys are on its own master (asked directly: no MOVED redirect).
        for name in names:
            with redis.Redis(host="127.0.0.1", port=owners[name]) as node:
                assert node.exists(*a.keys(name)) >= 3, name
        assert not [e for e in events if isinstance(e, StateDown)]
        assert "cluster 127.0.0.1:" in repr(a)
    finally:
        a.client.close()  # a client given is the caller's to close
        b.client.close()


async def _both(*calls: object) -> list[bool]:
    return list(await asyncio.gather(*calls))  # type: ignore[call-overload]


def test_a_dead_master_sends_only_its_routes_to_the_fallback(
    cluster: ClusterNodes, prefix: str
) -> None:
    state = _state(cluster, cluster.ports[0], prefix)
    names = [f"route{i}" for i in range(8)]
    owners = {name: cluster.owner(state.keys(name)[0]) for name in names}
    victim = owners[names[0]]
    events: list[Event] = []
    routes = _routes(state, names, events)
    try:

        async def scenario() -> tuple[list[bool], list[bool]]:
            # The loop's cluster client is made while all masters live: redis-py cannot
            # make one while a master of the topology is down (see the benchmark's notes).
            for route in routes:
                assert isinstance((await route.aperform("acquire", (0.0,)))[0], RedisPermit)
            cluster.kill(victim)
            awaited = [
                isinstance((await route.aperform("acquire", (0.0,)))[0], RedisPermit)
                for route in routes
            ]
            await state.aclose()
            # Blocking here, in the loop, is only this test's shortcut.
            return awaited, [isinstance(route.acquire(0.0), RedisPermit) for route in routes]

        awaited, sync = asyncio.run(scenario())
        expected = [owners[name] != victim for name in names]
        assert awaited == expected
        assert sync == expected
        down = [(e.route, e.reason) for e in events if isinstance(e, StateDown)]
        assert down == [(name, "unreachable") for name in names if owners[name] == victim]
    finally:
        state.client.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_fork_while_threads_decide_on_the_cluster(cluster: ClusterNodes, prefix: str) -> None:
    """The cluster client's nodes and pools, inherited mid-decision, serve the child."""
    from ..reliability.forking import collect, fork
    from .test_redis_fork import Busy, decisions

    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    state = RedisState(client, prefix=prefix, time="client", timeout=10.0)
    busy = Busy(state, None)
    reports = []
    try:
        for _ in range(4):
            for _ in range(3):
                busy.rounds.acquire()
            pid, read = fork(lambda: decisions(state, None, 3))
            reports.append(collect(pid, read))
    finally:
        busy.join()
        client.close()
    assert reports == [{"local": [], "hits": 0, "exit": 0}] * 4
