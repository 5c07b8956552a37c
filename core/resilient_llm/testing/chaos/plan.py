"""What a chaos provider does: one scripted :class:`Fault` per request, and a :class:`Plan`.

A plan is data, so it can come from code or a JSON file (``Plan.load``). Validation happens
here, once, with messages that name the field; the server never meets a malformed plan.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast, get_args

from ...errors import ConfigurationError

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "Plan"]

FaultKind = Literal[
    "ok",
    "rate_limit",
    "overloaded",
    "server_error",
    "unavailable",
    "bad_request",
    "auth",
    "not_found",
    "context_length",
    "hang",
    "reset",
    "malformed",
    "truncate",
    "stream_error",
    "reset_mid_stream",
    "slow_first_token",
    "stall",
    "blackhole",
    "hang_after_headers",
    "trickle",
    "steady",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
_RETRY_AFTER_KINDS = frozenset({"rate_limit", "overloaded", "unavailable"})


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{what} must be finite and >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Fault:
    """One scripted response.

    ``retry_after`` (seconds) is sent on ``rate_limit`` (default 1 s) and, when given, on
    ``overloaded`` / ``unavailable``: as ``retry-after`` and ``retry-after-ms`` headers
    (OpenAI, Anthropic) or a ``google.rpc.RetryInfo`` ``retryDelay`` (Gemini). ``delay`` is
    extra latency before answering; for ``hang`` it is how long to hang (default 3600 s, or
    until the client goes away), for ``slow_first_token`` the wait before the first stream
    chunk (default 1 s), for ``stall`` the silence after the first chunk (default 3600 s),
    for ``blackhole`` and ``hang_after_headers`` how long to say nothing (default 3600 s),
    for ``trickle`` the wait between two bytes (default 1 s), and for ``steady`` the wait
    before each frame of a stream (default 1 s; a whole reply comes after that many
    seconds per frame).
    """

    kind: FaultKind
    retry_after: float | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigurationError(
                f"Fault.kind must be one of {sorted(FAULT_KINDS)}, got {self.kind!r}"
            )
        if self.retry_after is not None:
            _seconds(self.retry_after, "Fault.retry_after")
            if self.kind not in _RETRY_AFTER_KINDS:
                raise ConfigurationError(
                    f"Fault.retry_after applies to {sorted(_RETRY_AFTER_KINDS)}, not {self.kind!r}"
                )
        _seconds(self.delay, "Fault.delay")

    @classmethod
    def of(cls, value: Fault | str | Mapping[str, Any]) -> Fault:
        """A fault from itself, a kind name, or a mapping of its fields (as in JSON)."""
        if isinstance(value, Fault):
            return value
        if isinstance(value, str):
            return cls(cast(FaultKind, value))
        if isinstance(value, Mapping):
            unknown = set(value) - {"kind", "retry_after", "delay"}
            if unknown or "kind" not in value:
                raise ConfigurationError(
                    f"a fault mapping needs 'kind' and may have 'retry_after', 'delay'; "
                    f"got keys {sorted(value)}"
                )
            return cls(**value)
        raise ConfigurationError(f"a fault must be a Fault, a kind name or a mapping: {value!r}")


@dataclass
class Plan:
    """How one provider prefix behaves.

    Each request first meets the outage windows (answered ``overloaded``), then the quotas
    (answered 429), then takes the next scripted fault (FIFO); once the script is empty,
    ``error_rate`` draws seeded random faults from ``error_kinds``; otherwise it is ``ok``.

    Quotas are sliding windows of ``quota_window`` seconds (60 by default, as providers
    count per minute) over *admitted* requests (ones that passed the outage and quota
    checks, whatever fault they then get); a shorter window lets a test watch several
    windows go by in seconds. A request's quota tokens are
    ``ceil(chars / 4)`` of all its message text (system prompt, messages, tool calls and
    tool results) plus its ``max_tokens`` (0 if absent). Anthropic-style ``input_tpm`` and
    ``output_tpm`` count the prompt and the output apart (``max_tokens`` until the reply is
    made, then what it produced); ``rpd`` and ``tpd`` are per ``day`` seconds (86,400;
    shorter in tests). ``outages`` are ``(start, end)``
    seconds since the server started, or since this plan was set with ``set_plan``.
    ``latency`` is added before every response. Count-tokens calls (Anthropic, Gemini) are
    always answered and bypass outages, quotas and the script.
    """

    script: list[Fault | str] = field(default_factory=list)
    error_rate: float = 0.0
    error_kinds: tuple[str, ...] = ("server_error",)
    seed: int = 0
    latency: float = 0.0
    rpm: int | None = None
    tpm: int | None = None
    quota_window: float = 60.0
    input_tpm: int | None = None
    output_tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    day: float = 86400.0
    outages: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.script = [Fault.of(f) for f in self.script]
        rate = self.error_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ConfigurationError(f"Plan.error_rate must be in [0, 1], got {rate!r}")
        self.error_kinds = tuple(self.error_kinds)
        if not self.error_kinds:
            raise ConfigurationError("Plan.error_kinds must not be empty")
        for kind in self.error_kinds:
            Fault.of(kind)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigurationError(f"Plan.seed must be an int, got {self.seed!r}")
        self.latency = _seconds(self.latency, "Plan.latency")
        for name in ("rpm", "tpm", "input_tpm", "output_tpm", "rpd", "tpd"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ConfigurationError(f"Plan.{name} must be a positive int, got {value!r}")
        for name in ("quota_window", "day"):
            window = getattr(self, name)
            if (
                isinstance(window, bool)
                or not isinstance(window, int | float)
                or not math.isfinite(window)
                or window <= 0
            ):
                raise ConfigurationError(
                    f"Plan.{name} must be a finite number of seconds > 0, got {window!r}"
                )
            setattr(self, name, float(window))
        self.outages = [self._window(w) for w in self.outages]

    @staticmethod
    def _window(window: object) -> tuple[float, float]:
        if not isinstance(window, Sequence) or isinstance(window, str) or len(window) != 2:
            raise ConfigurationError(f"an outage is a (start, end) pair, got {window!r}")
        start = _seconds(window[0], "outage start")
        end = _seconds(window[1], "outage end")
        if end <= start:
            raise ConfigurationError(f"an outage must end after it starts, got {window!r}")
        return (start, end)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """A plan from a JSON-style mapping with the same field names."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"a plan must be a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigurationError(
                f"unknown plan field(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**dict(data))

    @classmethod
    def load(cls, path: str | Path) -> dict[str, Plan]:
        """Plans per provider prefix from a JSON file: ``{"openai": {...}, "anthropic": {...}}``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read chaos plan {str(path)!r}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"chaos plan {str(path)!r} must map prefixes to plans")
        return {str(name): cls.from_dict(plan) for name, plan in data.items()}
