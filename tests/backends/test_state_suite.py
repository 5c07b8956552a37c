"""One suite for every state backend: the same limiter and breaker rules, through ``Route``.

The decision core reads and changes a route only through the :class:`~resilient_llm.state.memory.
Route` methods, so that is where the backends are held to one behaviour: each test here runs
against the memory backend and against Redis (``RedisState(time="client")``, so the test
drives ``now`` and nothing sleeps). Three layers:

- exact cases ported from ``tests/core/test_limiter.py`` and ``tests/core/test_breaker.py``,
  phrased as route calls;
- a property test: random operation sequences on one route, with a brute-force limiter
  model and a breaker model checked after every step;
- a differential test: the same sequence on a memory route and a Redis route gives the same
  looks, tickets, snapshots and breaker changes (permit ids may differ).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from resilient_llm.events import Event
from resilient_llm.messages import Usage
from resilient_llm.policies.adaptive import ProviderCap
from resilient_llm.policies.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    CircuitState,
    Permit,
    StateChange,
)
from resilient_llm.policies.hints import RateLimitHints
from resilient_llm.policies.limiter import (
    DAY,
    DEFAULT_IN_FLIGHT,
    EXACT_UP_TO,
    SLICES,
    LimiterSnapshot,
    RateLimit,
)
from resilient_llm.policies.quota import Tokens
from resilient_llm.state import MemoryState
from resilient_llm.state.memory import Look, Route, Slot, Ticket
from resilient_llm.state.redis import RedisState

from .conftest import RedisServer

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
UNLIMITED = RateLimit()
DEFAULT_POLICY = BreakerPolicy(failure_threshold=3, cooldown=30.0)


# --------------------------------------------------------------------------- backends


class Backend:
    """Builds fresh routes of one backend; every route has a name no other test uses."""

    def __init__(self, kind: str, server: RedisServer | None) -> None:
        self.kind = kind
        self._names = itertools.count()
        self._events: list[Event] = []
        if server is None:
            self.state: MemoryState | RedisState = MemoryState()
        else:
            self.state = RedisState(server.url, prefix=f"suite{os.getpid()}", time="client")

    def route(
        self, limit: RateLimit = UNLIMITED, policy: BreakerPolicy = DEFAULT_POLICY
    ) -> tuple[Route, list[StateChange]]:
        route = self.state.route(
            f"route-{next(self._names)}",
            limit,
            policy,
            attempt_timeout=None,
            emit=self._events.append,
        )
        changes: list[StateChange] = []
        route.add_breaker_listener(changes.append)
        return route, changes

    def entries(self, route: Route) -> int:
        """What the route's limiter keeps: log entries and slices."""
        if isinstance(self.state, RedisState):
            keys = self.state.keys(route.name)
            client = self.state.client
            return (
                int(client.zcard(keys[0])) + int(client.hlen(keys[8])) + int(client.zcard(keys[9]))
            )
        return sum(len(lane.entries) for lane in route.limiter._lanes)

    def slices(self, route: Route) -> int:
        """The long windows' slices it keeps."""
        if isinstance(self.state, RedisState):
            return int(self.state.client.hlen(self.state.keys(route.name)[8]))
        return sum(len(lane.entries) for lane in route.limiter._lanes if lane.slice)

    def __repr__(self) -> str:
        return self.kind


@pytest.fixture(scope="session")
def memory_backend() -> Backend:
    return Backend("memory", None)


@pytest.fixture(scope="session")
def redis_backend(redis_server: RedisServer) -> Iterator[Backend]:
    backend = Backend("redis", redis_server)
    yield backend
    assert isinstance(backend.state, RedisState)
    # Nothing the suite does may have sent the routes to their fallback.
    assert not [e for e in backend._events if e.kind == "state_down"]
    backend.state.close()


