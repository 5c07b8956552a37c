"""The seed story, told by the engine itself against the local chaos providers.

OpenAI answers 429 and is paused; Anthropic answers "Paris"; Anthropic then reports
itself overloaded (529) until exponential backoff gives way to an open breaker and Gemini
takes the traffic; after the cooldown one half-open probe closes Anthropic's breaker.
Every line printed is an engine event as it happens; the final table is the snapshot.
With ``live=True`` the same calls go to the real providers (keys from the environment).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._engine import ResilientLLM
from .clock import Clock, SystemClock
from .events import (
    AttemptFinished,
    BreakerStateChanged,
    Event,
    Failover,
    LimiterWait,
    RetryScheduled,
    RoutePaused,
    RouteSkipped,
)
from .policies.backoff import RetryPolicy
from .policies.breaker import BreakerPolicy
from .policies.limiter import RateLimit
from .providers.base import Provider
from .state.snapshot import Snapshot

if TYPE_CHECKING:
    from .testing.chaos import ChaosServer

__all__ = ["QUESTIONS", "run_demo"]

QUESTIONS = (
    "What is the capital of France?",
    "Compare Paris and Lyon in one sentence.",
    "Compare Paris and Lyon in one sentence.",
    "What is the capital of France?",
)
COOLDOWN = 2.0
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def describe(event: Event) -> str | None:
    """One readable line for the events worth showing; None for routine ones."""
    match event:
        case AttemptFinished(route=r, attempt=n, outcome=o, status_code=s, duration=d):
            status = f" (HTTP {s})" if s else ""
            return f"  {r:<10} attempt {n}: {o}{status} in {d * 1000:.0f} ms"
        case RoutePaused(route=r, seconds=s):
            return f"  {r:<10} paused for {s:.0f} s (provider's retry-after)"
        case RetryScheduled(route=r, retry=n, delay=d, reason=why):
            return f"  {r:<10} retry {n} after {d:.2f} s backoff ({why})"
        case Failover(route=r, to_route=t, reason=why):
            return f"  failover   {r} -> {t} ({why})"
        case BreakerStateChanged(route=r, old=o, new=n, reason=why):
            return f"  {r:<10} breaker {o} -> {n} ({why})"
        case RouteSkipped(route=r, reason=why):
            return f"  {r:<10} skipped ({why})"
        case LimiterWait(route=r, seconds=s, reason=why) if why != "backoff":
            return f"  {r:<10} waiting {s:.2f} s ({why})"
    return None


@contextlib.contextmanager
def _chaos_providers(server: ChaosServer | None) -> Iterator[list[Provider]]:
    from .testing.chaos import ChaosServer, Fault

    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(ChaosServer())
        server.script("openai", Fault("rate_limit", retry_after=30.0))
        server.script("anthropic", "ok", "overloaded", "overloaded", "overloaded", "ok")
        yield [
            Provider(
                kind,
                model,
                base_url=server.base_url(kind),
                api_key="chaos-demo",
                rate_limit=RateLimit(requests_per_minute=60, tokens_per_minute=100_000),
            )
            for kind, model in MODELS.items()
        ]


def run_demo(
    *,
    live: bool = False,
    write: Callable[[str], None] = print,
    server: ChaosServer | None = None,
    clock: Clock | None = None,
) -> Snapshot:
    """Run the seed story and return the final snapshot (also printed).

    ``server`` lets a caller (a test) supply and then inspect the chaos server;
    ``clock`` lets it run on a fake clock, so the waits take no time.
    """
    clock = clock or SystemClock()
    live_providers = [Provider(kind, model) for kind, model in MODELS.items()]
    source = contextlib.nullcontext(live_providers) if live else _chaos_providers(server)
    with source as providers:

        def show(event: Event) -> None:
            line = describe(event)
            if line is not None:
                write(line)

        llm = ResilientLLM(
            providers,
            retry=RetryPolicy(max_retries=3, base=0.2, cap=2.0),
            breaker=BreakerPolicy(failure_threshold=3, cooldown=COOLDOWN),
            timeout=30.0,
            on_event=show,
            clock=clock,
            jitter_seed=7,
        )
        with llm:
            where = "the real providers" if live else "the local chaos providers (no keys)"
            write(f"resilient-llm demo against {where}\n")
            for number, question in enumerate(QUESTIONS, 1):
                if number == len(QUESTIONS):
                    write(f"\n(waiting {COOLDOWN:.0f} s: the breaker's cooldown)")
                    clock.sleep(COOLDOWN)
                write(f"\n[{number}] {question}")
                reply = llm.chat(question, max_tokens=100)
                write(f"  => {reply.provider} ({reply.model}): {reply.content}")
            snapshot = llm.snapshot()
            write("\nSnapshot")
            write(str(snapshot))
            return snapshot
