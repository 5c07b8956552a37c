"""Stream stall limits through the real SDKs: a late first chunk fails over, a silence
after it raises StreamInterrupted, each cut by its own limit, well before the call's
deadline.

The engine runs on a :class:`FakeClock`: a limit is reached only when the test moves fake
time to it, once the chaos server is known to hold the stream back, so which limit cut
the stream, and when, is exact whatever the machine's load.
"""

from __future__ import annotations

import threading

import pytest

from resilient_llm import (
    ConfigurationError,
    FakeClock,
    ResilientLLM,
    StreamInterrupted,
    StreamTimeouts,
)
from resilient_llm.events import Failover
from resilient_llm.testing.chaos import Fault

from .conftest import (
    ANSWER,
    BREAKER,
    FALLBACK,
    KINDS,
    RETRY,
    STREAMS,
    Bench,
    cutting,
    eventually,
)

LIMITS = StreamTimeouts(first_token=0.4, idle=0.4)
DEADLINE = 10.0


def _engine(bench: Bench, *providers: object, clock: FakeClock | None = None) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers),  # type: ignore[arg-type]
        retry=RETRY,
        breaker=BREAKER,
        timeout=DEADLINE,
        stream_timeouts=LIMITS,
        clock=clock,
        on_event=bench.events.append,
        # These tests are about the stall limits: a hedge's timer, armed as an attempt
        # starts, would be the earliest deadline before the stall limit is armed, and the
        # fake clock would be moved to it instead (hedging: test_hung_routes.py).
        hedge=False,
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
    clock = FakeClock()
    primary = bench.route(kind, "primary")
    fallback = bench.route(FALLBACK[kind], "fallback")
    late = Fault("slow_first_token", delay=60)
    bench.script(primary, late, late)
    llm = _engine(bench, primary, fallback, clock=clock)

    # Each slow attempt is cut once its headers have come and its first chunk has not.
    with cutting(clock, bench.arrivals(primary, "slow_first_token", 200)) as cuts:
        result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.chunks[0].provider == fallback.name
    # Two slow attempts (the retry too), each cut at its 0.4 s first-token limit.
    assert len(cuts) == 2
    backoff = clock.sleeps[0]
    assert cuts == pytest.approx([0.4, 0.4 + backoff + 0.4])
    assert clock.now() < DEADLINE
    assert [(e.route, e.to_route) for e in bench.of(Failover)] == [(primary.name, fallback.name)]


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_silence_after_the_first_chunk_is_cut_on_time(bench: Bench, kind: str, mode: str) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "primary")
    bench.script(primary, Fault("stall", delay=60))
    llm = _engine(bench, primary, bench.route(FALLBACK[kind], "fallback"), clock=clock)
    received: list[object] = []

    # The stream is silent once its first chunk has reached the caller.
    with (
        cutting(clock, lambda: 1 if received else 0) as cuts,
        pytest.raises(StreamInterrupted, match="stalled") as info,
    ):
        bench.run(llm, mode, received)  # type: ignore[arg-type]

    assert cuts == [pytest.approx(0.4)], "cut at the idle limit, the provider still silent"
    assert info.value.partial_text
    assert ANSWER.startswith(info.value.partial_text)
    assert bench.calls(1) == [(primary.name, 200, "stall")], "no failover after text"
    # The pump of a sync stream is released at the cut (its connection shut down), with
    # the provider still holding the stream open for a minute.
    assert eventually(lambda: _pumps(bench) == 0)


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
