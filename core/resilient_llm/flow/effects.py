"""The effects the decision core yields and the outcomes drivers send back.

A driver answers ``Wait`` with the current time after sleeping, ``Enter`` with
``Entered`` once it holds a bulkhead slot or gave up waiting, and ``Call`` with
``Succeeded`` or ``Failed`` after making the attempt. That is the whole protocol between
:mod:`resilient_llm.flow.call` and the sync, async and streaming drivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ResilientLLMError
from ..policies.backoff import RetryPolicy
from ..run.bulkhead import Bulkhead
from ..state.memory import Route

__all__ = [
    "Call",
    "Effect",
    "Enter",
    "Entered",
    "Failed",
    "FlowPolicy",
    "Outcome",
    "Refused",
    "Succeeded",
    "Wait",
]


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: str
    route: str


@dataclass(frozen=True)
class Enter:
    """Take a slot of ``bulkhead``, waiting at most ``timeout`` seconds in its queue."""

    bulkhead: Bulkhead
    timeout: float
    route: str


@dataclass(frozen=True)
class Entered:
    """``ok``: a slot is held; ``queued``: the call had to wait in line for it (or in vain)."""

    now: float
    ok: bool
    queued: bool


@dataclass(frozen=True)
class Call:
    """Make attempt ``attempt`` on ``route`` within ``timeout`` seconds.

    ``until_deadline``: the timeout is the call's time left, not a shorter per-attempt
    limit, so running out of it is the caller's deadline cutting the attempt short.
    """

    route: Route
    timeout: float
    attempt: int
    until_deadline: bool = False


@dataclass(frozen=True)
class Succeeded:
    now: float
    usage_tokens: int | None = None


@dataclass(frozen=True)
class Failed:
    """The attempt failed; ``timed_out``: it ran out of its timeout (the driver's or the
    SDK's), as opposed to the provider answering with an error."""

    now: float
    error: ResilientLLMError
    timed_out: bool = False


class Refused(ResilientLLMError):
    """An attempt whose reply is a refusal, sent back as ``Failed`` when the engine is to
    ask the next route (``on_refusal="failover"``).

    It is not the provider's failure: the flow counts the attempt a success for the route
    and moves on. ``reply`` is what the attempt gave (a ``ChatResponse``, or a stream's
    chunks), returned to the caller if no later route answers.
    """

    def __init__(self, reply: object, usage_tokens: int | None, *, provider: str) -> None:
        super().__init__(f"{provider}: the model refused", provider=provider)
        self.reply = reply
        self.usage_tokens = usage_tokens


Effect = Wait | Enter | Call
Outcome = Succeeded | Failed


@dataclass(frozen=True)
class FlowPolicy:
    """How one call behaves: the retry policy, how long a route's limiter queue may hold
    the call before a later route that can go now takes it, and a per-attempt timeout."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    spill_over: float = 1.0
    attempt_timeout: float | None = None
