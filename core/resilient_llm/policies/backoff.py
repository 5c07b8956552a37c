"""How long to wait before a retry: capped exponential backoff with jitter.

:class:`RetryPolicy` only computes numbers. It never sleeps and never reads a clock (the
engine's drivers wait), and the random source is passed in, so a seeded
:class:`random.Random` makes every delay reproducible in tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

from resilient_llm.errors import ConfigurationError

__all__ = ["Jitter", "RetryPolicy"]

Jitter = Literal["full", "equal", "none"]
"""``full``: uniform in [0, d]; ``equal``: uniform in [d/2, d]; ``none``: exactly d."""

_JITTERS: tuple[str, ...] = get_args(Jitter)


def _count(name: str, value: object, minimum: int) -> int:
    # bool is an int subclass; True retries is a typo, not a number.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _real(
    name: str, value: object, rule: str, ok: Callable[[float], bool], *, duration: bool
) -> float:
    number = value.total_seconds() if duration and isinstance(value, timedelta) else value
    if not isinstance(number, bool) and isinstance(number, int | float):
        try:
            seconds = float(number)
        except OverflowError:  # an int beyond float range is no usable setting
            seconds = math.inf
        if math.isfinite(seconds) and ok(seconds):
            return seconds
    raise ConfigurationError(f"{name} must be a finite number {rule}, got {value!r}")


@dataclass(frozen=True, init=False)
class RetryPolicy:
    """Retries per route within one call, and the delay before each.

    ``max_retries`` counts retries after the first attempt (0: never retry). The delay before
    retry ``n`` (1 for the first retry) is ``min(cap, base * multiplier ** (n - 1))`` seconds,
    then jittered.

    ``min_attempt_time`` is the least time an attempt needs to be worth sending: an
    attempt is not sent, and no wait (backoff, retry-after, limiter queue) is begun, when
    less than ``min(min_attempt_time, timeout / 10)`` of the call's deadline would be left
    for it; the call ends ``DeadlineExceeded`` instead of sending a request that can only
    time out. ``0`` sends whatever time is left.

    ``base``, ``cap`` and ``min_attempt_time`` also accept a :class:`~datetime.timedelta`;
    every duration is stored as float seconds. Invalid settings raise
    :class:`~resilient_llm.errors.ConfigurationError` naming the field.
    """

    max_retries: int
    base: float
    cap: float
    multiplier: float
    jitter: Jitter
    min_attempt_time: float

    # Written by hand (not __post_init__) so the fields stay typed ``float`` for readers
    # while callers may still pass a timedelta; the same pattern as RateLimit.
    def __init__(
        self,
        *,
        max_retries: int = 3,
        base: float | timedelta = 0.5,
        cap: float | timedelta = 30.0,
        multiplier: float = 2.0,
        jitter: Jitter = "full",
        min_attempt_time: float | timedelta = 0.5,
    ) -> None:
        retries = _count("RetryPolicy.max_retries", max_retries, 0)
        low = _real("RetryPolicy.base", base, ">= 0", lambda v: v >= 0, duration=True)
        high = _real(
            "RetryPolicy.cap", cap, f">= base ({low:g})", lambda v: v >= low, duration=True
        )
        growth = _real(
            "RetryPolicy.multiplier", multiplier, ">= 1", lambda v: v >= 1, duration=False
        )
        floor = _real(
            "RetryPolicy.min_attempt_time",
            min_attempt_time,
            ">= 0",
            lambda v: v >= 0,
            duration=True,
        )
        if jitter not in _JITTERS:
            raise ConfigurationError(
                f"RetryPolicy.jitter must be one of {_JITTERS}, got {jitter!r}"
            )
        object.__setattr__(self, "max_retries", retries)
        object.__setattr__(self, "base", low)
        object.__setattr__(self, "cap", high)
        object.__setattr__(self, "multiplier", growth)
        object.__setattr__(self, "jitter", jitter)
        object.__setattr__(self, "min_attempt_time", floor)

    def computed_delay(self, retry: int) -> float:
        """The un-jittered delay in seconds before retry number ``retry`` (1 is the first).

        Never more than ``cap``; any ``retry`` however large is safe. Raises ``ValueError`` if
        ``retry`` is not an int >= 1.
        """
        _check_retry(retry)
        # Both make the schedule flat, and 1.0 ** hugeint would overflow converting the int.
        if self.base == 0.0 or self.multiplier == 1.0:
            return self.base
        try:
            grown = self.base * self.multiplier ** (retry - 1)
        except OverflowError:
            # Past float range the schedule was pinned at the cap long before.
            return self.cap
        return min(self.cap, grown)

    def delay(self, retry: int, rng: random.Random, hint: float | None = None) -> float:
        """Seconds to wait before retry number ``retry``.

        A finite ``hint`` (the provider's retry-after) wins and is returned as is, clamped at
        0 and neither jittered nor capped: the provider knows when it will serve again, and
        the engine's deadline decides whether waiting that long is worth it. A NaN or
        infinite hint is ignored. Otherwise the result is :meth:`computed_delay` jittered,
        so always within ``[0, cap]``. ``rng`` is drawn from only when jittering, once.
        """
        _check_retry(retry)
        if hint is not None and math.isfinite(hint):
            return max(0.0, float(hint))
        ceiling = self.computed_delay(retry)
        if self.jitter == "full":
            return rng.uniform(0.0, ceiling)
        if self.jitter == "equal":
            half = ceiling / 2
            return half + rng.uniform(0.0, half)
        return ceiling


def _check_retry(retry: object) -> None:
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
        raise ValueError(f"retry must be an int >= 1 (1 is the first retry), got {retry!r}")
