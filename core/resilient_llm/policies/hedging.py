"""When a quiet attempt has waited long enough for the next route to be asked beside it.

A hung provider (a request accepted and never answered, headers and then silence, a reply
trickling in a byte at a time) is one of the commonest LLM failures; waiting it out spends
the caller's whole deadline on it. A fixed per-attempt timeout is no cure, since it cuts
legitimate long generations. So an attempt is judged by its signs of life: its first
chunk, a whole reply's included (a call that may be raced reads its reply through the
provider's stream). One that shows none for a share of the time the call has left
(``share``, ``reasoning_share`` for models that think silently before their first token),
or for ``delay`` seconds when that is set, gets the next route started beside it; the
first complete answer wins. A slow but live reply, its first chunk in, is never raced.
This module decides; the drivers (:mod:`resilient_llm.run.hedge`) race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .backoff import _real

__all__ = ["DEFAULT_HEDGE", "Hedge"]


def _share(name: str, value: float) -> float:
    return _real(f"Hedge.{name}", value, "> 0 and < 1", lambda v: 0 < v < 1, duration=False)


@dataclass(frozen=True, init=False)
class Hedge:
    """Ask the next route too when an attempt shows no sign of life for long enough.

    ``delay``: a fixed limit in seconds to the first sign of life (the first chunk, of a
    stream or of a whole reply read through the stream); None (the default) takes
    ``share`` of the time the call has left when the attempt starts, or
    ``reasoning_share`` on a route whose model reasons before its first token
    (capabilities ``reasoning``). Either way the limit is at most the time left.
    """

    delay: float | None
    share: float
    reasoning_share: float

    def __init__(
        self,
        delay: float | timedelta | None = None,
        *,
        share: float = 0.5,
        reasoning_share: float = 0.8,
    ) -> None:
        if delay is not None:
            delay = _real("Hedge.delay", delay, "> 0", lambda v: v > 0, duration=True)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "share", _share("share", share))
        object.__setattr__(self, "reasoning_share", _share("reasoning_share", reasoning_share))

    def patience(self, left: float, *, reasoning: bool = False) -> float:
        """How long an attempt started with ``left`` seconds to the deadline may show no
        sign of life before the next route is started beside it."""
        if self.delay is not None:
            return min(self.delay, left)
        return left * (self.reasoning_share if reasoning else self.share)

    def why(self, route: str, patience: float, left: float, *, stream: bool) -> str:
        """What the hedge event says: which sign of life did not come, and the limit."""
        # A whole reply that may be raced is read through the stream (run.assembly).
        sign = "first chunk" if stream else "first chunk of the reply"
        limit = (
            f"{patience:.3g}s"
            if self.delay is not None
            else f"{patience:.3g}s, {patience / left:.0%} of the {left:.3g}s left"
        )
        return f"no {sign} from {route!r} within {limit}"


DEFAULT_HEDGE = Hedge()
