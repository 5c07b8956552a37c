"""What one attempt holds on a route, and the account of a whole call.

An :class:`Admission` is the pair (limiter slot, breaker permit) that an attempt
took. It is finished exactly once, in one of four ways, and each way says what the
route's shared state learns from the attempt:

- ``succeed``: the breaker records a success; the reservation is settled to real usage,
  bounded by what the request could have cost (``ceiling``: a provider's claim is not
  trusted past it), and never below the estimate on a route whose provider charges the
  reserved output up front, as OpenAI does.
- ``fail``: the breaker records a failure; the reservation stays (the provider counted it).
- ``release``: a neutral outcome (429, 4xx, caller gave up mid-call): the breaker permit is
  returned without counting; the reservation stays, since the request went out.
- ``withdraw``: the request was never sent: both the reservation and the permit go back.

Finishing also gives back the route's bulkhead slot, if the call took one. Each way is a
:class:`~resilient_llm.flow.ops.Finish` effect the flow yields; a driver performs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import AttemptRecord
from ..events import AttemptFinished, EventHandler, RouteSkipped, heard
from ..policies.breaker import Permit
from ..policies.limiter import settled_tokens
from .ops import Finish, FinishHow, SharedRoute, Slot

__all__ = ["Admission", "CallReport"]


class Admission:
    def __init__(
        self,
        route: SharedRoute,
        slot: Slot,
        permit: Permit,
        estimate: int,
        *,
        bulkhead: bool = False,
        ceiling: int | None = None,
        settles_below_estimate: bool = True,
    ) -> None:
        self.route = route
        self.ceiling = ceiling
        self.bulkhead = bulkhead
        self.slot = slot
        self.permit = permit
        self.estimate = estimate
        self.settles_below_estimate = settles_below_estimate
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def finish(
        self, how: FinishHow, now: float | None = None, tokens: int | None = None
    ) -> Finish | None:
        """The effect that ends this admission ``how``, or None if it already ended."""
        if self._done:
            return None
        self._done = True
        return Finish(self.route, how, self.slot, self.permit, now, tokens, self.bulkhead)

    def charged(self, usage_tokens: int | None) -> int | None:
        """What the reservation settles to for a reply that reported ``usage_tokens``."""
        if usage_tokens is None:
            return None
        return settled_tokens(
            usage_tokens,
            self.estimate,
            self.ceiling,
            below_estimate=self.settles_below_estimate,
        )


@dataclass
class CallReport:
    """The history of one call: what was tried, waited for and failed over, in order."""

    route: str = ""
    attempts: list[AttemptRecord] = field(default_factory=list)
    waits: list[tuple[str, str, float]] = field(default_factory=list)
    failovers: list[tuple[str, str, str]] = field(default_factory=list)
    # The last refused attempt's error, when a call that fails over on refusals found no
    # route that answered otherwise: its reply is the call's.
    refused: Any = None
    _skips: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def finished(
        self,
        route: str,
        attempt: int,
        outcome: str,
        started: float,
        now: float,
        status: int | None,
        emit: EventHandler,
    ) -> None:
        self.attempts.append(AttemptRecord(route, outcome, started, now - started, status))
        if heard(emit):
            emit(AttemptFinished(route, now, attempt, outcome, now - started, status))

    def skipped(self, route: str, reason: str, now: float, emit: EventHandler) -> None:
        """Note a route passed over, once per reason: a call may look at it many times."""
        if (route, reason) in self._skips:
            return
        self._skips.add((route, reason))
        self.attempts.append(AttemptRecord(route, "skipped", now, detail=reason))
        emit(RouteSkipped(route, now, reason))

    def metadata(self) -> dict[str, Any]:
        """The reply's ``metadata``: plain data, safe to log or serialise."""
        return {
            "provider": self.route,
            "attempts": [
                {
                    "route": a.route,
                    "outcome": a.outcome,
                    "status_code": a.status_code,
                    "duration": a.duration,
                    "detail": a.detail,
                }
                for a in self.attempts
            ],
            "attempt_count": sum(1 for a in self.attempts if a.outcome != "skipped"),
            "waits": [{"route": r, "reason": why, "seconds": s} for r, why, s in self.waits],
            "waited": sum(s for _, _, s in self.waits),
            "failovers": [{"from": a, "to": b, "reason": why} for a, b, why in self.failovers],
        }