@pytest.fixture(scope="session", params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test of this suite, once per backend."""
    return request.getfixturevalue(f"{request.param}_backend")  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- helpers


def take(route: Route, now: float, tokens: int = 0) -> tuple[Slot, Permit]:
    """Admit a call due now; it must be granted."""
    ticket = route.admit(tokens, now)
    assert ticket.slot is not None, ticket
    assert ticket.permit is not None, ticket
    return ticket.slot, ticket.permit


def fail(route: Route, now: float, times: int = 1) -> None:
    for _ in range(times):
        slot, permit = take(route, now)
        route.fail(slot, permit, now)


def succeed(route: Route, now: float, times: int = 1) -> None:
    for _ in range(times):
        slot, permit = take(route, now)
        route.succeed(slot, permit, now, None)


def state(route: Route, now: float) -> CircuitState:
    return route.snapshot(now).breaker.state


def opened(
    backend: Backend, now: float = 0.0, **policy: Any
) -> tuple[Route, list[StateChange], BreakerPolicy]:
    full = BreakerPolicy(**{"failure_threshold": 3, "cooldown": 30.0, **policy})
    route, changes = backend.route(policy=full)
    fail(route, now, full.failure_threshold)
    assert state(route, now) is OPEN
    return route, changes, full


def half_open(backend: Backend, **policy: Any) -> tuple[Route, list[StateChange]]:
    route, changes, full = opened(backend, 0.0, **policy)
    assert state(route, full.cooldown) is HALF_OPEN
    return route, changes


def probe(route: Route, now: float) -> tuple[Slot, Permit]:
    slot, permit = take(route, now)
    assert permit.probe
    return slot, permit


# --------------------------------------------------------------------------- limiter cases


def test_rpm_two_third_waits_one_window(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=2))
    assert route.admit(1, 0.0).permit is not None
    assert route.admit(1, 10.0).permit is not None
    third = route.admit(1, 10.0)
    assert third.slot is not None
    assert third.permit is None
    assert (third.slot.at, third.slot.wait) == (60.0, 50.0)
    # The fourth waits for the second to leave, and queues behind the third anyway.
    fourth = route.admit(1, 10.0).slot
    assert fourth is not None
    assert fourth.at == 70.0
    permit = route.acquire(60.0)
    assert permit is not None
    assert not permit.probe


def test_token_entry_leaves_exactly_at_a_plus_window(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(tokens_per_minute=100))
    take(route, 5.0, 60)
    second = route.admit(60, 5.0).slot
    assert second is not None
    assert second.at == 65.0
    assert route.look(40, 65.0).wait == 0.0
    assert route.look(41, 65.0).wait == 60.0
    assert route.look(41, 124.999).wait == pytest.approx(0.001)
    assert route.look(100, 125.0).wait == 0.0


def test_tokens_walk_past_several_entries(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(tokens_per_minute=100))
    for t in (0.0, 1.0, 2.0):
        take(route, t, 30)
    big = route.admit(70, 3.0).slot  # needs 90 free: the first two must leave (at 61)
    assert big is not None
    assert big.at == 61.0


def test_queued_times_come_back_exactly(backend: Backend) -> None:
    # 0.6000000000000001 + (7.8 - 0.6000000000000001) is 7.799999999999999: a backend that
    # shifts times between timelines must not do it on the engine's own clock.
    route, _ = backend.route(RateLimit(requests_per_minute=1, window=7.5))
    take(route, 0.3)
    queued = route.admit(0, 0.3 + 0.3).slot
    assert queued is not None
    assert queued.at == 0.3 + 7.5
    assert queued.wait == 0.3 + 7.5 - (0.3 + 0.3)


def test_zero_tokens_still_count_as_a_request(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=1, tokens_per_minute=10))
    take(route, 0.0, 0)
    assert route.look(0, 0.0).wait == 60.0


def test_look_matches_admit_and_changes_nothing(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=3, tokens_per_minute=100))
    for t, k in [(0.0, 50), (1.0, 40), (2.0, 5)]:
        take(route, t, k)
    before = route.snapshot(3.0)
    waits = [route.look(20, 3.0).wait for _ in range(5)]
    assert waits == [57.0] * 5
    assert route.snapshot(3.0) == before
    slot = route.admit(20, 3.0).slot
    assert slot is not None
    assert slot.wait == waits[0]


def test_limiter_snapshot_at_several_moments(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=3, tokens_per_minute=100))
    assert route.snapshot(0.0).limiter == LimiterSnapshot(3, 100, 0, 0, 0, 0.0, 3, 100)
    take(route, 0.0, 40)
    take(route, 10.0, 30)
    queued = route.admit(50, 20.0).slot  # needs the first gone: at 60
    assert queued is not None
    assert queued.at == 60.0
    assert route.snapshot(20.0).limiter == LimiterSnapshot(3, 100, 2, 70, 1, 40.0, 0, 0)
    assert route.snapshot(60.0).limiter == LimiterSnapshot(3, 100, 2, 80, 0, 10.0, 1, 20)
    assert route.snapshot(70.0).limiter == LimiterSnapshot(3, 100, 1, 50, 0, 50.0, 2, 50)
    assert route.snapshot(120.0).limiter == LimiterSnapshot(3, 100, 0, 0, 0, 0.0, 3, 100)


def test_cancel_gives_back_and_is_idempotent(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=1))
    first, permit = take(route, 0.0, 1)
    second = route.admit(1, 0.0).slot
    assert second is not None
    assert second.at == 60.0
    route.withdraw(first, permit)
    route.cancel(first)
    # The later reservation keeps its time; a third queues behind it.
    third = route.admit(1, 0.0).slot
    assert third is not None
    assert third.at == 120.0
    route.cancel(second)
    assert route.snapshot(0.0).limiter.queue_length == 1


def test_cancel_after_settle_and_settle_after_cancel_do_nothing(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(tokens_per_minute=100))
    slot, permit = take(route, 0.0, 50)
    route.succeed(slot, permit, 0.0, 60)
    route.cancel(slot)  # it was sent: it stays charged
    assert route.snapshot(0.0).limiter.estimated_tokens == 60

    dropped, permit = take(route, 0.0, 10)
    route.withdraw(dropped, permit)
    route.succeed(dropped, permit, 0.0, 5)
    assert route.snapshot(0.0).limiter.estimated_tokens == 60


def test_settle_lower_frees_exactly_the_difference(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(tokens_per_minute=100))
    slot, permit = take(route, 0.0, 80)
    route.succeed(slot, permit, 0.0, 30)
    assert route.look(70, 0.0).wait == 0.0
    assert route.look(71, 0.0).wait == 60.0
    take(route, 0.0, 70)


def test_settle_higher_counts_and_negative_clamps(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(tokens_per_minute=100))
    slot, permit = take(route, 0.0, 10)
    route.succeed(slot, permit, 0.0, 90)
    assert route.look(11, 1.0).wait == 59.0
    route.succeed(slot, permit, 1.0, -7)  # a second settle replaces the first
    assert route.look(100, 1.0).wait == 0.0


def test_settle_after_the_entry_left_the_window_is_harmless(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(tokens_per_minute=100))
    slot, permit = take(route, 0.0, 100)
    take(route, 60.0, 100)
    route.succeed(slot, permit, 60.0, 100)  # a late report for a request out of the window
    assert route.look(1, 60.0).wait == 60.0


def test_threads_admitting_concurrently_keep_the_limit(backend: Backend) -> None:
    limit = RateLimit(requests_per_minute=10, tokens_per_minute=1000)
    route, _ = backend.route(limit)
    barrier = threading.Barrier(8)
    slots: list[Slot] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        mine = [route.admit(50, 0.0).slot for _ in range(10)]
        with lock:
            slots.extend(s for s in mine if s is not None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Exactly ten per window, none wasted: every slot was handed out once.
    assert sorted(s.at for s in slots) == [60.0 * (i // 10) for i in range(80)]


# --------------------------------------------------------------------------- breaker cases


def test_opens_at_the_threshold_not_before(backend: Backend) -> None:
    route, changes = backend.route(policy=BreakerPolicy(failure_threshold=3))
    fail(route, 1.0, 2)
    assert state(route, 1.0) is CLOSED
    assert changes == []
    fail(route, 2.0)
    assert state(route, 2.0) is OPEN
    assert [(c.old, c.new, c.at, c.reason) for c in changes] == [
        (CLOSED, OPEN, 2.0, "3 failures in 60s")
    ]
    assert route.admit(0, 2.0) == Ticket(None, None)
    assert route.acquire(2.0) is None


def test_successes_do_not_reset_the_failure_count(backend: Backend) -> None:
    route, _ = backend.route(policy=BreakerPolicy(failure_threshold=3))
    fail(route, 0.0, 2)
    succeed(route, 1.0, 10)
    fail(route, 2.0)
    assert state(route, 2.0) is OPEN


def test_failures_outside_the_window_do_not_count(backend: Backend) -> None:
    route, _ = backend.route(policy=BreakerPolicy(failure_threshold=3, window=10.0))
    fail(route, 0.0, 2)
    fail(route, 10.0)  # exactly one window later the first two aged out
    assert route.snapshot(10.0).breaker.failures == 1
    assert state(route, 10.0) is CLOSED
    fail(route, 19.0, 2)
    assert state(route, 19.0) is OPEN


def test_failure_rate_needs_count_and_rate(backend: Backend) -> None:
    route, changes = backend.route(policy=BreakerPolicy(failure_threshold=3, failure_rate=0.5))
    succeed(route, 0.0, 4)
    fail(route, 1.0, 3)  # 3 of 7 < 50%
    assert state(route, 1.0) is CLOSED
    fail(route, 2.0)  # 4 of 8
    assert state(route, 2.0) is OPEN
    assert changes[-1].reason == "4 of 8 calls failed in 60s"


def test_failure_rate_counts_only_calls_in_the_window(backend: Backend) -> None:
    policy = BreakerPolicy(failure_threshold=2, failure_rate=0.5, window=10.0)
    route, _ = backend.route(policy=policy)
    succeed(route, 0.0, 10)
    fail(route, 5.0)
    assert route.snapshot(5.0).breaker.calls == 11
    fail(route, 10.0)  # the ten successes aged out: 2 of 2
    assert state(route, 10.0) is OPEN


def test_open_refuses_until_the_cooldown_and_half_opens_exactly_at_it(backend: Backend) -> None:
    route, changes, _ = opened(backend, 100.0, cooldown=30.0)
    assert route.admit(0, 100.0) == Ticket(None, None)
    assert route.ready_at(129.999) == 130.0
    assert route.look(0, 129.999).ready_at == 130.0
    assert route.acquire(129.999) is None
    assert state(route, 129.999) is OPEN
    slot, permit = probe(route, 130.0)
    assert (changes[-1].old, changes[-1].new, changes[-1].at) == (OPEN, HALF_OPEN, 130.0)
    assert changes[-1].reason == "cooldown elapsed"
    route.release(permit)
    route.cancel(slot)


def test_two_probes_allowed_third_refused(backend: Backend) -> None:
    route, _ = half_open(backend, half_open_probes=2)
    _, first = probe(route, 30.0)
    _, second = probe(route, 30.0)
    assert first.id != second.id
    assert route.admit(0, 30.0) == Ticket(None, None)
    assert route.acquire(30.0) is None
    assert route.ready_at(30.0) == math.inf
    assert route.snapshot(30.0).breaker.probes_in_flight == 2


def test_probe_success_closes_and_clears_the_window(backend: Backend) -> None:
    route, changes = half_open(backend, failure_threshold=2)
    slot, permit = probe(route, 30.0)
    route.succeed(slot, permit, 31.0, None)
    assert (changes[-1].new, changes[-1].at, changes[-1].reason) == (
        CLOSED,
        31.0,
        "probe succeeded",
    )
    assert route.snapshot(31.0).breaker == BreakerSnapshot(CLOSED, 0, 0, None, None, 0)
    fail(route, 32.0)  # a fresh count: one failure is not two
    assert state(route, 32.0) is CLOSED


def test_probe_failure_reopens_with_a_fresh_cooldown(backend: Backend) -> None:
    route, changes = half_open(backend, cooldown=30.0)
    slot, permit = probe(route, 40.0)
    route.fail(slot, permit, 45.0)
    assert (changes[-1].new, changes[-1].reason) == (OPEN, "probe failed")
    assert route.ready_at(45.0) == 75.0
    assert route.acquire(74.9) is None
    assert state(route, 75.0) is HALF_OPEN


def test_released_probe_frees_its_slot(backend: Backend) -> None:
    route, changes = half_open(backend)
    _, permit = probe(route, 30.0)
    assert route.acquire(30.0) is None
    route.release(permit)
    assert route.snapshot(31.0).breaker.probes_in_flight == 0
    again = route.acquire(31.0)
    assert again is not None
    assert again.probe
    assert [c.new for c in changes] == [OPEN, HALF_OPEN]


def test_a_probe_never_reported_lapses_after_a_cooldown(backend: Backend) -> None:
    # A process that died holding the probe must not keep the breaker half-open for all.
    route, changes = half_open(backend)
    slot, lost = probe(route, 30.0)
    assert route.ready_at(59.9) == math.inf
    assert route.acquire(59.9) is None
    assert route.ready_at(60.0) == 60.0, "the cooldown (30 s) after its grant"
    again = route.acquire(60.0)
    assert again is not None
    assert again.probe
    route.succeed(slot, lost, 60.5, None)  # the lost probe's late report changes nothing
    assert state(route, 60.5) is HALF_OPEN
    route.succeed(slot, again, 61.0, None)
    assert [c.new for c in changes] == [OPEN, HALF_OPEN, CLOSED]


def test_with_several_probes_the_first_outcome_decides(backend: Backend) -> None:
    route, _ = half_open(backend, half_open_probes=2)
    first = probe(route, 30.0)
    second = probe(route, 30.0)
    route.succeed(*first, 31.0, None)
    assert state(route, 31.0) is CLOSED
    route.fail(*second, 32.0)  # stale now: it must not reopen
    assert state(route, 32.0) is CLOSED
    assert route.snapshot(32.0).breaker.failures == 0


def test_double_record_is_ignored(backend: Backend) -> None:
    route, _ = backend.route(policy=BreakerPolicy(failure_threshold=2))
    slot, permit = take(route, 0.0)
    route.fail(slot, permit, 0.0)
    route.fail(slot, permit, 0.0)
    route.succeed(slot, permit, 0.0, None)
    route.release(permit)
    snap = route.snapshot(0.0).breaker
    assert (snap.state, snap.failures, snap.calls) == (CLOSED, 1, 1)


def test_late_outcomes_from_before_opening_change_nothing(backend: Backend) -> None:
    route, changes = backend.route(policy=BreakerPolicy(failure_threshold=1, cooldown=10.0))
    slow = take(route, 0.0)
    slower = take(route, 0.0)
    fail(route, 1.0)
    route.fail(*slower, 5.0)
    assert route.ready_at(5.0) == 11.0  # the cooldown did not restart
    assert state(route, 11.0) is HALF_OPEN
    route.succeed(*slow, 12.0, None)
    assert state(route, 12.0) is HALF_OPEN
    assert [c.new for c in changes] == [OPEN, HALF_OPEN]


def test_ready_at_in_each_state(backend: Backend) -> None:
    route, _ = backend.route(policy=BreakerPolicy(failure_threshold=1, cooldown=10.0))
    assert route.ready_at(3.0) == 3.0
    fail(route, 5.0)
    assert route.ready_at(6.0) == 15.0
    assert route.ready_at(15.0) == 15.0  # half-open now, with a free probe
    _, permit = probe(route, 15.0)
    assert route.ready_at(16.0) == math.inf
    route.release(permit)
    assert route.ready_at(17.0) == 17.0


def test_breaker_snapshot_in_each_state(backend: Backend) -> None:
    policy = BreakerPolicy(failure_threshold=2, cooldown=10.0, half_open_probes=2)
    route, _ = backend.route(policy=policy)
    succeed(route, 0.0)
    fail(route, 1.0)
    assert route.snapshot(2.0).breaker == BreakerSnapshot(CLOSED, 1, 2, None, None, 0)
    fail(route, 3.0)
    assert route.snapshot(4.0).breaker == BreakerSnapshot(OPEN, 2, 3, 3.0, 13.0, 0)
    probe(route, 13.0)
    assert route.snapshot(13.0).breaker == BreakerSnapshot(HALF_OPEN, 2, 3, 3.0, None, 1)


def test_listeners_hear_every_change_in_order_with_reasons(backend: Backend) -> None:
    route, changes = backend.route(policy=BreakerPolicy(failure_threshold=2, cooldown=10.0))
    fail(route, 0.0, 2)
    route.fail(*probe(route, 10.0), 11.0)
    route.succeed(*probe(route, 21.0), 22.0, None)
    assert [(c.old, c.new, c.at, c.reason) for c in changes] == [
        (CLOSED, OPEN, 0.0, "2 failures in 60s"),
        (OPEN, HALF_OPEN, 10.0, "cooldown elapsed"),
        (HALF_OPEN, OPEN, 11.0, "probe failed"),
        (OPEN, HALF_OPEN, 21.0, "cooldown elapsed"),
        (HALF_OPEN, CLOSED, 22.0, "probe succeeded"),
    ]
    assert {c.name for c in changes} == {route.name}


def test_concurrent_probe_acquires_never_exceed_the_limit(backend: Backend) -> None:
    route, _ = half_open(backend, half_open_probes=3)
    got: list[Permit | None] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        permit = route.acquire(30.0)
        with lock:
            got.append(permit)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(p is not None for p in got) == 3


# --------------------------------------------------------------------------- pauses


def test_a_pause_refuses_due_calls_and_the_latest_end_wins(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=1, window=1.0))
    route.pause(10.0, 5.0)
    route.pause(11.0, 1.0)  # ends at 12, before 15: the pause stays until 15
    assert route.look(0, 12.0).paused_until == 15.0
    assert route.snapshot(12.0).paused_for == 3.0
    assert route.admit(0, 12.0) == Ticket(None, None)
    assert route.snapshot(12.0).limiter.requests_used == 0  # nothing was held
    slot, _ = take(route, 15.0)
    late = route.admit(0, 15.0).slot  # queued for 16
    assert late is not None
    route.pause(15.0, 2.0)
    assert route.acquire(16.0) is None
    assert route.acquire(17.0) is not None
    assert slot.at == 15.0


# --------------------------------------------------------------------------- windows


def ask(total: int, output: int) -> Tokens:
    return Tokens(total, input=total - output, output=output)


def test_every_window_must_fit_and_all_admit_at_once(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=10) | RateLimit.window(10, requests=2))
    slots = [route.admit(1, 0.0).slot for _ in range(3)]
    assert [s.at for s in slots if s is not None] == [0.0, 0.0, 10.0]
    # The third holds the ten-second window; the minute window counted it too.
    windows = route.snapshot(0.0).limiter.windows
    assert [(w.name, w.requests_used) for w in windows] == [
        ("requests/1min", 3),
        ("requests/10s", 3),
    ]


def test_output_is_charged_as_its_allowance_and_settled_on_usage(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(input_tokens_per_minute=1_000, output_tokens_per_minute=300))
    first = take(route, 0.0, ask(150, 100))
    take(route, 1.0, ask(150, 100))
    take(route, 2.0, ask(150, 100))
    queued = route.admit(ask(150, 100), 3.0).slot
    assert queued is not None
    assert queued.at == 60.0, "output binds; input is far"
    # The first reply produced 20 output tokens: 80 go back to the output window.
    route.succeed(*first, 3.0, Tokens(70, input=50, output=20))
    # 320 output counted with the queued one: the entry of 1.0 must leave too, at 61.
    assert route.look(ask(150, 100), 3.0).wait == 58.0
    window = route.snapshot(3.0).limiter.windows[0]
    assert (window.input_tokens_used, window.output_tokens_used) == (50 + 3 * 50, 320)
    route.cancel(queued)
    assert route.look(ask(150, 100), 3.0).wait == 57.0, "the first (20) leaves at 60"


def test_cache_reads_are_left_out_of_input_where_the_family_says_so(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(input_tokens_per_minute=1_000))
    route.cache_reads_count = False
    slot, permit = take(route, 0.0, ask(900, 0))
    usage = Usage(input_tokens=900, output_tokens=0, cached_input_tokens=800).total_tokens
    route.succeed(slot, permit, 0.0, usage)
    assert route.snapshot(0.0).limiter.windows[0].input_tokens_used == 100
    assert route.look(ask(900, 0), 0.0).wait == 0.0


def test_a_day_keeps_a_counter_per_slice_and_never_admits_past_its_limit(
    backend: Backend,
) -> None:
    route, _ = backend.route(RateLimit(requests_per_day=300))
    step = DAY / 600
    granted = []
    for i in range(1_800):  # three days of callers who go elsewhere rather than queue
        now = i * step
        if route.look(1, now).wait == 0:
            slot, permit = take(route, now, 1)
            route.succeed(slot, permit, now, 1)
            granted.append(slot.at)
        if i % 97 == 0:
            assert backend.entries(route) <= SLICES + 1 + 96
    assert backend.slices(route) <= SLICES + 1
    for i, start in enumerate(granted):
        assert sum(1 for a in granted[i : i + 301] if a < start + DAY) <= 300
    assert granted[299] == 299 * step
    assert granted[300] <= granted[0] + DAY * (1 + 1 / SLICES)
    assert len(granted) >= 3 * 300 * 0.98


def test_a_daily_hold_shows_in_the_snapshot_with_its_end(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=100, requests_per_day=2))
    take(route, 0.0)
    take(route, 10.0)
    snap = route.snapshot(20.0).limiter
    assert snap.held_by == "requests/1d"
    assert DAY - 20.0 <= snap.held_for <= DAY * (1 + 1 / SLICES)
    assert route.look(0, 20.0).wait == snap.held_for
    assert route.snapshot(21.0).limiter.windows[1].requests_used == 2
    assert route.snapshot(21.0).limiter.windows[0].requests_used == 2


def test_in_flight_time_is_counted_and_learnt_from_answers(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=1))
    route.limiter.count_in_flight()
    slot, permit = take(route, 0.0, 1)
    assert route.look(1, 0.0).wait == 60.0 + DEFAULT_IN_FLIGHT
    route.succeed(slot, permit, 0.05, None)
    assert route.look(1, 0.05).wait == 60.0
    queued = route.admit(1, 0.05).slot
    assert queued is not None
    assert queued.at == 60.05


def test_a_queued_request_waking_into_an_overdraft_queues_again(backend: Backend) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=1) | RateLimit.window(DAY, requests=9))
    route.limiter.count_in_flight()
    first = take(route, 0.0, 1)
    queued = route.admit(1, 0.0).slot
    assert queued is not None
    assert queued.at == 60.0 + DEFAULT_IN_FLIGHT
    route.succeed(*first, 1.5, None)  # in flight far longer than allowed for
    assert route.acquire(queued.at) is None
    route.cancel(queued)
    assert route.acquire(queued.at) is not None


def test_a_429_naming_a_window_counts_it_full_but_the_slot_its_wait_frees(
    backend: Backend,
) -> None:
    route, _ = backend.route(RateLimit(requests_per_minute=100))
    route.provider_cap = ProviderCap()
    route.observe(RateLimitHints(exhausted=(("requests", DAY, 5),), retry_after=50.0), 100.0)
    # The 429's own retry-after is the route's pause elsewhere; here the windows alone.
    assert route.look(1, 150.0).wait == 0.0, "the slot the provider's wait frees"
    take(route, 150.0, 1)
    snap = route.snapshot(150.0).limiter
    assert snap.held_by == "requests/1d"
    assert snap.held_for == DAY - 50.0, "the rest: a window after the 429"
    assert route.look(1, 150.0).wait == DAY - 50.0


# --------------------------------------------------------------------------- the model


def earliest_feasible(
    live: Sequence[tuple[float, int]], tokens: int, now: float, limit: RateLimit
) -> float:
    """Brute force: the earliest FIFO time that fits both limits (from test_limiter.py)."""
    w = limit.window
    start = max([now, *(a for a, _ in live)])
    candidates = sorted({start, *(a + w for a, _ in live if a + w > start)})
    for t in candidates:
        counted = [k for a, k in live if a + w > t]
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        if rpm is not None and len(counted) + 1 > rpm:
            continue
        if tpm is not None and sum(counted) + tokens > tpm:
            continue
        return t
    raise AssertionError("no feasible time")  # pragma: no cover


@dataclass
class Held:
    """A slot the test was granted, and the permit that goes with it once it has one."""

    slot: Slot
    tokens: int
    permit: Permit | None = None
    cancelled: bool = False
    settled: bool = False
    finished: bool = False  # the permit was handed back
    granted: float = 0.0  # when the permit was granted: a probe lapses a cooldown later


# (operation, pick, fraction): ``pick`` chooses a held item, ``fraction`` scales a size or
# a duration. "tick" moves time by one of a few steps, boundaries included. Admissions,
# failures and ticks come more often, so sequences reach open and half-open breakers.
OPS = ("look", "acquire", "ready", "succeed", "release", "withdraw", "cancel", "stale")
OPS += ("pause", "snapshot") + ("tick", "admit", "fail") * 3
op_lists = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.integers(0, 50),
        st.floats(0, 1) | st.sampled_from([0.0, 0.5, 1.0]),
    ),
    min_size=15,
    max_size=40,
)
limits = st.builds(
    RateLimit,
    requests_per_minute=st.none() | st.integers(1, 3),
    tokens_per_minute=st.none() | st.integers(1, 120),
    window=st.sampled_from([60.0, 1.0, 7.5, 0.1]),
)
policies = st.builds(
    BreakerPolicy,
    failure_threshold=st.integers(1, 3),
    failure_rate=st.none() | st.sampled_from([0.25, 0.5, 1.0]),
    window=st.sampled_from([5.0, 20.0]),
    cooldown=st.sampled_from([1.0, 7.5]),
    half_open_probes=st.integers(1, 3),
)
starts = st.sampled_from([0.0, 1000.25, 1.7e9])


def tick(limit: RateLimit, policy: BreakerPolicy, pick: int, fraction: float) -> float:
    """A step of time: a fraction of the limiter window, or exactly one of the boundaries."""
    if pick < 35:
        return fraction * limit.window / 4
    return [0.0, limit.window, policy.cooldown, policy.window][pick % 4]


def ended(paused_until: float, now: float) -> float:
    """A pause that is over is over: Redis lets its key expire, memory keeps the old end."""
    return max(paused_until, now)


@dataclass
class Run:
    """Plays operations on one route and holds it to the model after every step."""

    route: Route
    changes: list[StateChange]
    limit: RateLimit
    policy: BreakerPolicy
    now: float
    held: list[Held] = field(default_factory=list)
    outcomes: list[tuple[float, bool]] = field(default_factory=list)  # closed-state record
    paused_until: float = -math.inf

    # -- the model ---------------------------------------------------------------

    def live(self) -> list[tuple[float, int]]:
        return [(h.slot.at, h.tokens) for h in self.held if not h.cancelled]

    def generation(self) -> int:
        # Every transition starts a generation (no reset is used here), so the count of
        # announced changes is the current generation.
        return len(self.changes)

    def is_live(self, held: Held) -> bool:
        permit = held.permit
        if permit is None or held.finished or permit.generation != self.generation():
            return False
        # A probe not reported within a cooldown is forgotten by the breaker.
        return not (permit.probe and held.granted + self.policy.cooldown <= self.now)

    def windowed(self) -> list[tuple[float, bool]]:
        horizon = self.now - self.policy.window
        return [(t, ok) for t, ok in self.outcomes if not t <= horizon]

    def tokens(self, fraction: float) -> int:
        return int(fraction * (self.limit.tokens_per_minute or 200))

    # -- steps -------------------------------------------------------------------

    def step(self, op: str, pick: int, fraction: float) -> None:
        before = len(self.changes)
        getattr(self, f"do_{op}")(pick, fraction)
        if any(c.new is CLOSED for c in self.changes[before:]):
            self.outcomes.clear()
        self.check()

    def do_tick(self, pick: int, fraction: float) -> None:
        self.now += tick(self.limit, self.policy, pick, fraction)

    def do_look(self, pick: int, fraction: float) -> None:
        tokens = self.tokens(fraction)
        look = self.route.look(tokens, self.now)
        assert look.wait == earliest_feasible(self.live(), tokens, self.now, self.limit) - self.now
        assert ended(look.paused_until, self.now) == ended(self.paused_until, self.now)
        snap = self.route.snapshot(self.now).breaker
        if snap.state is OPEN:
            assert look.ready_at == snap.retry_at
        elif snap.state is HALF_OPEN and snap.probes_in_flight >= self.policy.half_open_probes:
            assert look.ready_at == math.inf
        else:
            assert look.ready_at == self.now

    def do_admit(self, pick: int, fraction: float) -> None:
        tokens = self.tokens(fraction)
        expected = earliest_feasible(self.live(), tokens, self.now, self.limit)
        snap = self.route.snapshot(self.now).breaker
        ticket = self.route.admit(tokens, self.now)
        if expected > self.now:
            event("admit: queued")
            assert ticket.slot is not None
            assert ticket.permit is None
        elif (
            snap.state is OPEN
            or (snap.state is HALF_OPEN and snap.probes_in_flight >= self.policy.half_open_probes)
            or self.paused_until > self.now
        ):
            event("admit: refused")
            assert ticket == Ticket(None, None)
            return
        else:
            event(f"admit: granted, {snap.state.value}")
            assert ticket.permit is not None
            assert ticket.permit.probe == (snap.state is HALF_OPEN)
            assert ticket.permit.generation == self.generation()
        assert ticket.slot is not None
        assert ticket.slot.at == expected
        assert ticket.slot.wait == expected - self.now
        self.held.append(Held(ticket.slot, tokens, ticket.permit, granted=self.now))

    def do_acquire(self, pick: int, fraction: float) -> None:
        queued = [h for h in self.held if h.permit is None and not h.cancelled]
        snap = self.route.snapshot(self.now).breaker
        permit = self.route.acquire(self.now)
        refuses = (
            snap.state is OPEN
            or (snap.state is HALF_OPEN and snap.probes_in_flight >= self.policy.half_open_probes)
            or self.paused_until > self.now
        )
        if refuses:
            assert permit is None
            return
        assert permit is not None
        assert permit.probe == (snap.state is HALF_OPEN)
        if queued:
            queued[pick % len(queued)].permit = permit
            queued[pick % len(queued)].granted = self.now
        else:
            self.route.release(permit)

    def do_ready(self, pick: int, fraction: float) -> None:
        ready = self.route.ready_at(self.now)
        assert ready == self.route.look(0, self.now).ready_at

    def admitted(self, pick: int) -> Held | None:
        mine = [h for h in self.held if h.permit is not None and not h.finished]
        return mine[pick % len(mine)] if mine else None

    def outcome(self, held: Held, ok: bool) -> None:
        """Model the breaker side of a success or failure of ``held``'s permit."""
        assert held.permit is not None
        before = self.route.snapshot(self.now)
        live = self.is_live(held)  # after the snapshot, which may have moved the breaker on
        state_before = before.breaker.state
        count = len(self.changes)
        if ok:
            self.route.succeed(held.slot, held.permit, self.now, None)
        else:
            self.route.fail(held.slot, held.permit, self.now)
        held.finished = True
        after = self.route.snapshot(self.now)
        event(f"outcome: {'live' if live else 'stale'}{' probe' if held.permit.probe else ''}")
        if not live:
            assert after == before
            assert len(self.changes) == count
            return
        if held.permit.probe:
            event(f"probe {'closed' if ok else 'reopened'} the breaker")
            assert after.breaker.state is (CLOSED if ok else OPEN)
            return
        assert state_before is CLOSED
        self.outcomes = [*self.windowed(), (self.now, ok)]
        failures = sum(not o for _, o in self.outcomes)
        rate = self.policy.failure_rate
        opens = (
            not ok
            and failures >= self.policy.failure_threshold
            and (rate is None or failures / len(self.outcomes) >= rate)
        )
        if opens:
            event("a failure opened the breaker")
        assert after.breaker.state is (OPEN if opens else CLOSED)

    def do_succeed(self, pick: int, fraction: float) -> None:
        held = self.admitted(pick)
        if held is None:
            return
        # Usage at most the estimate: windows already granted cannot take back an
        # underestimate (see test_limiter.py), and this suite checks every window.
        usage = None if fraction < 0.2 else int(held.tokens * fraction)
        self.outcome(held, ok=True)
        if usage is not None:
            self.route.succeed(held.slot, held.permit, self.now, usage)  # type: ignore[arg-type]
            if not held.cancelled:
                held.tokens, held.settled = max(0, usage), True

    def do_fail(self, pick: int, fraction: float) -> None:
        held = self.admitted(pick)
        if held is not None:
            self.outcome(held, ok=False)

    def do_release(self, pick: int, fraction: float) -> None:
        held = self.admitted(pick)
        if held is None:
            return
        assert held.permit is not None
        self.route.release(held.permit)
        held.finished = True

    def do_withdraw(self, pick: int, fraction: float) -> None:
        held = self.admitted(pick)
        if held is None:
            return
        assert held.permit is not None
        self.route.withdraw(held.slot, held.permit)
        held.finished = True
        held.cancelled = held.cancelled or not held.settled

    def do_cancel(self, pick: int, fraction: float) -> None:
        if self.held:
            held = self.held[pick % len(self.held)]
            self.route.cancel(held.slot)
            held.cancelled = held.cancelled or not held.settled

    def do_stale(self, pick: int, fraction: float) -> None:
        """Hand back a permit a second time: nothing may change."""
        done = [h for h in self.held if h.permit is not None and h.finished]
        if not done:
            return
        held = done[pick % len(done)]
        assert held.permit is not None
        before, count = self.route.snapshot(self.now), len(self.changes)
        if fraction < 0.5:
            self.route.fail(held.slot, held.permit, self.now)
        else:
            self.route.release(held.permit)
        assert self.route.snapshot(self.now) == before
        assert len(self.changes) == count

    def do_pause(self, pick: int, fraction: float) -> None:
        seconds = fraction * self.limit.window
        self.route.pause(self.now, seconds)
        self.paused_until = max(self.paused_until, self.now + seconds)

    def do_snapshot(self, pick: int, fraction: float) -> None:
        self.route.snapshot(self.now)  # check() compares it with the model

    # -- invariants --------------------------------------------------------------

    def check(self) -> None:
        snap = self.route.snapshot(self.now)
        limit, w, now = self.limit, self.limit.window, self.now
        schedule = sorted(self.live())
        for s, _ in schedule:  # no window [s, s + w) over either limit
            inside = [k for a, k in schedule if s <= a < s + w]
            if limit.requests_per_minute is not None:
                assert len(inside) <= limit.requests_per_minute
            if limit.tokens_per_minute is not None:
                assert sum(inside) <= limit.tokens_per_minute
        granted = [h.slot.at for h in self.held if not h.cancelled]
        assert granted == sorted(granted)  # FIFO

        counting = [(a, k) for a, k in self.live() if a + w > now]
        admitted = [(a, k) for a, k in counting if a <= now]
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        assert snap.limiter == LimiterSnapshot(
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
            requests_used=len(admitted),
            estimated_tokens=sum(k for _, k in admitted),
            queue_length=len(counting) - len(admitted),
            refill_time=min(a for a, _ in admitted) + w - now if admitted else 0.0,
            requests_remaining=None if rpm is None else max(0, rpm - len(counting)),
            tokens_remaining=None if tpm is None else max(0, tpm - sum(k for _, k in counting)),
        )

        breaker = snap.breaker
        current = self.changes[-1].new if self.changes else CLOSED
        assert breaker.state is current
        live_probes = [h for h in self.held if self.is_live(h) and h.permit and h.permit.probe]
        assert breaker.probes_in_flight == len(live_probes) <= self.policy.half_open_probes
        if breaker.state is not HALF_OPEN:
            assert breaker.probes_in_flight == 0
        if breaker.state is CLOSED:
            assert breaker.opened_at is None
            assert breaker.retry_at is None
        else:
            last_open = next(c for c in reversed(self.changes) if c.new is OPEN)
            assert breaker.opened_at == last_open.at
            if breaker.state is OPEN:
                assert breaker.retry_at == last_open.at + self.policy.cooldown
                assert now < breaker.retry_at
        windowed = self.windowed()
        assert (breaker.failures, breaker.calls) == (
            sum(not ok for _, ok in windowed),
            len(windowed),
        )
        assert snap.paused_for == max(0.0, self.paused_until - now)


def play(
    route: Route,
    changes: list[StateChange],
    limit: RateLimit,
    policy: BreakerPolicy,
    start: float,
    ops: list[tuple[str, int, float]],
) -> Run:
    run = Run(route, changes, limit, policy, start)
    for op, pick, fraction in ops:
        run.step(op, pick, fraction)
    return run


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=limits, policy=policies, start=starts, ops=op_lists)
def test_property_every_step_matches_the_model(
    backend: Backend,
    limit: RateLimit,
    policy: BreakerPolicy,
    start: float,
    ops: list[tuple[str, int, float]],
) -> None:
    route, changes = backend.route(limit, policy)
    play(route, changes, limit, policy, start, ops)


