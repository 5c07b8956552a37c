"""CircuitBreaker: every transition, permits and generations, listeners, invariants.

Time is a plain float handed to each call; nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from resilient_llm.errors import ConfigurationError
from resilient_llm.policies.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    Permit,
    StateChange,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def make(
    *,
    threshold: int = 3,
    rate: float | None = None,
    window: float = 60.0,
    cooldown: float = 30.0,
    probes: int = 1,
) -> tuple[CircuitBreaker, list[StateChange]]:
    policy = BreakerPolicy(
        failure_threshold=threshold,
        failure_rate=rate,
        window=window,
        cooldown=cooldown,
        half_open_probes=probes,
    )
    breaker = CircuitBreaker(policy, name="route-a")
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    return breaker, changes


def fail(breaker: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        permit = breaker.acquire(now)
        assert permit is not None
        breaker.record_failure(permit, now)


def succeed(breaker: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        permit = breaker.acquire(now)
        assert permit is not None
        breaker.record_success(permit, now)


def opened(
    now: float = 0.0, **kwargs: float | int | None
) -> tuple[CircuitBreaker, list[StateChange]]:
    breaker, changes = make(**kwargs)  # type: ignore[arg-type]
    fail(breaker, now, breaker.policy.failure_threshold)
    assert breaker.state(now) is OPEN
    return breaker, changes


def half_open(**kwargs: float | int | None) -> tuple[CircuitBreaker, list[StateChange]]:
    breaker, changes = opened(0.0, **kwargs)
    assert breaker.state(breaker.policy.cooldown) is HALF_OPEN
    return breaker, changes


# --- policy ---------------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = BreakerPolicy()
    assert policy.failure_threshold == 5
    assert policy.failure_rate is None
    assert (policy.window, policy.cooldown, policy.half_open_probes) == (60.0, 30.0, 1)


def test_policy_accepts_timedelta_and_stores_floats() -> None:
    policy = BreakerPolicy(
        window=timedelta(minutes=2), cooldown=timedelta(seconds=5), failure_rate=1
    )
    assert (policy.window, policy.cooldown, policy.failure_rate) == (120.0, 5.0, 1.0)
    assert isinstance(policy.window, float)
    assert isinstance(policy.failure_rate, float)


def test_policy_is_frozen_and_keyword_only() -> None:
    with pytest.raises(AttributeError):
        BreakerPolicy().cooldown = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        BreakerPolicy(5)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "BreakerPolicy.failure_threshold"),
        ({"failure_threshold": True}, "BreakerPolicy.failure_threshold"),
        ({"failure_threshold": 2.5}, "BreakerPolicy.failure_threshold"),
        ({"failure_rate": 0.0}, "BreakerPolicy.failure_rate"),
        ({"failure_rate": 1.5}, "BreakerPolicy.failure_rate"),
        ({"failure_rate": math.nan}, "BreakerPolicy.failure_rate"),
        ({"failure_rate": True}, "BreakerPolicy.failure_rate"),
        ({"failure_rate": timedelta(seconds=1)}, "BreakerPolicy.failure_rate"),
        ({"window": 0}, "BreakerPolicy.window"),
        ({"window": math.inf}, "BreakerPolicy.window"),
        ({"window": "60"}, "BreakerPolicy.window"),
        ({"cooldown": -1}, "BreakerPolicy.cooldown"),
        ({"cooldown": timedelta(0)}, "BreakerPolicy.cooldown"),
        ({"half_open_probes": 0}, "BreakerPolicy.half_open_probes"),
        ({"half_open_probes": False}, "BreakerPolicy.half_open_probes"),
    ],
)
def test_policy_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        BreakerPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_validation_message() -> None:
    with pytest.raises(ConfigurationError) as info:
        BreakerPolicy(cooldown=-1)
    assert str(info.value) == "BreakerPolicy.cooldown must be a finite number > 0, got -1"


def test_breaker_defaults_and_properties() -> None:
    breaker = CircuitBreaker()
    assert breaker.policy == BreakerPolicy()
    assert breaker.name == ""
    assert CircuitBreaker(name="x").name == "x"
    assert breaker.state(0.0) is CLOSED


def test_state_values_are_strings() -> None:
    assert [s.value for s in CircuitState] == ["closed", "open", "half_open"]
    assert OPEN == "open"
    assert isinstance(HALF_OPEN, str)


# --- closed -> open -------------------------------------------------------------------


def test_opens_at_the_threshold_not_before() -> None:
    breaker, changes = make(threshold=3)
    fail(breaker, 1.0, 2)
    assert breaker.state(1.0) is CLOSED
    assert changes == []
    fail(breaker, 2.0)
    assert breaker.state(2.0) is OPEN
    assert changes == [StateChange("route-a", CLOSED, OPEN, 2.0, "3 failures in 60s")]


def test_closed_permits_are_not_probes() -> None:
    breaker, _ = make()
    permit = breaker.acquire(0.0)
    assert permit is not None
    assert not permit.probe


def test_successes_do_not_reset_the_failure_count() -> None:
    breaker, _ = make(threshold=3)
    fail(breaker, 0.0, 2)
    succeed(breaker, 1.0, 10)
    fail(breaker, 2.0)
    assert breaker.state(2.0) is OPEN


def test_failures_outside_the_window_do_not_count() -> None:
    breaker, _ = make(threshold=3, window=10.0)
    fail(breaker, 0.0, 2)
    # At exactly one window later the old failures have aged out.
    fail(breaker, 10.0)
    assert breaker.state(10.0) is CLOSED
    assert breaker.snapshot(10.0).failures == 1
    fail(breaker, 19.0, 2)
    assert breaker.state(19.0) is OPEN


def test_a_failure_just_inside_the_window_counts() -> None:
    breaker, _ = make(threshold=2, window=10.0)
    fail(breaker, 0.0)
    fail(breaker, 9.999)
    assert breaker.state(9.999) is OPEN


def test_failure_rate_mode_needs_count_and_rate() -> None:
    breaker, _ = make(threshold=3, rate=0.5)
    succeed(breaker, 0.0, 4)
    fail(breaker, 1.0, 3)  # 3 of 7 < 50%: count met, rate not
    assert breaker.state(1.0) is CLOSED
    fail(breaker, 2.0)  # 4 of 8 = 50%
    assert breaker.state(2.0) is OPEN


def test_failure_rate_mode_rate_alone_is_not_enough() -> None:
    breaker, changes = make(threshold=3, rate=0.5)
    fail(breaker, 0.0, 2)  # 100% failed, but only two
    assert breaker.state(0.0) is CLOSED
    fail(breaker, 0.5)
    assert changes[-1].reason == "3 of 3 calls failed in 60s"


def test_failure_rate_counts_only_calls_in_the_window() -> None:
    breaker, _ = make(threshold=2, rate=0.5, window=10.0)
    succeed(breaker, 0.0, 10)
    fail(breaker, 5.0)
    assert breaker.snapshot(5.0).calls == 11
    fail(breaker, 10.0)  # the ten successes aged out: 2 of 2
    assert breaker.state(10.0) is OPEN


# --- open -----------------------------------------------------------------------------


def test_open_rejects_until_the_cooldown_and_half_opens_exactly_at_it() -> None:
    breaker, changes = opened(100.0, cooldown=30.0)
    assert breaker.acquire(100.0) is None
    assert breaker.acquire(129.999) is None
    assert breaker.state(129.999) is OPEN
    permit = breaker.acquire(130.0)
    assert permit is not None
    assert permit.probe
    assert changes[-1] == StateChange("route-a", OPEN, HALF_OPEN, 130.0, "cooldown elapsed")


def test_half_open_transition_is_announced_once() -> None:
    breaker, changes = opened(0.0, cooldown=5.0)
    for now in (5.0, 6.0, 7.0):
        breaker.state(now)
        breaker.snapshot(now)
    assert [c.new for c in changes] == [OPEN, HALF_OPEN]


# --- half-open ------------------------------------------------------------------------


def test_one_probe_by_default_second_acquire_is_refused() -> None:
    breaker, _ = half_open(probes=1)
    assert breaker.acquire(30.0) is not None
    assert breaker.acquire(30.0) is None
    assert breaker.state(31.0) is HALF_OPEN


def test_two_probes_allowed_third_refused() -> None:
    breaker, _ = half_open(probes=2)
    first, second = breaker.acquire(30.0), breaker.acquire(30.0)
    assert first is not None
    assert second is not None
    assert first.probe
    assert second.probe
    assert first.id != second.id
    assert breaker.acquire(30.0) is None
    assert breaker.snapshot(30.0).probes_in_flight == 2


def test_probe_success_closes_and_clears_the_window() -> None:
    breaker, changes = half_open(threshold=2)
    probe = breaker.acquire(30.0)
    assert probe is not None
    breaker.record_success(probe, 31.0)
    assert breaker.state(31.0) is CLOSED
    assert changes[-1] == StateChange("route-a", HALF_OPEN, CLOSED, 31.0, "probe succeeded")
    snap = breaker.snapshot(31.0)
    assert (snap.failures, snap.calls, snap.opened_at, snap.retry_at) == (0, 0, None, None)
    fail(breaker, 32.0)  # a fresh count: one failure is not two
    assert breaker.state(32.0) is CLOSED


def test_probe_failure_reopens_with_a_fresh_cooldown() -> None:
    breaker, changes = half_open(cooldown=30.0)
    probe = breaker.acquire(40.0)
    assert probe is not None
    breaker.record_failure(probe, 45.0)
    assert breaker.state(45.0) is OPEN
    assert changes[-1] == StateChange("route-a", HALF_OPEN, OPEN, 45.0, "probe failed")
    assert breaker.ready_at(45.0) == 75.0
    assert breaker.acquire(74.9) is None
    assert breaker.state(75.0) is HALF_OPEN


def test_released_probe_returns_its_permit_and_state_stays() -> None:
    breaker, changes = half_open(probes=1)
    probe = breaker.acquire(30.0)
    assert probe is not None
    assert breaker.acquire(30.0) is None
    breaker.release(probe)
    assert breaker.state(31.0) is HALF_OPEN
    assert breaker.snapshot(31.0).probes_in_flight == 0
    again = breaker.acquire(31.0)
    assert again is not None
    assert again.probe
    assert [c.new for c in changes] == [OPEN, HALF_OPEN]


def test_with_several_probes_the_first_outcome_decides() -> None:
    breaker, _ = half_open(probes=2)
    first, second = breaker.acquire(30.0), breaker.acquire(30.0)
    assert first is not None
    assert second is not None
    breaker.record_success(first, 31.0)
    assert breaker.state(31.0) is CLOSED
    breaker.record_failure(second, 32.0)  # stale now: it must not reopen
    assert breaker.state(32.0) is CLOSED
    assert breaker.snapshot(32.0).failures == 0


def test_release_of_a_closed_permit_counts_nothing() -> None:
    breaker, _ = make(threshold=1)
    permit = breaker.acquire(0.0)
    assert permit is not None
    breaker.release(permit)
    snap = breaker.snapshot(0.0)
    assert (snap.state, snap.failures, snap.calls) == (CLOSED, 0, 0)


# --- permits: single use, generations ---------------------------------------------------


def test_double_record_is_ignored() -> None:
    breaker, _ = make(threshold=2)
    permit = breaker.acquire(0.0)
    assert permit is not None
    breaker.record_failure(permit, 0.0)
    breaker.record_failure(permit, 0.0)
    breaker.record_success(permit, 0.0)
    breaker.release(permit)
    assert breaker.state(0.0) is CLOSED
    assert (breaker.snapshot(0.0).failures, breaker.snapshot(0.0).calls) == (1, 1)


def test_double_release_of_a_probe_frees_one_slot_only() -> None:
    breaker, _ = half_open(probes=2)
    first = breaker.acquire(30.0)
    assert first is not None
    breaker.acquire(30.0)
    breaker.release(first)
    breaker.release(first)
    assert breaker.snapshot(30.0).probes_in_flight == 1
    assert breaker.acquire(30.0) is not None
    assert breaker.acquire(30.0) is None


def test_probe_record_after_release_is_ignored() -> None:
    breaker, _ = half_open()
    probe = breaker.acquire(30.0)
    assert probe is not None
    breaker.release(probe)
    breaker.record_success(probe, 31.0)
    assert breaker.state(31.0) is HALF_OPEN


def test_late_success_from_before_opening_does_not_close_a_half_open_breaker() -> None:
    breaker, _ = make(threshold=1, cooldown=10.0)
    slow = breaker.acquire(0.0)
    assert slow is not None
    fail(breaker, 1.0)
    assert breaker.state(11.0) is HALF_OPEN
    breaker.record_success(slow, 12.0)
    assert breaker.state(12.0) is HALF_OPEN


def test_late_failure_is_ignored_once_open() -> None:
    breaker, changes = make(threshold=1, cooldown=10.0)
    slow = breaker.acquire(0.0)
    assert slow is not None
    fail(breaker, 1.0)
    breaker.record_failure(slow, 5.0)
    assert breaker.ready_at(5.0) == 11.0  # the cooldown did not restart
    assert len(changes) == 1


def test_late_failure_of_an_old_probe_does_not_reopen() -> None:
    breaker, _ = half_open(probes=1)
    probe = breaker.acquire(30.0)
    assert probe is not None
    breaker.record_failure(probe, 31.0)  # reopen, cooldown until 61
    newer = breaker.acquire(61.0)
    assert newer is not None
    assert newer.generation > probe.generation
    breaker.record_failure(probe, 62.0)
    assert breaker.state(62.0) is HALF_OPEN
    breaker.record_success(newer, 63.0)
    assert breaker.state(63.0) is CLOSED


def test_a_permit_it_did_not_issue_is_ignored() -> None:
    breaker, _ = make(threshold=1)
    mine = breaker.acquire(0.0)
    assert mine is not None
    forged = Permit(probe=False, generation=mine.generation + 5, id=mine.id)
    breaker.record_failure(forged, 0.0)
    assert breaker.state(0.0) is CLOSED
    breaker.record_failure(mine, 0.0)
    assert breaker.state(0.0) is OPEN


# --- ready_at and snapshot ------------------------------------------------------------


def test_ready_at_in_each_state() -> None:
    breaker, _ = make(threshold=1, cooldown=10.0, probes=1)
    assert breaker.ready_at(3.0) == 3.0
    fail(breaker, 5.0)
    assert breaker.ready_at(6.0) == 15.0
    assert breaker.ready_at(15.0) == 15.0  # half-open now, with a free probe
    probe = breaker.acquire(15.0)
    assert probe is not None
    assert breaker.ready_at(16.0) == math.inf
    breaker.release(probe)
    assert breaker.ready_at(17.0) == 17.0


def test_snapshot_in_each_state() -> None:
    breaker, _ = make(threshold=2, window=60.0, cooldown=10.0, probes=2)
    succeed(breaker, 0.0)
    fail(breaker, 1.0)
    assert breaker.snapshot(2.0) == BreakerSnapshot(CLOSED, 1, 2, None, None, 0)
    fail(breaker, 3.0)
    assert breaker.snapshot(4.0) == BreakerSnapshot(OPEN, 2, 3, 3.0, 13.0, 0)
    breaker.acquire(13.0)
    assert breaker.snapshot(13.0) == BreakerSnapshot(HALF_OPEN, 2, 3, 3.0, None, 1)


# --- listeners --------------------------------------------------------------------------


def test_listeners_hear_every_change_in_order_with_reasons() -> None:
    breaker, changes = make(threshold=2, cooldown=10.0)
    fail(breaker, 0.0, 2)
    probe = breaker.acquire(10.0)
    assert probe is not None
    breaker.record_failure(probe, 11.0)
    probe = breaker.acquire(21.0)
    assert probe is not None
    breaker.record_success(probe, 22.0)
    assert [(c.old, c.new, c.at, c.reason) for c in changes] == [
        (CLOSED, OPEN, 0.0, "2 failures in 60s"),
        (OPEN, HALF_OPEN, 10.0, "cooldown elapsed"),
        (HALF_OPEN, OPEN, 11.0, "probe failed"),
        (OPEN, HALF_OPEN, 21.0, "cooldown elapsed"),
        (HALF_OPEN, CLOSED, 22.0, "probe succeeded"),
    ]
    assert {c.name for c in changes} == {"route-a"}


def test_a_raising_listener_is_logged_and_does_not_break_the_breaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker, changes = make(threshold=1)

    def boom(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(boom)
    late: list[StateChange] = []
    breaker.add_listener(late.append)
    with caplog.at_level(logging.ERROR, logger="resilient_llm"):
        fail(breaker, 0.0)
    assert breaker.state(0.0) is OPEN
    assert len(changes) == len(late) == 1
    assert any("listener" in r.getMessage() and r.exc_info for r in caplog.records)


def test_remove_listener_and_duplicates() -> None:
    breaker, changes = make(threshold=1)
    extra: list[StateChange] = []
    breaker.add_listener(extra.append)
    breaker.add_listener(extra.append)
    breaker.remove_listener(changes.append)
    breaker.remove_listener(changes.append)  # absent: no error
    fail(breaker, 0.0)
    assert changes == []
    assert len(extra) == 1


def test_listener_runs_outside_the_lock_and_may_call_back() -> None:
    breaker, _ = make(threshold=1)
    seen: list[BreakerSnapshot] = []
    breaker.add_listener(lambda change: seen.append(breaker.snapshot(change.at)))
    fail(breaker, 0.0)
    assert seen[0].state is OPEN


# --- reset ------------------------------------------------------------------------------


def test_reset_closes_clears_and_notifies_when_the_state_changed() -> None:
    breaker, changes = opened(0.0, threshold=2)
    breaker.reset(now=5.0)
    assert changes[-1] == StateChange("route-a", OPEN, CLOSED, 5.0, "reset")
    assert breaker.snapshot(5.0) == BreakerSnapshot(CLOSED, 0, 0, None, None, 0)


def test_reset_without_now_uses_the_latest_time_seen() -> None:
    breaker, changes = opened(0.0, threshold=1)
    breaker.state(7.0)
    breaker.reset()
    assert changes[-1].at == 7.0


def test_reset_when_closed_is_silent_but_clears_counts_and_stales_permits() -> None:
    breaker, changes = make(threshold=2)
    slow = breaker.acquire(0.0)
    assert slow is not None
    fail(breaker, 0.0)
    breaker.reset()
    assert changes == []
    assert breaker.snapshot(1.0).failures == 0
    breaker.record_failure(slow, 1.0)
    fail(breaker, 1.0)
    assert breaker.state(1.0) is CLOSED


def test_reset_frees_probes() -> None:
    breaker, _ = half_open()
    probe = breaker.acquire(30.0)
    assert probe is not None
    breaker.reset(now=31.0)
    assert breaker.snapshot(31.0).probes_in_flight == 0
    breaker.record_failure(probe, 32.0)
    assert breaker.state(32.0) is CLOSED


# --- threads ----------------------------------------------------------------------------


def test_concurrent_probe_acquires_never_exceed_the_limit() -> None:
    breaker, _ = half_open(probes=3)
    got: list[Permit | None] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        permit = breaker.acquire(30.0)
        with lock:
            got.append(permit)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(p is not None for p in got) == 3


# --- invariants under random sequences -----------------------------------------------------


class BreakerMachine(RuleBasedStateMachine):
    """Random acquire/record/release/reset/time steps, with stale and reused permits."""

    @initialize(
        threshold=st.integers(1, 4),
        rate=st.none() | st.sampled_from([0.25, 0.5, 1.0]),
        window=st.sampled_from([5.0, 20.0]),
        cooldown=st.sampled_from([1.0, 7.5]),
        probes=st.integers(1, 3),
    )
    def setup(
        self, threshold: int, rate: float | None, window: float, cooldown: float, probes: int
    ) -> None:
        self.breaker, self.changes = make(
            threshold=threshold, rate=rate, window=window, cooldown=cooldown, probes=probes
        )
        self.now = 0.0
        self.held: list[Permit] = []  # permits we have not handed back
        self.granted: dict[int, float] = {}  # when each permit was granted
        self.used: list[Permit] = []  # permits already handed back once
        self.policy = self.breaker.policy

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.5]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def acquire(self) -> None:
        before = self.breaker.state(self.now)
        permit = self.breaker.acquire(self.now)
        if before is OPEN:
            assert permit is None
        if permit is not None:
            assert permit.probe == (before is HALF_OPEN)
            self.held.append(permit)
            self.granted[permit.id] = self.now

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 100), outcome=st.sampled_from(["success", "failure", "release"]))
    def hand_back(self, index: int, outcome: str) -> None:
        permit = self.held.pop(index % len(self.held))
        self._hand_back(permit, outcome)
        self.used.append(permit)

    @precondition(lambda self: self.used)
    @rule(index=st.integers(0, 100), outcome=st.sampled_from(["success", "failure", "release"]))
    def reuse(self, index: int, outcome: str) -> None:
        before = (self.breaker.snapshot(self.now), len(self.changes))
        self._hand_back(self.used[index % len(self.used)], outcome)
        assert (self.breaker.snapshot(self.now), len(self.changes)) == before

    @rule()
    def reset(self) -> None:
        self.breaker.reset(now=self.now)
        assert self.breaker.state(self.now) is CLOSED

    def _hand_back(self, permit: Permit, outcome: str) -> None:
        if outcome == "success":
            self.breaker.record_success(permit, self.now)
        elif outcome == "failure":
            self.breaker.record_failure(permit, self.now)
        else:
            self.breaker.release(permit)

    @invariant()
    def probes_bounded(self) -> None:
        snap = self.breaker.snapshot(self.now)
        assert 0 <= snap.probes_in_flight <= self.policy.half_open_probes
        if snap.state is not HALF_OPEN:
            assert snap.probes_in_flight == 0

    @invariant()
    def outstanding_probes_per_generation_bounded(self) -> None:
        per_generation: dict[int, int] = {}
        cooldown = self.policy.cooldown
        for permit in self.held:
            # A probe not reported within a cooldown lapses and frees its place.
            if permit.probe and self.granted[permit.id] + cooldown > self.now:
                per_generation[permit.generation] = per_generation.get(permit.generation, 0) + 1
        assert all(n <= self.policy.half_open_probes for n in per_generation.values())

    @invariant()
    def open_refuses_before_cooldown(self) -> None:
        snap = self.breaker.snapshot(self.now)
        if snap.state is OPEN:
            assert snap.retry_at is not None
            assert self.now < snap.retry_at
            assert snap.retry_at == self.breaker.ready_at(self.now)
            assert self.breaker.acquire(self.now) is None

    @invariant()
    def changes_form_a_legal_chain(self) -> None:
        legal = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (HALF_OPEN, OPEN)}
        current = self.breaker.state(self.now)  # first, so a lazy half-open is announced
        state = CLOSED
        for change in self.changes:
            assert change.old is state
            assert (change.old, change.new) in legal or change.reason == "reset"
            state = change.new
        assert current is state

    @invariant()
    def counts_consistent(self) -> None:
        snap = self.breaker.snapshot(self.now)
        assert 0 <= snap.failures <= snap.calls
        if snap.state is CLOSED:
            assert snap.opened_at is None
            assert self.breaker.ready_at(self.now) == self.now


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
