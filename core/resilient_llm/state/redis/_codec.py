"""What crosses the wire to ``route.lua`` and back: a request's charge, a limit's windows,
times moved onto the caller's timeline, permits and snapshots read from the script's replies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...policies.breaker import BreakerSnapshot, CircuitState, Permit
from ...policies.limiter import EXACT_UP_TO, LimiterSnapshot, RateLimit, Window, WindowSnapshot
from ...policies.rate_limit import DIMENSIONS
from ..memory import RouteSnapshot
from ._exchange import text

__all__ = [
    "RedisPermit",
    "charged",
    "here",
    "permit",
    "read_snapshot",
    "window_snapshot",
    "windows_spec",
]


@dataclass(frozen=True)
class RedisPermit(Permit):
    """A breaker permit held in Redis, handed back by ``key``: its ``id`` and the nonce of
    the call that took it, so unique even after Redis lost the counter ids come from."""

    key: str = ""


def read_snapshot(
    result: list[Any],
    now: float,
    t: float,
    *,
    name: str,
    state: CircuitState,
    cooldown: float,
    disabled: str | None,
) -> RouteSnapshot:
    """Route ``name``'s snapshot from what the script's ``snapshot`` read returned
    (``state``: the breaker state this process last saw)."""
    fields = [text(v) for v in result]
    admitted, used, queued, requests, tokens, refill = fields[:6]
    failures, calls, opened, probes, paused = fields[6:11]
    windows = [
        window_snapshot(spec, counted, here(free_at, now, t) - now)
        for spec, counted, free_at in zip(fields[11::3], fields[12::3], fields[13::3], strict=True)
    ]
    first = windows[0].window
    rpm, tpm = first.requests, first.tokens
    holding = max(windows, key=lambda w: w.free_in)
    limiter = LimiterSnapshot(
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        requests_used=int(admitted),
        estimated_tokens=int(used),
        queue_length=int(queued),
        refill_time=here(refill, now, t) - now if refill else 0.0,
        requests_remaining=None if rpm is None else max(0, rpm - int(requests)),
        tokens_remaining=None if tpm is None else max(0, tpm - int(tokens)),
        windows=tuple(windows),
        held_by=holding.name if holding.free_in > 0 else None,
        held_for=holding.free_in,
    )
    opened_at = here(opened, now, t) if opened else None
    breaker = BreakerSnapshot(
        state,
        int(failures),
        int(calls),
        opened_at,
        opened_at + cooldown if state is CircuitState.OPEN and opened_at is not None else None,
        int(probes),
    )
    return RouteSnapshot(
        name=name,
        limiter=limiter,
        breaker=breaker,
        paused_for=max(0.0, here(paused, now, t) - now),
        disabled=disabled,
    )


def here(value: object, now: float, t: float) -> float:
    # On the engine's own clock (time="client") the script decided at ``now`` itself and its
    # times are already ours: returned as they are, with no rounding from the round trip.
    x = float(text(value))
    return x if math.isinf(x) or t == now else now + (x - t)


def window_snapshot(spec: str, counted: str, free_in: float) -> WindowSnapshot:
    seconds, *limits = spec.split(":")
    window = Window(float(seconds), *(int(v) if v else None for v in limits))
    requests, tokens, inputs, outputs = (int(float(v)) for v in counted.split(","))
    return WindowSnapshot(window, requests, tokens, inputs, outputs, max(0.0, free_in))


def charged(charge: list[int]) -> str:
    """``[requests, tokens, input, output]`` as the script reads a request's tokens: the
    total, with its input and output when they differ from it."""
    if charge[1] == charge[2] == charge[3]:
        return str(charge[1])
    return f"{charge[1]},{charge[2]},{charge[3]}"


def windows_spec(limit: RateLimit) -> str:
    """Every window of ``limit`` for ``route.lua`` ("" when the one-window path holds it:
    one window of at most an hour, of requests and total tokens)."""
    windows = limit.windows
    if not limit.several and windows[0].seconds <= EXACT_UP_TO:
        return ""
    return ",".join(
        ":".join(
            [repr(w.seconds), *("" if (v := getattr(w, n)) is None else str(v) for n in DIMENSIONS)]
        )
        for w in windows
    )


def permit(fields: list[Any]) -> RedisPermit:
    permit_id, probe, generation, key = (text(v) for v in fields)
    return RedisPermit(probe=probe == "1", generation=int(generation), id=int(permit_id), key=key)
