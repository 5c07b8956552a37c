"""The Redis backend when Redis forgets (FLUSHALL, a restart without persistence) and when
the Redis server's clock steps (NTP, a failover to a replica with another clock).

Each test holds two ``RedisState`` objects over one prefix, standing for two processes, on a
private ``redis-server`` (a flush or a restart must reach no other test). Clock steps are
made with ``RedisState.server_time_shift``, which the script adds to the server's ``TIME``,
so nothing touches the machine's clock and nothing sleeps: the assertions are on the waits
the script computes, not on durations.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from resilient_llm import BreakerPolicy, FakeClock, RateLimit
from resilient_llm.events import Event
from resilient_llm.policies.breaker import CircuitState, StateChange
from resilient_llm.state.redis import RedisState
from resilient_llm.state.redis._route import RedisRoute

from .conftest import RedisServer

CLOSED, OPEN = CircuitState.CLOSED, CircuitState.OPEN
_NAMES = itertools.count()
ONE_FAILURE = BreakerPolicy(failure_threshold=1, cooldown=30.0)


class Processes:
    """``RedisState`` objects over one prefix, each standing for a process."""

    def __init__(self, server: RedisServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.states: list[RedisState] = []
        self.events: list[Event] = []
        self.name = f"route-{next(_NAMES)}"
        self.shift = 0.0

    def route(
        self,
        limit: RateLimit,
        policy: BreakerPolicy = ONE_FAILURE,
        **options: object,
    ) -> tuple[RedisRoute, list[StateChange]]:
        state = RedisState(self.server.url, prefix=self.prefix, **options)  # type: ignore[arg-type]
        state.server_time_shift = self.shift
        self.states.append(state)
        route = state.route(self.name, limit, policy, attempt_timeout=None, emit=self.events.append)
        changes: list[StateChange] = []
        route.add_breaker_listener(changes.append)
        return route, changes

    def forget(self, how: str) -> None:
        """Redis loses every key: FLUSHALL, or a restart with persistence off."""
        if how == "flushall":
            client = self.server.client()
            client.flushall()
            client.close()
        else:
            self.server.restart()
            # The pools' sockets died with the old server: the next call reconnects.
            for state in self.states:
                state.client.connection_pool.disconnect()

    def step(self, seconds: float) -> None:
        """The server's clock steps by ``seconds``, for every process."""
        self.shift += seconds
        for state in self.states:
            state.server_time_shift = self.shift

    def close(self) -> None:
        for state in self.states:
            state.close()
        # Nothing here may have sent a route to its fallback: every answer came from Redis.
        assert not [e for e in self.events if e.kind == "state_down"], self.events


@pytest.fixture
def processes(own_redis: RedisServer, prefix: str) -> Iterator[Processes]:
    made = Processes(own_redis, prefix)
    yield made
    made.close()


FORGET = pytest.mark.parametrize("how", ["flushall", "restart"])


# --------------------------------------------------------------------------- forgetting


@FORGET
def test_a_reservation_from_before_a_flush_cancels_nothing_after_it(
    processes: Processes, how: str
) -> None:
    limit = RateLimit(requests_per_minute=2)
    a, _ = processes.route(limit, time="client")
    b, _ = processes.route(limit, time="client")
    old = a.admit(0, 0.0)
    assert old.slot is not None
    processes.forget(how)
    sent = [b.admit(0, 1.0) for _ in range(2)]
    assert all(t.slot is not None and t.slot.wait == 0 for t in sent)
    a.cancel(old.slot)  # the call from before the flush was never sent
    third = b.admit(0, 2.0)
    # Two went out at 1.0: the third waits for the window, the flush gave nothing back.
    assert third.slot is not None
    assert third.permit is None
    assert third.slot.wait == pytest.approx(59.0)