# --------------------------------------------------------------------------- differential


def _same_ticket(a: Ticket, b: Ticket) -> None:
    assert (a.slot is None) == (b.slot is None)
    if a.slot is not None and b.slot is not None:
        assert (a.slot.at, a.slot.wait) == (b.slot.at, b.slot.wait)
    assert (a.permit is None) == (b.permit is None)
    if a.permit is not None and b.permit is not None:
        assert (a.permit.probe, a.permit.generation) == (b.permit.probe, b.permit.generation)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=limits, policy=policies, start=starts, ops=op_lists)
def test_differential_memory_and_redis_decide_alike(
    memory_backend: Backend,
    redis_backend: Backend,
    limit: RateLimit,
    policy: BreakerPolicy,
    start: float,
    ops: list[tuple[str, int, float]],
) -> None:
    """The same operations on a memory route and a Redis route: the same answers."""
    pair = [memory_backend.route(limit, policy), redis_backend.route(limit, policy)]
    runs = [Run(route, changes, limit, policy, start) for route, changes in pair]
    for op, pick, fraction in ops:
        memory, redis = (_answer(one, op, pick, fraction) for one in runs)
        now = runs[0].now
        if isinstance(memory, Ticket) and isinstance(redis, Ticket):
            _same_ticket(memory, redis)
        elif isinstance(memory, Look) and isinstance(redis, Look):
            assert (memory.ready_at, memory.wait) == (redis.ready_at, redis.wait)
            assert ended(memory.paused_until, now) == ended(redis.paused_until, now)
        elif isinstance(memory, Permit) or isinstance(redis, Permit):
            assert isinstance(memory, Permit)
            assert isinstance(redis, Permit)
            assert (memory.probe, memory.generation) == (redis.probe, redis.generation)
        else:
            assert memory == redis
        assert runs[0].route.snapshot(now) == _renamed(runs[1].route.snapshot(now), runs[0])
        assert [(c.old, c.new, c.at, c.reason) for c in runs[0].changes] == [
            (c.old, c.new, c.at, c.reason) for c in runs[1].changes
        ]


