"""Per-prefix state and the one decision each request gets; pure, no I/O, no clock reads.

The server calls :meth:`Route.decide` under its lock with the current server time, so the
same sequence of requests at the same times always gets the same answers.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from .plan import Fault, Plan
from .wire import QuotaView

__all__ = ["WINDOW", "Decision", "Route"]

WINDOW = 60.0
"""The default quota window, seconds (``Plan.quota_window``)."""


@dataclass(frozen=True)
class Decision:
    """What to answer.

    ``label`` is the fault kind, or ``"quota"`` (refused by rpm/tpm, answered as
    ``rate_limit``) or ``"outage"`` (inside an outage window, answered as ``overloaded``).
    ``charged`` is the quota tokens charged (0 when not admitted).
    """

    fault: Fault
    label: str
    latency: float
    charged: int
    quota: QuotaView | None
    message: str = ""


class Route:
    """One provider prefix: its plan, the rest of its script, its RNG and quota window."""

    def __init__(self, plan: Plan, epoch: float) -> None:
        self.plan = plan
        self.epoch = epoch
        self.script: deque[Fault] = deque(Fault.of(f) for f in plan.script)
        self.rng = random.Random(plan.seed)
        self.window: deque[tuple[float, int]] = deque()

    def decide(self, now: float, tokens: int) -> Decision:
        """The answer to a request of ``tokens`` quota tokens arriving at ``now``."""
        plan = self.plan
        since = now - self.epoch
        if any(start <= since < end for start, end in plan.outages):
            return Decision(Fault("overloaded"), "outage", plan.latency, 0, self.view(now))
        while self.window and self.window[0][0] <= now - plan.quota_window:
            self.window.popleft()
        refusal = self._refusal(now, tokens)
        if refusal is not None:
            wait, message = refusal
            fault = Fault("rate_limit", retry_after=wait)
            return Decision(fault, "quota", plan.latency, 0, self.view(now), message)
        self.window.append((now, tokens))
        if self.script:
            fault = self.script.popleft()
        elif plan.error_rate > 0 and self.rng.random() < plan.error_rate:
            fault = Fault.of(plan.error_kinds[self.rng.randrange(len(plan.error_kinds))])
        else:
            fault = Fault("ok")
        return Decision(fault, fault.kind, plan.latency, tokens, self.view(now))

    def _refusal(self, now: float, tokens: int) -> tuple[float, str] | None:
        """``(seconds until it would fit, message)`` when the quota refuses, else None."""
        plan, window, span = self.plan, self.window, self.plan.quota_window
        if plan.rpm is not None and len(window) >= plan.rpm:
            # The slot frees when the admission `rpm` places back leaves the window.
            wait = window[len(window) - plan.rpm][0] + span - now
            return wait, (
                f"Rate limit reached on requests per min (RPM): Limit {plan.rpm}, "
                f"Used {len(window)}, Requested 1. Please try again in {wait:.3f}s."
            )
        if plan.tpm is None:
            return None
        used = sum(t for _, t in window)
        if used + tokens <= plan.tpm:
            return None
        if tokens > plan.tpm:
            return span, (
                f"Request too large on tokens per min (TPM): Limit {plan.tpm}, Requested {tokens}."
            )
        freed, wait = 0, span
        for at, spent in window:
            freed += spent
            if used - freed + tokens <= plan.tpm:
                wait = at + span - now
                break
        return wait, (
            f"Rate limit reached on tokens per min (TPM): Limit {plan.tpm}, Used {used}, "
            f"Requested {tokens}. Please try again in {wait:.3f}s."
        )

    def view(self, now: float) -> QuotaView | None:
        """Limits, what remains and when the window is fully replenished."""
        plan, window, span = self.plan, self.window, self.plan.quota_window
        if plan.rpm is None and plan.tpm is None:
            return None
        live = [(at, t) for at, t in window if at > now - span]
        reset = max(0.0, live[-1][0] + span - now) if live else 0.0
        if plan.rpm is None:
            requests: tuple[int | None, int | None, float | None] = (None, None, None)
        else:
            requests = (plan.rpm, max(0, plan.rpm - len(live)), reset)
        if plan.tpm is None:
            tokens: tuple[int | None, int | None, float | None] = (None, None, None)
        else:
            tokens = (plan.tpm, max(0, plan.tpm - sum(t for _, t in live)), reset)
        return QuotaView(*requests, *tokens)