@FORGET
def test_a_settlement_from_before_a_flush_settles_nothing_after_it(
    processes: Processes, how: str
) -> None:
    limit = RateLimit(tokens_per_minute=100)
    policy = BreakerPolicy(failure_threshold=5, cooldown=30.0)
    a, _ = processes.route(limit, policy, time="client")
    b, _ = processes.route(limit, policy, time="client")
    old = a.admit(60, 0.0)
    assert old.slot is not None
    assert old.permit is not None
    processes.forget(how)
    new = b.admit(60, 1.0)
    assert new.slot is not None
    assert new.slot.wait == 0
    a.succeed(old.slot, old.permit, 1.5, 0)  # says it used no tokens
    later = b.admit(60, 2.0)
    assert later.slot is not None
    assert later.slot.wait == pytest.approx(59.0)  # 60 + 60 > 100 until 61.0


@FORGET
def test_a_permit_from_before_a_flush_takes_no_permit_after_it(
    processes: Processes, how: str
) -> None:
    limit = RateLimit()
    a, _ = processes.route(limit, time="client")
    b, b_changes = processes.route(limit, time="client")
    old = a.acquire(0.0)
    assert old is not None
    processes.forget(how)
    new = b.acquire(1.0)
    assert new is not None
    a.release(old)  # would hand back b's permit if the ids met
    slot = b.admit(0, 1.0).slot
    assert slot is not None
    b.fail(slot, new, 2.0)  # threshold 1: b's own failure opens the breaker
    assert b.acquire(3.0) is None
    assert [(c.old, c.new) for c in b_changes] == [(CLOSED, OPEN)]


def test_writes_a_promoted_replica_never_got_leave_no_id_to_meet(processes: Processes) -> None:
    """A replica promoted after a failover may lack the last writes: its counters are
    behind, so the next ids come out again, while their first owners still hold them."""
    limit = RateLimit(requests_per_minute=2)
    a, _ = processes.route(limit, time="client")
    b, _ = processes.route(limit, time="client")
    old = a.admit(0, 0.0)
    assert old.slot is not None
    assert old.permit is not None
    log, tokens, meta, breaker, _, live, *_ = processes.states[0].keys(processes.name)
    client = processes.server.client()
    # What the replica has: the state before a's admission.
    client.zrem(log, old.slot.id)
    client.hdel(tokens, old.slot.id)
    client.hincrby(meta, "seq", -1)
    client.hincrby(breaker, "next_id", -1)
    client.delete(live)
    client.close()
    sent = [b.admit(0, 1.0) for _ in range(2)]
    assert [t.slot is not None and t.slot.wait for t in sent] == [0.0, 0.0]
    second = sent[1].permit
    assert second is not None
    a.cancel(old.slot)
    a.release(old.permit)
    third = b.admit(0, 2.0)
    assert third.slot is not None
    assert third.slot.wait == pytest.approx(59.0)
    slot = sent[1].slot
    assert slot is not None
    b.fail(slot, second, 2.0)  # threshold 1: b's permit is still b's
    assert b.acquire(3.0) is None


@FORGET
def test_after_a_flush_a_route_hears_the_new_breaker_again(processes: Processes, how: str) -> None:
    """The breaker's generation restarts with its keys: a route that had read a higher one
    must not take every later reply for a stale one."""
    limit = RateLimit()
    a, a_changes = processes.route(limit, time="client")
    b, _ = processes.route(limit, time="client")
    for now in (0.0, 1.0, 2.0):  # open, reset, open: generation 3
        if now == 1.0:
            a.reset(now)
            continue
        ticket = a.admit(0, now)
        assert ticket.slot is not None
        assert ticket.permit is not None
        a.fail(ticket.slot, ticket.permit, now)
    a.reset(3.0)
    assert a.shared_snapshot(3.0).breaker.state is CLOSED
    processes.forget(how)
    ticket = b.admit(0, 4.0)
    assert ticket.slot is not None
    assert ticket.permit is not None
    b.fail(ticket.slot, ticket.permit, 4.0)  # opens the new breaker: generation 1
    assert a.acquire(5.0) is None
    assert a.shared_snapshot(5.0).breaker.state is OPEN
    assert (a_changes[-1].old, a_changes[-1].new, a_changes[-1].reason) == (
        CLOSED,
        OPEN,
        "by another process",
    )


