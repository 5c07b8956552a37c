"""Stream stall limits through the real SDKs: a late first chunk fails over, a silence
after it raises StreamInterrupted, each on time and well before the call's deadline."""

from __future__ import annotations

import threading
import time

import pytest

from resilient_llm import (
    ConfigurationError,
    ResilientLLM,
    StreamInterrupted,
    StreamTimeouts,
)
from resilient_llm.chaos import Fault
from resilient_llm.events import Failover

from .conftest import ANSWER, BREAKER, FALLBACK, KINDS, RETRY, STREAMS, Bench, eventually

LIMITS = StreamTimeouts(first_token=0.4, idle=0.4)


def _engine(bench: Bench, *providers: object) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers),  # type: ignore[arg-type]
        retry=RETRY,
        breaker=BREAKER,
        timeout=10.0,
        stream_timeouts=LIMITS,
        on_event=bench.events.append,
    )
    bench.engines.append(llm)
    return llm


def _pumps(bench: Bench) -> int:
    """Pump threads still reading one of this test's routes."""
    names = {f"resilient-llm-pump-{name}" for name in bench.names}
    return sum(1 for t in threading.enumerate() if t.name in names)


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_late_first_chunk_fails_over_on_time(bench: Bench, kind: str, mode: str) -> None:
    primary = bench.route(kind, "primary")
    fallback = bench.route(FALLBACK[kind], "fallback")
    bench.script(
        primary, Fault("slow_first_token", delay=3.0), Fault("slow_first_token", delay=3.0)
    )
    llm = _engine(bench, primary, fallback)

    started = time.monotonic()
    result = bench.run(llm, mode)
    took = time.monotonic() - started

    assert result.text == ANSWER
    assert result.chunks[0].provider == fallback.name
    # Two slow attempts (the retry too) at 0.4 s each, then the fallback: far from 3 s.
    assert took < 2.5
    assert [(e.route, e.to_route) for e in bench.of(Failover)] == [(primary.name, fallback.name)]


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_silence_after_the_first_chunk_is_cut_on_time(bench: Bench, kind: str, mode: str) -> None:
    primary = bench.route(kind, "primary")
    bench.script(primary, Fault("stall", delay=1.5))
    llm = _engine(bench, primary, bench.route(FALLBACK[kind], "fallback"))
    received: list[object] = []

    started = time.monotonic()
    with pytest.raises(StreamInterrupted, match="stalled") as info:
        bench.run(llm, mode, received)  # type: ignore[arg-type]
    took = time.monotonic() - started

    assert 0.4 <= took < 1.4, "cut after the idle limit, before the provider resumed"
    assert info.value.partial_text
    assert ANSWER.startswith(info.value.partial_text)
    assert bench.calls(1) == [(primary.name, 200, "stall")], "no failover after text"
    # The pump of a sync stream closes its stream once the provider resumes.
    assert eventually(lambda: _pumps(bench) == 0, timeout=5.0)


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_healthy_streams_pass_untouched(bench: Bench, kind: str, mode: str) -> None:
    llm = _engine(bench, bench.route(kind, "primary"))
    for _ in range(3):
        assert bench.run(llm, mode).text == ANSWER
    assert eventually(lambda: _pumps(bench) == 0, timeout=5.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"first_token": 0}, "StreamTimeouts.first_token"),
        ({"idle": -1}, "StreamTimeouts.idle"),
        ({"idle": "1"}, "StreamTimeouts.idle"),
    ],
)
def test_bad_limits_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        StreamTimeouts(**kwargs)  # type: ignore[arg-type]