def _renamed(snapshot: Any, like: Run) -> Any:
    return replace(snapshot, name=like.route.name)


def _answer(run: Run, op: str, pick: int, fraction: float) -> object:
    """Apply one operation without the model's assertions; return what the route said."""
    route, now = run.route, run.now
    mine = [h for h in run.held if h.permit is not None and not h.finished]
    if op == "tick":
        run.now += tick(run.limit, run.policy, pick, fraction)
        return run.now
    if op == "look":
        return route.look(run.tokens(fraction), now)
    if op == "admit":
        tokens = run.tokens(fraction)
        ticket = route.admit(tokens, now)
        if ticket.slot is not None:
            run.held.append(Held(ticket.slot, tokens, ticket.permit))
        return ticket
    if op == "acquire":
        permit = route.acquire(now)
        queued = [h for h in run.held if h.permit is None and not h.cancelled]
        if permit is not None:
            if queued:
                queued[pick % len(queued)].permit = permit
            else:
                route.release(permit)
        return permit
    if op == "ready":
        return route.ready_at(now)
    if op in ("succeed", "fail", "release", "withdraw") and mine:
        held = mine[pick % len(mine)]
        assert held.permit is not None
        held.finished = True
        if op == "succeed":
            # Up to twice the estimate: both backends must also agree on underestimates.
            usage = None if fraction < 0.2 else int(held.tokens * fraction * 2)
            route.succeed(held.slot, held.permit, now, usage)
        elif op == "fail":
            route.fail(held.slot, held.permit, now)
        elif op == "release":
            route.release(held.permit)
        else:
            route.withdraw(held.slot, held.permit)
            held.cancelled = True
        return None
    if op == "cancel" and run.held:
        held = run.held[pick % len(run.held)]
        route.cancel(held.slot)
        held.cancelled = True
        return None
    if op == "stale":
        done = [h for h in run.held if h.permit is not None and h.finished]
        if done:
            held = done[pick % len(done)]
            assert held.permit is not None
            if fraction < 0.5:
                route.fail(held.slot, held.permit, now)
            else:
                route.release(held.permit)
        return None
    if op == "pause":
        route.pause(now, fraction * run.limit.window)
    return None  # "snapshot" too: snapshots are compared after every step