# --------------------------------------------------------------------------- clock steps


def admit_all(route: RedisRoute, n: int) -> list[float]:
    """The waits of ``n`` admissions in a row (engine time plays no part: server time)."""
    waits = []
    for _ in range(n):
        ticket = route.admit(0, 0.0)
        assert ticket.slot is not None
        waits.append(ticket.slot.wait)
    return waits


def test_a_server_clock_stepping_back_holds_no_admission(processes: Processes) -> None:
    a, _ = processes.route(RateLimit(requests_per_minute=10))
    assert admit_all(a, 2) == [0.0, 0.0]
    processes.step(-120.0)
    assert admit_all(a, 2) == [0.0, 0.0]
    # A process joining after the step shares the corrected time.
    b, _ = processes.route(RateLimit(requests_per_minute=10))
    assert admit_all(b, 1) == [0.0]


def test_a_server_clock_stepping_forward_grants_no_second_quota(processes: Processes) -> None:
    a, _ = processes.route(RateLimit(requests_per_minute=2))
    assert admit_all(a, 2) == [0.0, 0.0]
    processes.step(120.0)
    (wait,) = admit_all(a, 1)
    assert 58.0 < wait <= 60.0
    # Another process joining after the step shares the corrected time.
    b, _ = processes.route(RateLimit(requests_per_minute=2))
    (wait,) = admit_all(b, 1)
    assert 58.0 < wait <= 60.0


@pytest.mark.parametrize("step", [-120.0, 120.0])
def test_awaited_decisions_carry_the_same_bounds(processes: Processes, step: float) -> None:
    a, _ = processes.route(RateLimit(requests_per_minute=2))

    async def admit() -> float:
        ticket, _ = await a.aperform("admit", (0, 0.0))
        assert ticket.slot is not None
        return ticket.slot.wait

    async def main() -> list[float]:
        waits = [await admit(), await admit()]
        processes.step(step)
        waits.append(await admit())
        await processes.states[0].aclose()
        return waits

    first, second, third = asyncio.run(main())
    assert (first, second) == (0.0, 0.0)
    assert 58.0 < third <= 60.0


@pytest.mark.parametrize("step", [-120.0, 120.0])
def test_a_clock_step_leaves_the_breaker_cooldown_as_it_was(
    processes: Processes, step: float
) -> None:
    a, _ = processes.route(RateLimit())
    ticket = a.admit(0, 0.0)
    assert ticket.slot is not None
    assert ticket.permit is not None
    a.fail(ticket.slot, ticket.permit, 0.0)
    processes.step(step)
    ready = a.ready_at(0.0)
    assert 28.0 < ready <= 30.0


def test_time_that_really_passed_is_not_taken_for_a_step(processes: Processes) -> None:
    """61 s pass on the process's own clock and on the server's alike: the window ends."""
    clock = FakeClock(0.0)
    a, _ = processes.route(RateLimit(requests_per_minute=2), clock=clock)
    assert admit_all(a, 2) == [0.0, 0.0]
    (wait,) = admit_all(a, 1)
    assert wait > 58.0
    clock.advance(61.0)
    processes.step(61.0)
    assert admit_all(a, 1) == [0.0]


def test_time_a_process_cannot_account_for_is_taken_for_a_step(processes: Processes) -> None:
    """The server's clock runs 61 s ahead while the process's own clock says 1 s passed."""
    clock = FakeClock(0.0)
    a, _ = processes.route(RateLimit(requests_per_minute=2), clock=clock)
    assert admit_all(a, 2) == [0.0, 0.0]
    clock.advance(1.0)
    processes.step(61.0)
    (wait,) = admit_all(a, 1)
    assert 57.0 < wait <= 59.0
