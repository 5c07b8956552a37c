"""Per-prefix state and the one decision each request gets; pure, no I/O, no clock reads.

The server calls :meth:`Route.decide` under its lock with the current server time, so the
same sequence of requests at the same times always gets the same answers.

Quotas count as providers do, each over its own sliding window: requests, total tokens
(the prompt plus ``max_tokens``, as OpenAI charges), input tokens, and output tokens
(``max_tokens`` while the reply is being made, then what it produced, as Anthropic
adjusts), per ``quota_window`` (a minute) and per ``day`` (shortened for tests).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from .plan import Fault, Plan
from .wire import QuotaView

__all__ = ["WINDOW", "Decision", "Quota", "Route"]

WINDOW = 60.0
"""The default quota window, seconds (``Plan.quota_window``)."""


@dataclass(frozen=True)
class Decision:
    """What to answer.

    ``label`` is the fault kind, or ``"quota"`` (refused by a quota, answered as
    ``rate_limit``; ``violation`` names it) or ``"outage"`` (inside an outage window,
    answered as ``overloaded``). ``charged`` is the quota tokens charged (0 when not
    admitted).
    """

    fault: Fault
    label: str
    latency: float
    charged: int
    quota: QuotaView | None
    message: str = ""
    violation: Quota | None = None


@dataclass(frozen=True)
class Quota:
    """One limit: ``what`` (``requests``, ``tokens``, ``input_tokens``, ``output_tokens``)
    over ``seconds``; ``per`` is ``"minute"`` or ``"day"``, as the families name them."""

    what: str
    limit: int
    seconds: float
    per: str

    @property
    def short(self) -> str:
        """OpenAI's names: RPM, TPM, RPD, TPD, ITPM, OTPM."""
        letter = {"requests": "R", "tokens": "T", "input_tokens": "IT", "output_tokens": "OT"}
        return f"{letter[self.what]}P{'M' if self.per == 'minute' else 'D'}"

    @property
    def gemini_id(self) -> str:
        """The ``quotaId`` of a Gemini ``QuotaFailure`` violation for this quota."""
        span = "PerMinute" if self.per == "minute" else "PerDay"
        if self.what == "requests":
            return f"GenerateRequests{span}PerProjectPerModel-FreeTier"
        kind = {"tokens": "", "input_tokens": "Input", "output_tokens": "Output"}[self.what]
        return f"GenerateContent{kind}TokensPerModel{span}-FreeTier"


@dataclass
class _Entry:
    at: float
    tokens: int
    input: int
    output: int  # reserved (max_tokens) until ``settles``, then ``produced``
    produced: int
    settles: float

    def amount(self, what: str, now: float) -> int:
        if what == "requests":
            return 1
        if what == "tokens":
            return self.tokens
        if what == "input_tokens":
            return self.input
        return self.produced if now >= self.settles else self.output


class Route:
    """One provider prefix: its plan, the rest of its script, its RNG and quota windows."""

    def __init__(self, plan: Plan, epoch: float) -> None:
        self.plan = plan
        self.epoch = epoch
        self.script: deque[Fault] = deque(Fault.of(f) for f in plan.script)
        self.rng = random.Random(plan.seed)
        self.window: deque[_Entry] = deque()
        self.quotas = _quotas(plan)

    def decide(
        self, now: float, tokens: int, *, input: int = 0, output: tuple[int, int] = (0, 0)
    ) -> Decision:
        """The answer to a request of ``tokens`` quota tokens arriving at ``now``;
        ``input`` its prompt tokens, ``output`` its ``(max_tokens, tokens produced)``."""
        plan = self.plan
        since = now - self.epoch
        if any(start <= since < end for start, end in plan.outages):
            return Decision(Fault("overloaded"), "outage", plan.latency, 0, self.view(now))
        longest = max((q.seconds for q in self.quotas), default=0.0)
        while self.window and self.window[0].at <= now - longest:
            self.window.popleft()
        reserved, produced = output
        entry = _Entry(now, tokens, input, reserved, produced, now + plan.latency)
        for quota in self.quotas:
            refusal = self._refusal(quota, now, entry)
            if refusal is not None:
                wait, message = refusal
                fault = Fault("rate_limit", retry_after=wait)
                return Decision(
                    fault, "quota", plan.latency, 0, self.view(now), message, violation=quota
                )
        self.window.append(entry)
        if self.script:
            fault = self.script.popleft()
        elif plan.error_rate > 0 and self.rng.random() < plan.error_rate:
            fault = Fault.of(plan.error_kinds[self.rng.randrange(len(plan.error_kinds))])
        else:
            fault = Fault("ok")
        return Decision(fault, fault.kind, plan.latency, tokens, self.view(now))

    def _live(self, quota: Quota, now: float) -> list[_Entry]:
        return [e for e in self.window if e.at > now - quota.seconds]

    def _refusal(self, quota: Quota, now: float, entry: _Entry) -> tuple[float, str] | None:
        """``(seconds until it would fit, message)`` when ``quota`` refuses, else None."""
        live = self._live(quota, now)
        # Arriving, a request is charged its whole max_tokens.
        need = entry.output if quota.what == "output_tokens" else entry.amount(quota.what, now)
        used = sum(e.amount(quota.what, now) for e in live)
        if used + need <= quota.limit:
            return None
        what = quota.what.replace("_", " ")
        name = f"{what} per {quota.per} ({quota.short})"
        if need > quota.limit:
            return quota.seconds, (
                f"Request too large on {name}: Limit {quota.limit}, Requested {need}."
            )
        freed, wait = 0, quota.seconds
        for e in live:
            freed += e.amount(quota.what, now)
            if used - freed + need <= quota.limit:
                wait = e.at + quota.seconds - now
                break
        return wait, (
            f"Rate limit reached on {name}: Limit {quota.limit}, Used {used}, "
            f"Requested {need}. Please try again in {wait:.3f}s."
        )

    def view(self, now: float) -> QuotaView | None:
        """Per kind, the tightest quota's limit, what remains and when it is fully
        replenished (the window holding the least, as Anthropic's ``tokens-*`` reports)."""
        if not self.quotas:
            return None
        shown: dict[str, tuple[int | None, int | None, float | None]] = {}
        for quota in self.quotas:
            live = self._live(quota, now)
            left = max(0, quota.limit - sum(e.amount(quota.what, now) for e in live))
            reset = max(0.0, live[-1].at + quota.seconds - now) if live else 0.0
            best = shown.get(quota.what)
            if best is None or (best[1] is not None and left < best[1]):
                shown[quota.what] = (quota.limit, left, reset)
        none: tuple[int | None, int | None, float | None] = (None, None, None)
        return QuotaView(
            *shown.get("requests", none),
            *shown.get("tokens", none),
            *shown.get("input_tokens", none),
            *shown.get("output_tokens", none),
        )


def _quotas(plan: Plan) -> list[Quota]:
    minute, day = plan.quota_window, plan.day
    named = [
        ("requests", plan.rpm, minute, "minute"),
        ("tokens", plan.tpm, minute, "minute"),
        ("input_tokens", plan.input_tpm, minute, "minute"),
        ("output_tokens", plan.output_tpm, minute, "minute"),
        ("requests", plan.rpd, day, "day"),
        ("tokens", plan.tpd, day, "day"),
    ]
    return [Quota(what, limit, span, per) for what, limit, span, per in named if limit]
