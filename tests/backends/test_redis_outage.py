"""Redis lost under load: the processes' memory fallbacks together stay within one quota.

Each ``RedisState`` stands for one process (its own client, routes and memory fallback; they
share only Redis and one fake clock). Redis is SIGKILLed and restarted empty; admissions
are counted per window from the tickets (a slot due now with a permit is a request sent),
or, through engines and the official SDK, from the chaos server's request log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from redis.backoff import NoBackoff

import resilient_llm.providers.openai.adapter  # noqa: F401 - the SDK, imported before any call
from resilient_llm import (
    BreakerPolicy,
    FakeClock,
    Provider,
    RateLimit,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.events import Event, StateDown, StateRestored
from resilient_llm.state.redis import RedisState
from resilient_llm.state.redis._route import RedisRoute
from resilient_llm.testing.chaos import ChaosServer, Plan

from .conftest import RedisServer
from .test_redis_engine import stopped

QUOTA, WINDOW, PROCESSES = 12, 10.0, 3


class Processes:
    """``PROCESSES`` routes named alike over one prefix, each with its own ``RedisState``."""

    def __init__(self, server: RedisServer, prefix: str, limit: RateLimit) -> None:
        self.clock = FakeClock(0.0)
        self.events: list[Event] = []
        self.states = [
            RedisState(server.url, prefix=prefix, time="client", clock=self.clock, retry_after=1.0)
            for _ in range(PROCESSES)
        ]
        self.routes: list[RedisRoute] = [
            state.route(
                "shared",
                limit,
                BreakerPolicy(failure_threshold=100),
                attempt_timeout=None,
                emit=self.events.append,
            )
            for state in self.states
        ]
        self.sent: list[float] = []

    def send_all_due(self, route: RedisRoute, now: float) -> int:
        """Admit at ``now`` until the route says wait; returns how many went out now."""
        sent = 0
        while self.send_one(route, now):
            sent += 1
        return sent

    def round_robin(self, now: float) -> int:
        """Each process sends one at a time, in turn, until none may: an even load."""
        total, open_ = 0, list(self.routes)
        while open_:
            for route in list(open_):
                if self.send_one(route, now):
                    total += 1
                else:
                    open_.remove(route)
        return total

    def send_one(self, route: RedisRoute, now: float) -> bool:
        ticket = route.admit(1, now)
        if ticket.slot is None or ticket.permit is None:
            if ticket.slot is not None:
                route.cancel(ticket.slot)  # queued: this caller gives up
            return False
        route.succeed(ticket.slot, ticket.permit, now, None)
        self.sent.append(now)
        return True

    def in_window(self, start: float) -> int:
        return sum(1 for at in self.sent if start <= at < start + WINDOW)

    def close(self) -> None:
        for state in self.states:
            state.close()


@pytest.fixture
def procs(own_redis: RedisServer, prefix: str) -> Iterator[Processes]:
    group = Processes(own_redis, prefix, RateLimit(requests_per_minute=QUOTA, window=WINDOW))
    try:
        yield group
    finally:
        group.close()


def test_redis_counts_the_processes_that_decide_on_a_route(procs: Processes) -> None:
    for route in procs.routes:
        route.admit(1, 0.0)
    assert [route._exchange.peers for route in procs.routes] == [1, 2, 3]
    procs.routes[1].admit(1, 1.0)
    procs.routes[0].admit(1, 1.0)
    assert procs.routes[0]._exchange.peers == 3
    # Two windows later only those still deciding count.
    procs.routes[0].admit(1, 2 * WINDOW + 0.5)
    assert procs.routes[0]._exchange.peers == 2
    procs.routes[0].admit(1, 2 * WINDOW + 1.5)
    assert procs.routes[0]._exchange.peers == 1


def test_killed_and_restarted_empty_the_processes_stay_within_one_quota(
    procs: Processes, own_redis: RedisServer
) -> None:
    """Without shares each process fell back to the whole quota (3 quotas in a window),
    and Redis, restarted empty, admitted a fourth."""
    for route in procs.routes:
        route.admit(0, 0.0)  # every process is seen once, so each hears the full count
    procs.sent += [0.0] * PROCESSES
    procs.round_robin(0.5)
    assert procs.in_window(0.0) == QUOTA

    own_redis.kill()
    assert procs.round_robin(1.0) == 0  # each had its share already, through Redis
    assert len([e for e in procs.events if isinstance(e, StateDown)]) == PROCESSES
    # The share in force shows while Redis is away.
    assert procs.routes[0].snapshot(1.0).limiter.requests_per_minute == QUOTA // PROCESSES

    procs.clock.advance(0.5)  # still within retry_after: Redis is not asked
    assert procs.round_robin(WINDOW + 0.6) == QUOTA  # a window on, every share again

    own_redis.restart()  # empty: persistence is off
    procs.clock.advance(1.0)
    assert procs.round_robin(WINDOW + 1.5) == 0
    assert len([e for e in procs.events if isinstance(e, StateRestored)]) == PROCESSES
    # Back on Redis, for a window each process still keeps to its share...
    assert procs.round_robin(2 * WINDOW + 1.0) == QUOTA
    # ...then the shared quota rules alone: a process may take all of it.
    assert procs.send_all_due(procs.routes[0], 3 * WINDOW + 1.5) == QUOTA
    assert procs.routes[0].snapshot(3 * WINDOW + 1.5).limiter.requests_per_minute == QUOTA
    for start in sorted(set(procs.sent)):
        assert procs.in_window(start) <= QUOTA, start


@pytest.mark.parametrize("fault", ["killed", "frozen", "out of memory"])
def test_every_way_of_losing_redis_falls_back_to_shares(
    procs: Processes, own_redis: RedisServer, fault: str
) -> None:
    """Killed (refused connections), frozen (accepts, never answers: each command times
    out) or out of memory (every script refused): the same shares, and the same log once
    Redis is back."""
    for route in procs.routes:
        route.admit(0, 0.0)
    procs.sent += [0.0] * PROCESSES
    procs.round_robin(0.5)
    admin = own_redis.client()
    try:
        with contextlib.ExitStack() as undo:
            if fault == "killed":
                own_redis.kill()
            elif fault == "frozen":
                undo.enter_context(stopped(own_redis))
            else:
                admin.config_set("maxmemory", "1")
                undo.callback(admin.config_set, "maxmemory", "0")
            assert procs.round_robin(1.0) == 0
            assert len([e for e in procs.events if isinstance(e, StateDown)]) == PROCESSES
            for route in procs.routes:
                assert route.snapshot(1.0).limiter.requests_per_minute == 4
        if fault == "killed":
            own_redis.restart()
        procs.clock.advance(1.0)
        for route in procs.routes:
            route.snapshot(1.5)  # back: each writes its admissions of the window first
        # Once each: a Redis that kept its log skips what it has, an empty one gets it all.
        assert procs.routes[0].snapshot(1.5).limiter.requests_used == QUOTA
        assert len([e for e in procs.events if isinstance(e, StateRestored)]) == PROCESSES
    finally:
        admin.close()


def test_a_process_alone_on_a_route_keeps_the_whole_quota(
    own_redis: RedisServer, prefix: str
) -> None:
    group = Processes(own_redis, prefix, RateLimit(requests_per_minute=QUOTA, window=WINDOW))
    try:
        route = group.routes[0]
        route.admit(0, 0.0)
        own_redis.kill()
        assert group.send_all_due(route, 0.5) == QUOTA - 1  # the one Redis admitted counts
    finally:
        group.close()


def test_token_shares_let_a_big_request_through_alone(own_redis: RedisServer, prefix: str) -> None:
    """A request bigger than a process's token share waits until it has the share alone
    (never refused as too large for a limit it fits)."""
    limit = RateLimit(tokens_per_minute=900, window=WINDOW)
    group = Processes(own_redis, prefix, limit)
    try:
        for route in group.routes:
            route.admit(0, 0.0)
        for route in group.routes:
            route.admit(0, 0.1)  # each hears all three: a share of 300 tokens
        own_redis.kill()
        route = group.routes[0]
        small = route.admit(200, 1.0)
        assert small.slot is not None
        assert small.permit is not None
        big = route.admit(500, 1.0)
        assert big.slot is not None
        assert big.slot.at == pytest.approx(1.0 + WINDOW)  # after the small one expires
        assert route.snapshot(1.0).limiter.tokens_per_minute == 300
    finally:
        group.close()


def test_learnt_limits_are_shared_too(own_redis: RedisServer, prefix: str) -> None:
    group = Processes(own_redis, prefix, RateLimit(window=WINDOW))
    try:
        for route in group.routes:
            route.admit(0, 0.0)
        for route in group.routes:
            route.admit(0, 0.1)
            route.learn(RateLimit(requests_per_minute=QUOTA))
        own_redis.kill()
        assert group.send_all_due(group.routes[1], 1.0) == QUOTA // PROCESSES - 2
        assert group.routes[1].rate_limit.requests_per_minute == QUOTA
    finally:
        group.close()


def test_awaited_return_writes_the_outage_admissions_first(
    own_redis: RedisServer, prefix: str
) -> None:
    group = Processes(own_redis, prefix, RateLimit(requests_per_minute=QUOTA, window=WINDOW))

    async def main() -> None:
        route = group.routes[0]
        await route.aperform("admit", (0, 0.0))
        own_redis.kill()
        local = [(await route.aperform("admit", (0, 0.5)))[0] for _ in range(5)]
        assert all(t.slot is not None for t in local)
        own_redis.restart()
        group.clock.advance(1.0)
        await route.aperform("admit", (0, 1.5))
        snapshot = await asyncio.to_thread(route.snapshot, 1.5)
        # The one from before the outage (Redis forgot it), 5 from memory, then this one.
        assert snapshot.limiter.requests_used == 7
        await group.states[0].aclose()

    try:
        asyncio.run(main())
    finally:
        group.close()


def test_engines_sharing_a_quota_send_at_most_it_through_an_outage(
    own_redis: RedisServer, prefix: str
) -> None:
    """Three engines (three processes) over one prefix, the official SDK against the chaos
    server: Redis killed once the quota is half used, restarted empty; the provider sees
    one quota in the window, where whole-quota fallbacks sent 6 + 3 x 10."""
    clock = FakeClock(0.0)
    events: list[Event] = []
    states = [
        RedisState(own_redis.url, prefix=prefix, time="client", clock=clock, retry_after=1.0)
        for _ in range(PROCESSES)
    ]
    with ChaosServer() as chaos:
        name = "openai-outage"
        chaos.set_plan(name, Plan())
        provider = Provider(
            "openai",
            "chaos-model",
            name=name,
            base_url=chaos.base_url(name),
            api_key="test-key",
            rate_limit=RateLimit(requests_per_minute=QUOTA, window=60.0),
        )
        engines = [
            ResilientLLM(
                [provider],
                state=state,
                clock=clock,
                retry=RetryPolicy(max_retries=0),
                timeout=5.0,
                on_event=events.append,
            )
            for state in states
        ]

        def ask_all(times: int) -> int:
            answered = 0
            for llm in engines:
                for _ in range(times):
                    try:
                        llm.chat("What is the capital of France?")
                        answered += 1
                    except ResilientLLMError:
                        pass  # its wait would pass the deadline: refused, never sent
            return answered

        try:
            for _ in range(2):
                assert ask_all(1) == PROCESSES  # on Redis; each hears all three
            own_redis.kill()
            assert ask_all(QUOTA) == QUOTA - 2 * PROCESSES  # each its share of 4, less 2
            assert len([e for e in events if isinstance(e, StateDown)]) == PROCESSES
            name_snapshot = engines[0].snapshot()[name]
            assert name_snapshot.limiter.requests_per_minute == QUOTA // PROCESSES

            own_redis.restart()
            clock.advance(1.0)
            assert ask_all(3) == 0  # each wrote its admissions back: the window is full
            assert len([e for e in events if isinstance(e, StateRestored)]) == PROCESSES
            assert len([r for r in chaos.log if r.provider == name]) == QUOTA
            assert not [r for r in chaos.log if r.status == 429]
        finally:
            for llm in engines:
                llm.close()
            for state in states:
                state.close()


def test_awaited_commands_are_retried_once_at_most(own_redis: RedisServer, prefix: str) -> None:
    """redis.asyncio retries a lost connection 10 times with backoff by default, past the
    command timeout: an outage then held awaited calls instead of falling back."""
    state = RedisState(own_redis.url, prefix=prefix)

    async def main() -> None:
        state.async_script()
        client = state._async[asyncio.get_running_loop()][0]
        retry = client.get_retry()
        assert retry is not None
        assert retry._retries <= 1
        assert isinstance(retry._backoff, NoBackoff)
        await state.aclose()

    try:
        asyncio.run(main())
    finally:
        state.close()


def test_while_redis_is_away_each_process_takes_its_share_of_every_window(
    own_redis: RedisServer, prefix: str
) -> None:
    """A minute's quota and a (two-hour) day's: the fallback takes 1 / 3 of each, so the
    three processes together keep to the day's quota as well as the minute's."""
    day, daily = 7200.0, 2 * QUOTA
    limit = RateLimit(requests_per_minute=QUOTA, window=WINDOW) | RateLimit.window(
        day, requests=daily
    )
    group = Processes(own_redis, prefix, limit)
    try:
        for now in (0.0, 0.5):  # twice: the second time each hears the full count
            for route in group.routes:
                assert route.admit(0, now).permit is not None
        own_redis.kill()
        # Each counts its two admissions through Redis: 2 more of its share of 4 a window.
        assert group.round_robin(1.0) == PROCESSES * 2
        # A window on: the minute frees, the day's share of 8 holds 4 more each.
        assert group.round_robin(WINDOW + 1.5) == PROCESSES * 4
        assert group.round_robin(2 * WINDOW + 2.0) == 0, "the day's shares are spent"
        snap = group.routes[0].snapshot(2 * WINDOW + 2.0).limiter
        assert [w.window.requests for w in snap.windows] == [QUOTA // 3, daily // 3]
        assert snap.held_by == "requests/120min"
        assert 2 * PROCESSES + len(group.sent) == daily
    finally:
        group.close()
