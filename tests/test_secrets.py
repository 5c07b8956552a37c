"""A canary API key must never surface: not in logs, events, reprs, errors or snapshots."""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest

from resilient_llm import (
    BreakerPolicy,
    FakeClock,
    Provider,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.chaos import ChaosServer, Fault
from resilient_llm.events import Event

CANARY = "sk-canary-7f3e9b2c"
FAULTS = ("rate_limit", "overloaded", "auth", "malformed", "truncate", "bad_request", "reset")


def test_no_trace_of_the_key_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    events: list[Event] = []
    seen: list[object] = []
    with ChaosServer() as server:
        providers = [
            Provider(kind, model, base_url=server.base_url(kind), api_key=CANARY)  # type: ignore[arg-type]
            for kind, model in (
                ("openai", "gpt-4o-mini"),
                ("anthropic", "claude-haiku-4-5"),
                ("gemini", "gemini-2.5-flash"),
            )
        ]
        llm = ResilientLLM(
            providers,
            retry=RetryPolicy(max_retries=1, base=0.01),
            breaker=BreakerPolicy(failure_threshold=2, cooldown=1.0),
            clock=FakeClock(),
            on_event=events.append,
            timeout=5,
        )
        with caplog.at_level(logging.DEBUG):
            for fault in FAULTS:
                for kind in ("openai", "anthropic", "gemini"):
                    server.script(kind, Fault(fault))
                for call in (
                    lambda: llm.chat("What is the capital of France?"),
                    lambda: asyncio.run(llm.achat("What is the capital of France?")),
                    lambda: list(llm.stream("What is the capital of France?")),
                ):
                    try:
                        seen.append(call())
                    except ResilientLLMError as error:
                        seen += [error, error.__cause__]
                llm.clock.advance(2.0)  # type: ignore[attr-defined]
                for route in llm.routes:
                    route.enable()
        snapshot = llm.snapshot()
        seen += [llm, snapshot, snapshot.to_dict(), *llm.providers, *events]
        llm.close()

    assert any(isinstance(item, ResilientLLMError) for item in seen)
    texts = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    for item in seen:
        texts += [repr(item), str(item)]
        if isinstance(item, ResilientLLMError):
            texts.append(repr(pickle.dumps(item)))
    texts.append(repr(pickle.dumps(snapshot)))
    leaks = [text for text in texts if CANARY in text]
    assert leaks == []
