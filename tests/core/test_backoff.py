"""RetryPolicy: the exact schedule, jitter bounds, the cap, provider hints, validation."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_llm.errors import ConfigurationError
from resilient_llm.policies.backoff import RetryPolicy


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base, policy.cap) == (3, 0.5, 30.0)
    assert (policy.multiplier, policy.jitter) == (2.0, "full")


def test_exponential_schedule_is_exact_without_jitter() -> None:
    policy = RetryPolicy(base=0.5, multiplier=2.0, cap=100.0, jitter="none")
    rng = random.Random(0)
    delays = [policy.delay(n, rng) for n in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert delays == [policy.computed_delay(n) for n in range(1, 7)]


def test_other_multiplier() -> None:
    policy = RetryPolicy(base=1.0, multiplier=3.0, cap=100.0, jitter="none")
    assert [policy.computed_delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 3.0, 9.0, 27.0, 81.0]


def test_cap_bounds_the_schedule() -> None:
    policy = RetryPolicy(base=1.0, cap=5.0, jitter="none")
    assert [policy.computed_delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_flat_schedules() -> None:
    assert RetryPolicy(base=0.0, jitter="none").computed_delay(10**6) == 0.0
    assert RetryPolicy(base=2.0, multiplier=1.0, jitter="none").computed_delay(10**400) == 2.0


@pytest.mark.parametrize("retry", [1024, 10**6, 10**18, 10**400])
def test_huge_retry_numbers_do_not_overflow(retry: int) -> None:
    policy = RetryPolicy(base=0.5, cap=30.0)
    assert policy.computed_delay(retry) == 30.0
    assert 0.0 <= policy.delay(retry, random.Random(1)) <= 30.0


def test_full_jitter_bounds_and_reproducibility() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0, jitter="full")
    first = [policy.delay(n, random.Random(42)) for n in range(1, 8)]
    again = [policy.delay(n, random.Random(42)) for n in range(1, 8)]
    assert first == again
    rng = random.Random(7)
    for n in range(1, 8):
        for _ in range(200):
            assert 0.0 <= policy.delay(n, rng) <= policy.computed_delay(n)


def test_full_jitter_draws_from_the_given_rng() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0, jitter="full")
    assert policy.delay(3, random.Random(5)) == random.Random(5).uniform(0.0, 4.0)


def test_equal_jitter_bounds_and_reproducibility() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0, jitter="equal")
    seq = [policy.delay(n, random.Random(3)) for n in range(1, 8)]
    assert seq == [policy.delay(n, random.Random(3)) for n in range(1, 8)]
    rng = random.Random(11)
    for n in range(1, 8):
        d = policy.computed_delay(n)
        for _ in range(200):
            assert d / 2 <= policy.delay(n, rng) <= d


def test_jitter_varies_with_the_seed() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    assert len({policy.delay(3, random.Random(seed)) for seed in range(20)}) > 1


@pytest.mark.parametrize("hint", [0.0, 0.1, 2.5, 1000.0])
@pytest.mark.parametrize("jitter", ["full", "equal", "none"])
def test_a_hint_wins_bigger_or_smaller_and_is_neither_jittered_nor_capped(
    hint: float, jitter: str
) -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, jitter=jitter)  # type: ignore[arg-type]
    assert policy.delay(3, random.Random(0), hint=hint) == hint


def test_a_negative_hint_clamps_to_zero() -> None:
    assert RetryPolicy().delay(1, random.Random(0), hint=-3.0) == 0.0


@pytest.mark.parametrize("hint", [math.nan, math.inf, -math.inf])
def test_a_non_finite_hint_is_ignored(hint: float) -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, jitter="none")
    assert policy.delay(3, random.Random(0), hint=hint) == 4.0


def test_rng_is_untouched_when_not_jittering() -> None:
    rng = random.Random(9)
    state = rng.getstate()
    RetryPolicy(jitter="none").delay(2, rng)
    RetryPolicy(jitter="full").delay(2, rng, hint=1.0)
    assert rng.getstate() == state


def test_timedelta_durations_are_stored_as_float_seconds() -> None:
    policy = RetryPolicy(base=timedelta(milliseconds=250), cap=timedelta(minutes=1))
    assert policy.base == 0.25
    assert policy.cap == 60.0
    assert isinstance(policy.base, float)
    assert isinstance(policy.cap, float)


def test_ints_are_stored_as_floats() -> None:
    policy = RetryPolicy(base=1, cap=2, multiplier=3)
    assert (policy.base, policy.cap, policy.multiplier) == (1.0, 2.0, 3.0)
    assert all(isinstance(v, float) for v in (policy.base, policy.cap, policy.multiplier))


def test_frozen_and_keyword_only() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.base = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]


def test_equal_policies_compare_equal() -> None:
    assert RetryPolicy(base=timedelta(seconds=1)) == RetryPolicy(base=1.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": -1}, "RetryPolicy.max_retries"),
        ({"max_retries": True}, "RetryPolicy.max_retries"),
        ({"max_retries": 2.0}, "RetryPolicy.max_retries"),
        ({"base": -0.1}, "RetryPolicy.base"),
        ({"base": math.nan}, "RetryPolicy.base"),
        ({"base": math.inf}, "RetryPolicy.base"),
        ({"base": "1"}, "RetryPolicy.base"),
        ({"base": True}, "RetryPolicy.base"),
        ({"base": timedelta(seconds=-1)}, "RetryPolicy.base"),
        ({"base": 10**400}, "RetryPolicy.base"),
        ({"cap": 0.1}, "RetryPolicy.cap"),
        ({"cap": math.inf}, "RetryPolicy.cap"),
        ({"base": 5.0, "cap": 4.0}, "RetryPolicy.cap"),
        ({"multiplier": 0.5}, "RetryPolicy.multiplier"),
        ({"multiplier": math.nan}, "RetryPolicy.multiplier"),
        ({"multiplier": timedelta(seconds=2)}, "RetryPolicy.multiplier"),
        ({"jitter": "decorrelated"}, "RetryPolicy.jitter"),
    ],
)
def test_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_validation_message_shows_the_rule_and_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(base=-1)
    assert str(info.value) == "RetryPolicy.base must be a finite number >= 0, got -1"


def test_boundary_settings_are_valid() -> None:
    policy = RetryPolicy(max_retries=0, base=0.0, cap=0.0, multiplier=1.0, jitter="none")
    assert policy.delay(1, random.Random(0)) == 0.0
    assert RetryPolicy(base=3.0, cap=3.0).computed_delay(5) == 3.0


@pytest.mark.parametrize("retry", [0, -1, True, 1.0])
def test_retry_number_must_be_a_positive_int(retry: object) -> None:
    policy = RetryPolicy()
    with pytest.raises(ValueError, match="retry"):
        policy.computed_delay(retry)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry"):
        policy.delay(retry, random.Random(0))  # type: ignore[arg-type]


policies = st.builds(
    RetryPolicy,
    base=st.floats(0.0, 100.0),
    cap=st.floats(100.0, 10_000.0),
    multiplier=st.floats(1.0, 10.0),
    jitter=st.sampled_from(["full", "equal", "none"]),
)


@given(policy=policies, retry=st.integers(1, 10**6), seed=st.integers(0, 2**32))
def test_delay_is_always_within_zero_and_cap_without_a_hint(
    policy: RetryPolicy, retry: int, seed: int
) -> None:
    delay = policy.delay(retry, random.Random(seed))
    assert 0.0 <= delay <= policy.cap
    assert delay <= policy.computed_delay(retry)


@given(policy=policies, retry=st.integers(1, 200))
def test_computed_delay_never_shrinks(policy: RetryPolicy, retry: int) -> None:
    assert policy.computed_delay(retry) <= policy.computed_delay(retry + 1)


@given(hint=st.floats(allow_nan=False, allow_infinity=False), retry=st.integers(1, 50))
def test_any_finite_hint_is_returned_clamped(hint: float, retry: int) -> None:
    assert RetryPolicy().delay(retry, random.Random(0), hint=hint) == max(0.0, hint)