# --------------------------------------------------------------------------- windows, differential


# A few windows, each limiting a few dimensions, for the differential test below.
window_limits = st.builds(
    lambda first, second, day: first | second | day,
    st.builds(
        RateLimit,
        requests_per_minute=st.none() | st.integers(1, 3),
        tokens_per_minute=st.none() | st.integers(20, 120),
        window=st.sampled_from([60.0, 7.5]),
        input_tokens_per_minute=st.none() | st.integers(20, 120),
        output_tokens_per_minute=st.none() | st.integers(10, 60),
    ),
    st.builds(
        RateLimit.window,
        st.sampled_from([1.0, 30.0]),
        requests=st.none() | st.integers(1, 4),
        output_tokens=st.none() | st.integers(10, 90),
    ),
    st.builds(
        RateLimit.window,
        st.sampled_from([DAY, 7200.0]),
        requests=st.none() | st.integers(2, 8),
        tokens=st.none() | st.integers(60, 400),
    ),
)
window_ops = st.lists(
    st.tuples(
        st.sampled_from(("look", "admit", "admit", "tick", "tick", "succeed", "cancel", "429")),
        st.integers(0, 50),
        st.floats(0, 1),
    ),
    min_size=10,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=window_limits, start=starts, ops=window_ops, flight=st.booleans())
