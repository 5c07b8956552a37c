from __future__ import annotations

import logging

import pytest

from resilient_llm.events import Event, Failover, LimiterWait, emitter


def test_emitter_logs_and_calls_every_handler_even_after_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    emit = emitter([broken, seen.append])
    with caplog.at_level(logging.DEBUG, logger="resilient_llm"):
        emit(Failover("openai", 1.0, "anthropic", "rate limited"))
        emit(LimiterWait("openai", 2.0, 0.5, "limiter"))
    assert [e.kind for e in seen] == ["failover", "wait"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "failover" in warnings[0].getMessage()
    assert "anthropic" in warnings[0].getMessage()
    assert any("handler" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
