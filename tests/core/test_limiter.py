"""Tests for the sliding-window-log limiter: exact examples, then properties.

No test reads a clock or sleeps: every call passes ``now`` explicitly.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_llm.errors import ConfigurationError, RequestTooLarge
from resilient_llm.policies.limiter import Limiter, LimiterSnapshot, RateLimit, Reservation

# --------------------------------------------------------------------------- helpers


def assert_no_window_overshoot(schedule: Sequence[tuple[float, int]], limit: RateLimit) -> None:
    """No window [s, s + w) holds more than the limits.

    Checking windows that start at each admission is enough: any window can slide right
    to its first admission without losing one.
    """
    w = limit.window
    for s, _ in schedule:
        inside = [tokens for a, tokens in schedule if s <= a < s + w]
        if limit.requests_per_minute is not None:
            assert len(inside) <= limit.requests_per_minute, (s, inside)
        if limit.tokens_per_minute is not None:
            assert sum(inside) <= limit.tokens_per_minute, (s, inside)


def earliest_feasible(
    live: Sequence[tuple[float, int]], tokens: int, now: float, limit: RateLimit
) -> float:
    """Brute-force model: the earliest FIFO admission time that fits both limits.

    ``live`` holds (at, tokens) of every non-cancelled reservation ever made; no pruning,
    since an entry with ``a + w <= now`` does not count at any ``t >= now`` anyway.
    """
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


# --------------------------------------------------------------------------- RateLimit


def test_rate_limit_defaults_and_timedelta_window() -> None:
    assert RateLimit() == RateLimit(None, None, 60.0)
    limit = RateLimit(requests_per_minute=5, window=timedelta(seconds=90))
    assert limit.window == 90.0
    assert isinstance(limit.window, float)
    assert RateLimit(window=2).window == 2.0
    assert dataclasses.replace(limit, tokens_per_minute=7).tokens_per_minute == 7


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"requests_per_minute": -5}, "RateLimit.requests_per_minute"),
        ({"requests_per_minute": 0}, "RateLimit.requests_per_minute"),
        ({"requests_per_minute": True}, "RateLimit.requests_per_minute"),
        ({"requests_per_minute": 2.5}, "RateLimit.requests_per_minute"),
        ({"tokens_per_minute": 0}, "RateLimit.tokens_per_minute"),
        ({"tokens_per_minute": "100"}, "RateLimit.tokens_per_minute"),
        ({"window": 0}, "RateLimit.window"),
        ({"window": -1.0}, "RateLimit.window"),
        ({"window": float("inf")}, "RateLimit.window"),
        ({"window": float("nan")}, "RateLimit.window"),
        ({"window": True}, "RateLimit.window"),
        ({"window": timedelta(0)}, "RateLimit.window"),
        ({"window": "60"}, "RateLimit.window"),
    ],
)
def test_rate_limit_rejects_invalid_fields(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RateLimit(**kwargs)  # type: ignore[arg-type]


def test_rate_limit_message_shows_value() -> None:
    with pytest.raises(ValueError, match=r"positive int or None, got -5"):
        RateLimit(requests_per_minute=-5)


# --------------------------------------------------------------------------- exact examples


def test_rpm_two_third_waits_one_window() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=2))
    assert limiter.reserve(1, now=0.0).wait == 0.0
    assert limiter.reserve(1, now=10.0).wait == 0.0
    third = limiter.reserve(1, now=10.0)
    assert third.at == 60.0
    assert third.wait == 50.0
    assert third.delay(30.0) == 30.0
    assert third.delay(75.0) == 0.0
    # The fourth waits for the second to leave, and queues behind the third anyway.
    assert limiter.reserve(1, now=10.0).at == 70.0


def test_token_entry_leaves_exactly_at_a_plus_window() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    limiter.reserve(60, now=5.0)
    second = limiter.reserve(60, now=5.0)
    assert second.at == 65.0
    # At exactly 65 the first entry no longer counts; the second does, until 125.
    assert limiter.peek(40, now=65.0) == 0.0
    assert limiter.peek(41, now=65.0) == 60.0
    assert limiter.peek(41, now=124.999) == pytest.approx(0.001)
    assert limiter.peek(100, now=125.0) == 0.0


def test_tokens_walk_past_several_entries() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    for t, k in [(0.0, 30), (1.0, 30), (2.0, 30)]:
        assert limiter.reserve(k, now=t).wait == 0.0
    # Needs 90 free: the first two must leave (at 61), the third may stay.
    big = limiter.reserve(70, now=3.0)
    assert big.at == 61.0


def test_request_too_large_is_immediate() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    with pytest.raises(RequestTooLarge, match=r"101.*100"):
        limiter.reserve(101, now=0.0)
    with pytest.raises(RequestTooLarge):
        limiter.peek(101, now=0.0)
    assert limiter.reserve(100, now=0.0).wait == 0.0
    assert limiter.snapshot(0.0).requests_used == 1


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_invalid_tokens_rejected(bad: object) -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    with pytest.raises(ValueError, match="tokens"):
        limiter.reserve(bad, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tokens"):
        limiter.peek(bad, now=0.0)  # type: ignore[arg-type]


def test_zero_tokens_allowed_but_still_counts_as_a_request() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=1, tokens_per_minute=10))
    assert limiter.reserve(0, now=0.0).wait == 0.0
    assert limiter.reserve(0, now=0.0).wait == 60.0


def test_unlimited_limiter_never_waits_but_records() -> None:
    limiter = Limiter()
    assert limiter.limit == RateLimit()
    for i in range(1000):
        assert limiter.reserve(10**9, now=i * 0.01).wait == 0.0
    snap = limiter.snapshot(10.0)
    assert snap.requests_used == 1000
    assert snap.requests_remaining is None
    assert snap.tokens_remaining is None
    assert limiter.snapshot(100.0).requests_used == 0


def test_peek_matches_reserve_and_changes_nothing() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=3, tokens_per_minute=100))
    for t, k in [(0.0, 50), (1.0, 40), (2.0, 5)]:
        limiter.reserve(k, now=t)
    before = limiter.snapshot(3.0)
    waits = [limiter.peek(20, now=3.0) for _ in range(5)]
    assert waits == [57.0] * 5
    assert limiter.snapshot(3.0) == before
    assert limiter.reserve(20, now=3.0).wait == waits[0]


def test_snapshot_at_several_moments() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=3, tokens_per_minute=100))
    empty = limiter.snapshot(0.0)
    assert empty == LimiterSnapshot(3, 100, 0, 0, 0, 0.0, 3, 100)

    limiter.reserve(40, now=0.0)
    limiter.reserve(30, now=10.0)
    queued = limiter.reserve(50, now=20.0)  # needs the first gone: at 60
    assert queued.at == 60.0

    assert limiter.snapshot(20.0) == LimiterSnapshot(
        requests_per_minute=3,
        tokens_per_minute=100,
        requests_used=2,
        estimated_tokens=70,
        queue_length=1,
        refill_time=40.0,
        requests_remaining=0,
        tokens_remaining=0,
    )
    # At 60 the first left and the queued one is admitted.
    assert limiter.snapshot(60.0) == LimiterSnapshot(3, 100, 2, 80, 0, 10.0, 1, 20)
    assert limiter.snapshot(70.0) == LimiterSnapshot(3, 100, 1, 50, 0, 50.0, 2, 50)
    assert limiter.snapshot(120.0) == LimiterSnapshot(3, 100, 0, 0, 0, 0.0, 3, 100)


def test_cancel_gives_back_and_is_idempotent() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=1))
    first = limiter.reserve(1, now=0.0)
    second = limiter.reserve(1, now=0.0)
    assert second.at == 60.0
    first.cancel()
    first.cancel()
    assert first.cancelled
    assert not second.cancelled
    # The later reservation keeps its time; a third queues behind it.
    assert second.at == 60.0
    assert limiter.reserve(1, now=0.0).at == 120.0
    second.cancel()
    assert limiter.snapshot(0.0).queue_length == 1


def test_cancel_after_settle_and_settle_after_cancel_are_no_ops() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    sent = limiter.reserve(50, now=0.0)
    sent.settle(60)
    sent.cancel()
    assert not sent.cancelled
    assert limiter.snapshot(0.0).estimated_tokens == 60

    dropped = limiter.reserve(10, now=0.0)
    dropped.cancel()
    dropped.settle(5)
    assert dropped.tokens == 10
    assert limiter.snapshot(0.0).estimated_tokens == 60


def test_settle_lower_frees_exactly_the_difference() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    first = limiter.reserve(80, now=0.0)
    first.settle(30)
    assert first.tokens == 30
    assert limiter.peek(70, now=0.0) == 0.0
    assert limiter.peek(71, now=0.0) == 60.0
    assert limiter.reserve(70, now=0.0).wait == 0.0


def test_settle_higher_replaces_and_negative_clamps() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    r = limiter.reserve(10, now=0.0)
    r.settle(90)
    assert limiter.peek(11, now=1.0) == 59.0
    r.settle(-7)
    assert r.tokens == 0
    assert limiter.peek(100, now=1.0) == 0.0
    with pytest.raises(ValueError, match="actual_tokens"):
        r.settle(1.5)  # type: ignore[arg-type]


def test_settle_after_entry_left_the_window_is_harmless() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=100))
    r = limiter.reserve(100, now=0.0)
    assert limiter.reserve(100, now=60.0).wait == 0.0
    r.settle(100)  # a late report for a request already out of the window
    assert limiter.peek(1, now=60.0) == 60.0


def test_out_of_order_now_never_reuses_pruned_capacity() -> None:
    # Concurrent callers may pass slightly stale ``now`` values.
    limiter = Limiter(RateLimit(requests_per_minute=1))
    limiter.reserve(1, now=0.0)
    limiter.reserve(1, now=60.0)
    limiter.snapshot(121.0)  # prunes both
    late = limiter.reserve(1, now=119.0)
    assert late.at == 120.0


def test_reprs_do_not_fail() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=1))
    r = limiter.reserve(3, now=0.0)
    r.cancel()
    assert "cancelled" in repr(r)
    assert "requests_per_minute=1" in repr(limiter)
    assert isinstance(r, Reservation)


def test_threads_reserving_concurrently_keep_the_limit() -> None:
    limit = RateLimit(requests_per_minute=10, tokens_per_minute=1000)
    limiter = Limiter(limit)
    barrier = threading.Barrier(16)
    results: list[Reservation] = []
    results_lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        mine = [limiter.reserve(50, now=0.0) for _ in range(20)]
        with results_lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 320
    schedule = sorted((r.at, r.tokens) for r in results)
    assert_no_window_overshoot(schedule, limit)
    # Exactly ten per window, none wasted: every slot was handed out once.
    assert [a for a, _ in schedule] == [60.0 * (i // 10) for i in range(320)]


# --------------------------------------------------------------------------- properties

limits = st.builds(
    RateLimit,
    requests_per_minute=st.none() | st.integers(1, 6),
    tokens_per_minute=st.none() | st.integers(1, 200),
    window=st.sampled_from([60.0, 1.0, 7.5, 0.1, 3600.0]),
)

# ("reserve", dt as a fraction of the window, tokens as a fraction of tpm)
# ("cancel", pick) / ("settle", pick, fraction of the current tokens) act on an earlier one.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.floats(0, 1.5), st.floats(0, 1)),
        st.tuples(st.just("cancel"), st.integers(0, 10**6), st.just(0.0)),
        st.tuples(st.just("settle"), st.integers(0, 10**6), st.floats(0, 1)),
    ),
    max_size=40,
)


def run_ops(
    limit: RateLimit, operations: list[tuple[str, float, float]]
) -> tuple[Limiter, list[tuple[float, Reservation]], float]:
    """Replay ``operations`` while checking each admission against the brute-force model."""
    limiter = Limiter(limit)
    made: list[tuple[float, Reservation]] = []  # (now given to reserve, reservation)
    now = 0.0
    cap = limit.tokens_per_minute or 500
    for kind, a, b in operations:
        if kind == "reserve":
            now += a * limit.window
            tokens = int(b * cap)
            live = [(r.at, r.tokens) for _, r in made if not r.cancelled]
            expected = earliest_feasible(live, tokens, now, limit)
            assert limiter.peek(tokens, now) == expected - now
            r = limiter.reserve(tokens, now)
            assert r.at == expected
            assert r.wait == r.at - now >= 0.0
            made.append((now, r))
        elif made:
            r = made[int(a) % len(made)][1]
            if kind == "cancel":
                r.cancel()
            else:
                r.settle(int(r.tokens * b))  # never above the current charge
    return limiter, made, now


@settings(max_examples=150, deadline=None)
@given(limit=limits, operations=ops)
def test_property_never_over_limit_in_any_window(
    limit: RateLimit, operations: list[tuple[str, float, float]]
) -> None:
    # Settling *higher* is left out on purpose: the limiter admitted on the estimate, and
    # an underestimate means the provider counted more than we did. Later admissions do
    # account for the actual figure, but windows already granted cannot be undone.
    _, made, _ = run_ops(limit, operations)
    schedule = [(r.at, r.tokens) for _, r in made if not r.cancelled]
    assert_no_window_overshoot(schedule, limit)


@settings(max_examples=150, deadline=None)
@given(limit=limits, operations=ops)
def test_property_fifo_service_order(
    limit: RateLimit, operations: list[tuple[str, float, float]]
) -> None:
    _, made, _ = run_ops(limit, operations)
    times = [r.at for _, r in made if not r.cancelled]
    assert times == sorted(times)
    for now, r in made:
        assert r.at >= now


@settings(max_examples=150, deadline=None)
@given(
    limit=limits,
    operations=ops,
    dt=st.floats(0, 1.5),
    extra=st.floats(0, 1),
    probe=st.floats(0, 1),
)
def test_property_cancel_last_gives_back_exactly(
    limit: RateLimit,
    operations: list[tuple[str, float, float]],
    dt: float,
    extra: float,
    probe: float,
) -> None:
    limiter, _, now = run_ops(limit, operations)
    # The same history on a fresh limiter, minus the reservation cancelled below.
    fresh, _, _ = run_ops(limit, operations)
    cap = limit.tokens_per_minute or 500
    now += dt * limit.window
    limiter.reserve(int(extra * cap), now).cancel()

    assert limiter.snapshot(now) == fresh.snapshot(now)
    tokens = int(probe * cap)
    assert limiter.peek(tokens, now) == fresh.peek(tokens, now)
    assert limiter.reserve(tokens, now).at == fresh.reserve(tokens, now).at


@settings(max_examples=150, deadline=None)
@given(
    limit=limits,
    operations=ops,
    dt=st.floats(0, 1.5),
    estimate=st.floats(0, 1),
    actual=st.floats(0, 1),
    probe=st.floats(0, 1),
)
def test_property_settle_lower_frees_exactly_the_difference(
    limit: RateLimit,
    operations: list[tuple[str, float, float]],
    dt: float,
    estimate: float,
    actual: float,
    probe: float,
) -> None:
    limiter, _, now = run_ops(limit, operations)
    fresh, _, _ = run_ops(limit, operations)
    cap = limit.tokens_per_minute or 500
    now += dt * limit.window
    est = int(estimate * cap)
    act = int(actual * est)
    settled = limiter.reserve(est, now)
    settled.settle(act)
    # Reserving the actual figure up front may be admitted earlier than the estimate was;
    # only when both land at the same time are the two logs the same.
    direct = fresh.reserve(act, now)
    if direct.at == settled.at:
        tokens = int(probe * cap)
        assert limiter.peek(tokens, now) == fresh.peek(tokens, now)
        assert limiter.snapshot(now) == fresh.snapshot(now)


@settings(max_examples=150, deadline=None)
@given(limit=limits, operations=ops, probe=st.floats(0, 1), later=st.floats(0, 2))
def test_property_snapshot_consistent_with_log(
    limit: RateLimit, operations: list[tuple[str, float, float]], probe: float, later: float
) -> None:
    limiter, made, now = run_ops(limit, operations)
    t = now + later * limit.window
    snap = limiter.snapshot(t)
    w = limit.window
    live = [r for _, r in made if not r.cancelled and r.at + w > t]
    admitted = [r for r in live if r.at <= t]
    assert snap.requests_used == len(admitted)
    assert snap.estimated_tokens == sum(r.tokens for r in admitted)
    assert snap.queue_length == len(live) - len(admitted)
    if admitted:
        assert snap.refill_time == min(r.at for r in admitted) + w - t
    else:
        assert snap.refill_time == 0.0
    if limit.requests_per_minute is None:
        assert snap.requests_remaining is None
    else:
        assert snap.requests_remaining == max(0, limit.requests_per_minute - len(live))
    if limit.tokens_per_minute is None:
        assert snap.tokens_remaining is None
    else:
        total = sum(r.tokens for r in live)
        assert snap.tokens_remaining == max(0, limit.tokens_per_minute - total)


# -- a share of the limit (a shared store's fallback) ------------------------------------


def test_a_share_applies_a_part_of_each_limit_never_below_one() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=10, tokens_per_minute=1000, window=60))
    limiter.share(3)
    assert limiter.applied == RateLimit(3, 333, 60)
    assert limiter.limit == RateLimit(10, 1000, 60)
    assert [limiter.reserve(1, 0.0).wait for _ in range(4)] == [0.0, 0.0, 0.0, 60.0]
    assert limiter.snapshot(0.0).requests_per_minute == 3
    limiter.share(50)
    assert limiter.applied.requests_per_minute == 1
    limiter.share(1)
    assert limiter.applied == limiter.limit


def test_a_learnt_limit_is_shared_too() -> None:
    limiter = Limiter(RateLimit(window=60))
    limiter.share(4)
    limiter.learn(RateLimit(requests_per_minute=20))
    assert limiter.applied.requests_per_minute == 5
    assert limiter.limit.requests_per_minute == 20


def test_a_request_bigger_than_its_share_waits_for_the_share_alone() -> None:
    limiter = Limiter(RateLimit(tokens_per_minute=900, window=60))
    limiter.share(3)
    limiter.reserve(100, 0.0)
    assert limiter.reserve(500, 1.0).at == 60.0
    with pytest.raises(RequestTooLarge):
        limiter.reserve(901, 1.0)  # too large for the whole limit, not just the share


def test_noted_admissions_count_in_order_and_can_be_given_back() -> None:
    limiter = Limiter(RateLimit(requests_per_minute=3, window=60))
    later = limiter.note(1, 5.0, 0.0)
    limiter.note(1, 2.0, 0.0)  # decided elsewhere, reported out of order
    assert limiter.reserve(1, 3.0).at == 5.0  # FIFO behind the latest admission
    assert limiter.reserve(1, 6.0).at == 62.0  # the 2.0 one frees the first slot
    later.cancel()
    assert limiter.snapshot(6.0).requests_used == 2