# An answer slower than any before lengthens the in-flight time: admissions that had left
# a window under the shorter one count again, on one window and on several.
@example(
    limit=RateLimit(window=7.5) | RateLimit.window(30.0, output_tokens=10),
    start=0.0,
    ops=[
        ("admit", 0, 0.0),
        ("admit", 0, 0.0),
        ("succeed", 0, 0.0),
        ("tick", 1, 0.0),
        ("succeed", 0, 0.0),
    ],
    flight=True,
)
@example(
    limit=RateLimit(window=7.5),
    start=0.0,
    ops=[("admit", 0, 0.0), ("tick", 0, 0.4375), ("succeed", 0, 0.0)],
    flight=True,
)
def test_differential_windows_decide_alike(
    memory_backend: Backend,
    redis_backend: Backend,
    limit: RateLimit,
    start: float,
    ops: list[tuple[str, int, float]],
    flight: bool,
) -> None:
    """Several windows, input and output tokens, a sliced long window, in-flight time:
    the same operations on memory and Redis give the same answers and window figures."""
    routes = [memory_backend.route(limit)[0], redis_backend.route(limit)[0]]
    for route in routes:
        route.provider_cap = ProviderCap()
        if flight:
            route.limiter.count_in_flight()
    held: list[list[tuple[Slot, Permit | None]]] = [[], []]
    several = limit.several or limit.window > EXACT_UP_TO
    now = start
    for op, pick, fraction in ops:
        tokens: int = ask(int(fraction * 60), int(fraction * 30))
        if not limit.several and limit.window <= EXACT_UP_TO:
            # The one-window path keeps totals alone: a 429's window later reads them as
            # input and output both (the careful side), where memory kept the split.
            tokens = int(tokens)
        if routes[0].limiter.too_large(tokens):
            continue  # refused before any route is asked (``check_fits``)
        answers = []
        for route, mine in zip(routes, held, strict=True):
            # A request answers within minutes: Redis keeps an admission's own entry (what
            # settles a long window's slice) for 15 of them, memory as long as its caller.
            mine[:] = [h for h in mine if now - h[0].at < 600]
            if op == "look":
                answers.append(route.look(tokens, now).wait)
            elif op == "admit":
                ticket = route.admit(tokens, now)
                if ticket.slot is not None:
                    mine.append((ticket.slot, ticket.permit))
                answers.append(None if ticket.slot is None else ticket.slot.at)
            elif op == "succeed" and mine:
                slot, permit = mine.pop(pick % len(mine))
                if permit is not None:
                    usage: int = Tokens(
                        int(fraction * 40), input=int(fraction * 30), output=int(fraction * 10)
                    )
                    if not isinstance(tokens, Tokens):
                        usage = int(usage)  # the one-window path, as above
                    route.succeed(slot, permit, now + fraction, usage)
            elif op == "cancel" and mine:
                route.cancel(mine.pop(pick % len(mine))[0])
            elif op == "429":
                # A 429 naming a window, one of the route's or a new long one, with its
                # limit. (A new window of up to an hour counts, in Redis, what the log
                # holds from before it was named, beside the 429's full count; memory
                # starts it empty but for that: Redis is the more careful there.)
                spans = [*(w.seconds for w in limit.windows), DAY, 7200.0]
                what = ("requests", "output_tokens")[pick % 2]
                seconds = spans[(pick // 2) % len(spans)]
                hints = RateLimitHints(exhausted=((what, seconds, 1 + pick % 5),))
                route.observe(hints, now)
                several = True  # a window a 429 named: Redis takes the lanes' path
        if op == "tick":
            now += [fraction * 20, 7.5, 60.0, DAY / SLICES, 3600.0][pick % 5]
        assert answers[0] == answers[1] if answers else True, (op, answers)
        memory, redis = (route.snapshot(now).limiter for route in routes)
        assert memory == redis
        if not several:
            # One window of requests and tokens: Redis keeps the totals alone (its fast
            # path), so input and output read as the total.
            memory = replace(
                memory,
                windows=tuple(
                    replace(w, input_tokens_used=w.tokens_used, output_tokens_used=w.tokens_used)
                    for w in memory.windows
                ),
            )
        assert memory.windows == redis.windows
        assert (memory.held_by, memory.held_for) == (redis.held_by, redis.held_for)
