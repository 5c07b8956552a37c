"""`make demo`'s story, asserted from the chaos server's request log."""

from __future__ import annotations

from resilient_llm import FakeClock
from resilient_llm.demo import run_demo
from resilient_llm.policies.breaker import CircuitState
from resilient_llm.testing.chaos import ChaosServer


def test_the_seed_story_calls_who_it_should_in_order() -> None:
    lines: list[str] = []
    with ChaosServer() as server:
        snapshot = run_demo(write=lines.append, server=server, clock=FakeClock())
        calls = [
            (r.provider, r.status)
            for r in server.log
            if r.path.lower().endswith(("chat/completions", "messages", "generatecontent"))
        ]
    assert calls == [
        ("openai", 429),  # 1: OpenAI is rate limited and paused for 30 s ...
        ("anthropic", 200),  # ... and Anthropic answers at once
        ("anthropic", 529),  # 2: Anthropic overloaded: backoff, retry,
        ("anthropic", 529),
        ("anthropic", 529),  # the breaker opens at the third failure
        ("gemini", 200),  # and Gemini takes the call
        ("gemini", 200),  # 3: while the breaker is open Anthropic is not called
        ("anthropic", 200),  # 4: after the cooldown one half-open probe closes it
    ]
    text = "\n".join(lines)
    assert "Paris" in text
    assert "Lyon" in text
    assert "breaker closed -> open" in text
    assert "breaker half_open -> closed" in text
    assert snapshot["anthropic"].breaker.state is CircuitState.CLOSED
    assert snapshot["openai"].paused_for > 0
    assert snapshot["openai"].limiter.requests_used == 1
    assert snapshot["anthropic"].limiter.requests_used == 5
    assert snapshot["gemini"].limiter.queue_length == 0
