"""The effects the decision core yields and the outcomes drivers send back.

A driver answers ``Wait`` with the current time after sleeping, ``Enter`` with
``Entered`` once it holds a bulkhead slot or gave up waiting, ``Call`` with ``Succeeded``
or ``Failed`` after making the attempt, the route-state effects of
:mod:`~resilient_llm.flow.ops` with their results, and, on a stream that got its first
chunk, ``Relay`` with how the stream ended (``StreamEnded``, ``StreamBroke``,
``StreamDropped``). That is the whole protocol between :mod:`resilient_llm.flow.call` and
the sync, async and streaming drivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ResilientLLMError
from ..policies.backoff import RetryPolicy
from ..policies.hedging import Hedge
from ..policies.hints import RateLimitHints
from .admission import CallReport
from .ops import Done, Finish, Leave, Op, SharedRoute

__all__ = [
    "Answer",
    "Call",
    "Cancelled",
    "Effect",
    "Enter",
    "Entered",
    "Failed",
    "FlowPolicy",
    "Outcome",
    "Refused",
    "Relay",
    "StreamBroke",
    "StreamDropped",
    "StreamEnded",
    "Succeeded",
    "Wait",
]


class Cancelled(BaseException):
    """Thrown into a flow by a driver that stops it early (its task was cancelled, its
    caller interrupted). The flow yields the effects that give back what it holds, then
    re-raises: unlike a generator's close, a thrown exception still lets it yield."""


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: str
    route: str


@dataclass(frozen=True)
class Enter:
    """Take a slot of ``route``'s bulkhead, waiting at most ``timeout`` seconds in its queue."""

    route: SharedRoute
    timeout: float


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
    ``hedge_after``: a driver that can race this attempt starts the next route beside it
    if the attempt shows no sign of life (a stream's first chunk, a whole reply) within
    so many seconds; ``why`` is what it reports then. None: never race it.
    """

    route: SharedRoute
    timeout: float
    attempt: int
    until_deadline: bool = False
    hedge_after: float | None = None
    why: str = ""


@dataclass(frozen=True)
class Succeeded:
    """The attempt answered (for a stream: its first chunk arrived). ``quota`` is what the
    provider's rate-limit headers said, parsed by the adapter; the flow applies it."""

    now: float
    usage_tokens: int | None = None
    quota: RateLimitHints | None = None


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


@dataclass(frozen=True)
class Relay:
    """A stream's first chunk is the caller's: relay the rest, then answer how it ended.
    ``report`` is the call's account so far, for the first chunk's metadata."""

    route: SharedRoute
    report: CallReport


@dataclass(frozen=True)
class StreamEnded:
    """The stream ran to its end; ``usage_tokens`` is what its last usage report said."""

    now: float
    usage_tokens: int | None = None


@dataclass(frozen=True)
class StreamBroke:
    """The stream failed after its first chunk (the provider's failure)."""

    now: float


@dataclass(frozen=True)
class StreamDropped:
    """The caller let go of the stream (closed it, cancelled, raised): nobody's failure."""


Effect = Wait | Enter | Call | Op | Finish | Leave | Relay
Outcome = Succeeded | Failed
StreamOutcome = StreamEnded | StreamBroke | StreamDropped
# What a driver sends back: the time after a Wait, Entered, an attempt's Outcome, a stream's
# end, or a route-state operation's result and the time after it (Done).
Answer = float | Outcome | Entered | StreamOutcome | Done | None


@dataclass(frozen=True)
class FlowPolicy:
    """How one call behaves: the retry policy, how long a route's limiter queue may hold
    the call before a later route that can go now takes it, a per-attempt timeout, and
    when a quiet attempt gets the next route started beside it (None: never)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    spill_over: float = 1.0
    attempt_timeout: float | None = None
    hedge: Hedge | None = None
