"""What a route may send: :class:`RateLimit`, a set of :class:`Window` s, as providers
count their quotas (requests, total, input and output tokens; per minute, per day or any
span). The :class:`~resilient_llm.policies.limiter.Limiter` enforces them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import overload

from resilient_llm.errors import ConfigurationError

__all__ = ["DAY", "DIMENSIONS", "RateLimit", "Window"]

DAY = 86400.0
DIMENSIONS = ("requests", "tokens", "input_tokens", "output_tokens")
"""What a window may limit, in the order amounts are kept."""


def _positive_int_or_none(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"RateLimit.{name} must be a positive int or None, got {value!r}")


def _seconds(name: str, window: object) -> float:
    seconds: object = window.total_seconds() if isinstance(window, timedelta) else window
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(float(seconds) if abs(seconds) < 1e300 else math.inf)
        or seconds <= 0
    ):
        raise ConfigurationError(
            f"{name} must be a finite positive number of seconds or a timedelta, got {window!r}"
        )
    return float(seconds)


@dataclass(frozen=True)
class Window:
    """Limits over one window of ``seconds``; ``None``: that dimension is unlimited.

    ``tokens`` counts input and output together; ``input_tokens`` and ``output_tokens``
    each alone (Anthropic's per-minute limits).
    """

    seconds: float
    requests: int | None = None
    tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seconds", _seconds("RateLimit window", self.seconds))
        for name in DIMENSIONS:
            _positive_int_or_none(f"window({self.seconds:g}).{name}", getattr(self, name))

    @property
    def limited(self) -> bool:
        return any(getattr(self, name) is not None for name in DIMENSIONS)

    @property
    def name(self) -> str:
        """How events and snapshots call it: ``"requests/60s"`` style, or ``"1d"``."""
        span = self.seconds
        unit = (
            f"{span / DAY:g}d"
            if span % DAY == 0
            else f"{span / 60:g}min"
            if span % 60 == 0
            else f"{span:g}s"
        )
        kinds = "+".join(n for n in DIMENSIONS if getattr(self, n) is not None) or "none"
        return f"{kinds}/{unit}"

    def parted(self, parts: int) -> Window:
        if parts == 1:
            return self
        return Window(
            self.seconds,
            *(None if (v := getattr(self, n)) is None else max(1, v // parts) for n in DIMENSIONS),
        )


class _WindowConstructor:
    """``RateLimit.window(seconds, requests=...)`` on the class; the first window's length
    (a float, as before several windows existed) on an instance."""

    @overload
    def __get__(self, obj: None, owner: type[RateLimit]) -> Callable[..., RateLimit]: ...

    @overload
    def __get__(self, obj: RateLimit, owner: type[RateLimit]) -> float: ...

    def __get__(
        self, obj: RateLimit | None, owner: type[RateLimit]
    ) -> Callable[..., RateLimit] | float:
        if obj is None:
            return owner._only
        # Only reached before __init__ set the instance's own value.
        return 60.0  # pragma: no cover


@dataclass(frozen=True, init=False, repr=False)
class RateLimit:
    """One route's limits, over as many windows as the provider counts.

    ``requests_per_minute``/``tokens_per_minute`` (and the input/output token limits) are
    per ``window`` seconds (60 by default, hence the names; ``window`` also accepts a
    :class:`~datetime.timedelta`); ``requests_per_day``/``tokens_per_day`` per 86,400 s.
    Any other window: ``RateLimit.window(seconds, requests=, tokens=, input_tokens=,
    output_tokens=)``. Limits combine with ``|``: every window of both is enforced, e.g.
    ``RateLimit(requests_per_minute=15) | RateLimit.window(3600, tokens=200_000)``.
    ``None`` means unlimited.
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    window: _WindowConstructor = _WindowConstructor()
    input_tokens_per_minute: int | None = None
    output_tokens_per_minute: int | None = None
    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    more: tuple[Window, ...] = ()

    # Written by hand (not __post_init__) so ``window`` stays a float for readers while
    # callers may still pass a timedelta, and the class attribute stays a constructor.
    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        window: float | timedelta = 60.0,
        *,
        input_tokens_per_minute: int | None = None,
        output_tokens_per_minute: int | None = None,
        requests_per_day: int | None = None,
        tokens_per_day: int | None = None,
        more: Iterable[Window] = (),
    ) -> None:
        given = {
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
            "input_tokens_per_minute": input_tokens_per_minute,
            "output_tokens_per_minute": output_tokens_per_minute,
            "requests_per_day": requests_per_day,
            "tokens_per_day": tokens_per_day,
        }
        for name, value in given.items():
            _positive_int_or_none(name, value)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "window", _seconds("RateLimit.window", window))
        extra = tuple(more)
        if not all(isinstance(w, Window) for w in extra):
            raise ConfigurationError(f"RateLimit.more must hold Window objects, got {extra!r}")
        object.__setattr__(self, "more", extra)

    @classmethod
    def _only(
        cls,
        seconds: float | timedelta,
        *,
        requests: int | None = None,
        tokens: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> RateLimit:
        """A limit of one window of ``seconds``; combine with ``|``."""
        # The window stands as the first one, so a route given only it reads as before
        # (``requests_per_minute`` is "per window", ``window`` its length).
        first = Window(
            _seconds("RateLimit.window", seconds), requests, tokens, input_tokens, output_tokens
        )
        return cls(
            requests,
            tokens,
            first.seconds,
            input_tokens_per_minute=input_tokens,
            output_tokens_per_minute=output_tokens,
        )

    @property
    def windows(self) -> tuple[Window, ...]:
        """Every window with a limit (the first one always, even unlimited)."""
        first = Window(
            float(self.window),
            self.requests_per_minute,
            self.tokens_per_minute,
            self.input_tokens_per_minute,
            self.output_tokens_per_minute,
        )
        day = Window(DAY, self.requests_per_day, self.tokens_per_day)
        return (first, *(w for w in (day, *self.more) if w.limited))

    @property
    def several(self) -> bool:
        """More than the single requests/tokens window of earlier versions."""
        return len(self.windows) > 1 or any(
            w.input_tokens is not None or w.output_tokens is not None for w in self.windows
        )

    def __or__(self, other: RateLimit) -> RateLimit:
        if not isinstance(other, RateLimit):
            return NotImplemented
        # The left operand keeps its place as the first window; every other is extra.
        rest = other.windows if other.windows[0].limited else other.windows[1:]
        return RateLimit(
            self.requests_per_minute,
            self.tokens_per_minute,
            float(self.window),
            input_tokens_per_minute=self.input_tokens_per_minute,
            output_tokens_per_minute=self.output_tokens_per_minute,
            requests_per_day=self.requests_per_day,
            tokens_per_day=self.tokens_per_day,
            more=(*self.more, *rest),
        )

    def __repr__(self) -> str:
        shown = [
            f"{name}={value!r}"
            for name in (
                "requests_per_minute",
                "tokens_per_minute",
                "input_tokens_per_minute",
                "output_tokens_per_minute",
                "requests_per_day",
                "tokens_per_day",
            )
            if (value := getattr(self, name)) is not None
        ]
        shown.append(f"window={self.window!r}")
        text = ", ".join(shown)
        more = "".join(
            f" | RateLimit.window({w.seconds!r}, "
            + ", ".join(f"{n}={getattr(w, n)!r}" for n in DIMENSIONS if getattr(w, n))
            + ")"
            for w in self.more
        )
        return f"RateLimit({text}){more}"

    def parted(self, parts: int) -> RateLimit:
        """``1 / parts`` of every limit, rounded down, never below 1."""
        if parts == 1:
            return self

        def part(v: int | None) -> int | None:
            return None if v is None else max(1, v // parts)

        return RateLimit(
            part(self.requests_per_minute),
            part(self.tokens_per_minute),
            float(self.window),
            input_tokens_per_minute=part(self.input_tokens_per_minute),
            output_tokens_per_minute=part(self.output_tokens_per_minute),
            requests_per_day=part(self.requests_per_day),
            tokens_per_day=part(self.tokens_per_day),
            more=tuple(w.parted(parts) for w in self.more),
        )
