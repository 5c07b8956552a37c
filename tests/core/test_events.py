from __future__ import annotations

import logging

import pytest

from resilient_llm.events import Emitter, Event, Failover, LimiterWait, heard


def test_emitter_logs_and_calls_every_handler_even_after_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    emit = Emitter([broken, seen.append])
    with caplog.at_level(logging.DEBUG, logger="resilient_llm"):
        emit(Failover("openai", 1.0, "anthropic", "rate limited"))
        emit(LimiterWait("openai", 2.0, 0.5, "limiter"))
    assert [e.kind for e in seen] == ["failover", "wait"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "failover" in warnings[0].getMessage()
    assert "anthropic" in warnings[0].getMessage()
    assert any("handler" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_handlers_can_be_added_and_removed_at_any_time() -> None:
    first: list[Event] = []
    second: list[Event] = []
    emit = Emitter([first.append])
    emit.add(second.append)
    emit.add(second.append)  # once only
    emit(LimiterWait("a", 0.0, 1.0, "limiter"))
    emit.remove(first.append)
    emit(LimiterWait("a", 1.0, 1.0, "limiter"))
    assert (len(first), len(second)) == (1, 2)


def test_routine_events_are_heard_by_a_handler_or_a_debug_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emit = Emitter()
    with caplog.at_level(logging.WARNING, logger="resilient_llm"):
        assert not heard(emit), "nobody listens: a call's steps need not be built"
        seen: list[Event] = []
        emit.add(seen.append)
        assert heard(emit)
        emit.remove(seen.append)
        assert not heard(emit)
    with caplog.at_level(logging.DEBUG, logger="resilient_llm"):
        assert heard(emit)
    # Any other handler is called as it is: it hears everything.
    assert heard(lambda event: None)
