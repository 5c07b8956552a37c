"""Every chaos fault, per provider and per call mode, through the whole engine.

The issue's promise: each fault ends in a success via retry/failover or in a typed
``ResilientLLMError`` within the deadline; a truncated or in-band-failed stream is never
returned as a success; a hang is cut by the deadline. Everything is asserted from what the
caller got and from the chaos server's request log (who was called, in which order).

How the chaos server breaks a stream, per protocol (``chaos/respond.py``: ``truncate`` sends
the stream's head and half its content frames then closes without the terminal event;
``stream_error`` sends the head, the first content frame, then the in-band error;
``malformed`` sends the head then a garbage frame):

- OpenAI: the head is a role-only chunk with empty content, which yields no text. The first
  content delta ("The capital ") reaches the caller before ``truncate`` cuts the stream
  (``RemoteProtocolError``, no finish_reason, no ``[DONE]``) and before ``stream_error``'s
  ``data: {"error": {"type": "server_error"}}`` (in-band 500).
- Anthropic: the head is ``message_start`` (no text); the first ``content_block_delta``
  travels with its ``content_block_start``. ``truncate`` delivers "The capital of France "
  and ends without ``message_stop``; ``stream_error`` delivers "The capital " then
  ``event: error`` with ``overloaded_error`` (in-band 529).
- Gemini: no head; every frame carries text. ``truncate`` delivers "The capital " then cuts
  the stream (httpx2 ``RemoteProtocolError`` sync, aiohttp ``ClientPayloadError`` async);
  ``stream_error`` delivers "The capital " then an ``UNAVAILABLE`` error object (503).

So in every protocol ``truncate`` and ``stream_error`` break a stream *after* its first chunk
reached the caller: the engine's policy is then ``StreamInterrupted`` with the partial text,
no retry, no failover (retrying would repeat text the caller already has). ``malformed``
breaks every stream *before* any text: retry, then failover, like any 5xx. Without a stream,
``truncate`` is half a JSON body (failover), ``stream_error`` is answered ``overloaded``
(failover) and ``slow_first_token`` is a plain, prompt answer. But a whole reply that may
be hedged (another route could answer, and its patience is shorter than its own timeout)
is read through the stream, so that its first chunk is a sign of life: there ``truncate``
and ``stream_error`` break the stream after its start, a failed attempt all the same.

A ``hang``, and a stream's ``slow_first_token``, are cut by the primary's own attempt
timeout, retried, then failed over; with one route and no attempt timeout, the call's
deadline cuts them (``DeadlineExceeded``). In the async modes the engine runs on a
:class:`FakeClock` and the test moves it to the attempt's deadline once the request is
known to hang at the server (``cutting``), so no real timeout races a busy machine. In the
sync modes a blocking read is cut by the SDK's own read timeout (real time), which starts
only once the request is written: the server has it whatever the load.
"""

from __future__ import annotations

import contextlib
import socket

import pytest

from resilient_llm import (
    AllProvidersFailed,
    AuthError,
    BadRequest,
    Capabilities,
    ChatChunk,
    CircuitState,
    ContextLengthExceeded,
    DeadlineExceeded,
    FakeClock,
    Provider,
    ProviderUnavailable,
    RateLimit,
    RateLimited,
    ResilientLLMError,
    StreamInterrupted,
)
from resilient_llm.events import BreakerStateChanged, Failover
from resilient_llm.testing.chaos import Fault, Plan

from .conftest import (
    ANSWER,
    ATTEMPTS_PER_ROUTE,
    BREAKER,
    FALLBACK,
    KINDS,
    MODES,
    STREAMS,
    Bench,
    LogEntry,
    cutting,
)

# The HTTP status each retryable error fault answers with, per protocol.
STATUS: dict[str, dict[str, int]] = {
    "overloaded": {"openai": 503, "anthropic": 529, "gemini": 503},
    "server_error": {"openai": 500, "anthropic": 500, "gemini": 500},
    "unavailable": {"openai": 503, "anthropic": 503, "gemini": 503},
}
# An in-band stream error's status, as the adapter classifies it (see the docstring).
IN_BAND_STATUS = {"openai": 500, "anthropic": 529, "gemini": 503}


def primary_attempts(kind: str, mode: str, fault: str) -> tuple[list[tuple[int, str]], str]:
    """What the primary's requests look like in the log before a failover, and the
    failover's reason: ``([(status, fault), ...], reason)``. Status 0: no response."""
    if fault == "rate_limit":  # paused for its retry-after; another route takes the call
        return [(429, fault)], "rate limited"
    if fault in ("auth", "not_found"):  # the route is misconfigured: disabled, never retried
        return [(401 if fault == "auth" else 404, fault)], "misconfigured"
    if fault in STATUS:
        status = STATUS[fault][kind]
    elif fault == "stream_error":
        # A whole reply that may be hedged is read through the stream (its first chunk a
        # sign of life), which the fault breaks after its start: a 200, then the error.
        assert mode not in STREAMS
        status = 200
    elif fault in ("reset", "hang"):  # no response: reset at once, or cut by the client
        status = 0
    else:  # malformed, truncate: a 200 whose body cannot be read; slow_first_token: a 200
        status = 200  # whose first frame comes after the attempt timeout
    return [(status, fault)] * ATTEMPTS_PER_ROUTE, "retries spent"


FAILOVER_FAULTS = (
    "rate_limit",
    "overloaded",
    "server_error",
    "unavailable",
    "reset",
    "malformed",
    "truncate",
    "stream_error",
    "auth",
    "not_found",
    "hang",
    "slow_first_token",
)
# Faults cut by the primary's own attempt timeout, well before the call's deadline: real
# seconds in the sync modes (the SDK's read timeout), fake ones in the async modes.
ATTEMPT_TIMEOUT = 0.3
FAKE_ATTEMPT_TIMEOUT = 30.0
TIMED_FAULTS = {
    "hang": Fault("hang", delay=60),
    "slow_first_token": Fault("slow_first_token", delay=60),
}
# When a timed fault is known to hold its request: a hang on arrival, a slow stream once
# its headers are sent.
HELD_STATUS = {"hang": 0, "slow_first_token": 200}
ASYNC = ("achat", "astream")


def failover_cases() -> list[object]:
    cases: list[object] = []
    for kind in KINDS:
        for mode in MODES:
            for fault in FAILOVER_FAULTS:
                if fault in ("truncate", "stream_error") and mode in STREAMS:
                    continue  # after the first chunk: test_a_stream_cut_after_...
                if fault == "slow_first_token" and mode not in STREAMS:
                    continue  # no stream, no first token: test_slow_first_token_only_...
                cases.append(pytest.param(kind, mode, fault, id=f"{kind}-{mode}-{fault}"))
    return cases


@pytest.mark.parametrize(("kind", "mode", "fault"), failover_cases())
def test_a_fault_on_the_primary_fails_over_to_another_family(
    bench: Bench, kind: str, mode: str, fault: str
) -> None:
    timed = fault in TIMED_FAULTS
    fake = timed and mode in ASYNC
    attempt_timeout = (FAKE_ATTEMPT_TIMEOUT if fake else ATTEMPT_TIMEOUT) if timed else None
    primary = bench.route(kind, "primary", timeout=attempt_timeout)
    fallback = bench.route(FALLBACK[kind], "fallback")
    clock = FakeClock() if fake else None
    llm = bench.engine(primary, fallback, clock=clock, timeout=1000.0 if fake else 5.0)
    expected, reason = primary_attempts(kind, mode, fault)
    scripted = TIMED_FAULTS.get(fault) or Fault.of(fault)
    bench.script(primary, *[scripted] * (len(expected) + 1))  # more than the engine may use

    if clock is None:
        result = bench.run(llm, mode)
    else:
        with cutting(clock, bench.arrivals(primary, fault, HELD_STATUS[fault])) as cuts:
            result = bench.run(llm, mode)
        assert len(cuts) == len(expected), "each attempt on the primary cut once, by its timeout"

    assert result.text == ANSWER
    assert result.providers == {fallback.name}, "nothing from the failed primary leaked"
    calls = [(primary.name, s, f) for s, f in expected] + [(fallback.name, 200, "ok")]
    assert bench.calls(len(calls)) == calls
    failovers = [(e.route, e.to_route, e.reason) for e in bench.of(Failover)]
    assert failovers == [(primary.name, fallback.name, reason)]
    if result.reply is not None:
        meta = result.reply.metadata
        assert meta["provider"] == fallback.name
        assert meta["failovers"] == [{"from": primary.name, "to": fallback.name, "reason": reason}]
        assert meta["attempt_count"] == len(expected) + 1
        outcomes = [(a["route"], a["status_code"]) for a in meta["attempts"]]
        assert outcomes[-1] == (fallback.name, None)
        assert all(route == primary.name for route, _ in outcomes[:-1])


@pytest.mark.parametrize("mode", ["chat", "achat"])
@pytest.mark.parametrize("kind", KINDS)
def test_slow_first_token_only_slows_streams(bench: Bench, kind: str, mode: str) -> None:
    """Without a stream the fault has no first token to delay: the primary just answers.

    Had the reply been held for the fault's minute, the 10 s attempt timeout would have
    cut it and the call failed over; no busy machine takes 10 s to answer at once."""
    primary = bench.route(kind, "primary", timeout=10.0)
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = bench.engine(primary, fallback, timeout=30.0)
    bench.script(primary, TIMED_FAULTS["slow_first_token"])

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.providers == {primary.name}
    assert bench.calls(1) == [(primary.name, 200, "slow_first_token")]
    assert bench.of(Failover) == []


@pytest.mark.parametrize("fault", ["truncate", "stream_error"])
@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_cut_after_its_first_chunk_is_interrupted_not_failed_over(
    bench: Bench, kind: str, mode: str, fault: str
) -> None:
    primary = bench.route(kind, "primary")
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = bench.engine(primary, fallback)
    bench.script(primary, fault)
    chunks: list[ChatChunk] = []

    with pytest.raises(StreamInterrupted) as info:
        bench.run(llm, mode, chunks)

    error = info.value
    delivered = "".join(chunk.delta for chunk in chunks)
    assert delivered, "the fault comes after the first chunk reached the caller"
    assert error.partial_text == delivered
    assert ANSWER.startswith(delivered)
    assert delivered != ANSWER, "a cut stream is never a silent success"
    assert {chunk.provider for chunk in chunks} == {primary.name}
    assert all(chunk.finish_reason is None for chunk in chunks)
    assert error.provider == primary.name
    assert error.status_code == (IN_BAND_STATUS[kind] if fault == "stream_error" else None)
    assert isinstance(error.__cause__, ProviderUnavailable)
    assert bench.calls(1) == [(primary.name, 200, fault)], "no retry, no failover"
    assert bench.of(Failover) == []


@pytest.mark.parametrize("fault", ["bad_request", "context_length"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_request_is_raised_at_once_without_failover(
    bench: Bench, kind: str, mode: str, fault: str
) -> None:
    # For a context-length error, a fallback whose window is no larger is no way out.
    same_window = Capabilities(context_window=100_000)
    primary = bench.route(kind, "primary", capabilities=same_window)
    fallback = bench.route(FALLBACK[kind], "fallback", capabilities=same_window)
    llm = bench.engine(primary, fallback)
    bench.script(primary, fault, fault)

    with pytest.raises(BadRequest) as info:
        bench.run(llm, mode)

    expected = ContextLengthExceeded if fault == "context_length" else BadRequest
    assert type(info.value) is expected
    assert info.value.provider == primary.name
    assert info.value.status_code == 400
    assert bench.calls(1) == [(primary.name, 400, fault)]
    assert bench.of(Failover) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_context_length_error_moves_to_a_larger_window(
    bench: Bench, kind: str, mode: str
) -> None:
    primary = bench.route(kind, "primary", capabilities=Capabilities(context_window=8_000))
    smaller = bench.route(kind, "smaller", capabilities=Capabilities(context_window=4_000))
    larger = bench.route(FALLBACK[kind], "larger", capabilities=Capabilities(context_window=9_000))
    llm = bench.engine(primary, smaller, larger)
    bench.script(primary, "context_length")

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert bench.calls(2) == [(primary.name, 400, "context_length"), (larger.name, 200, "ok")]
    [failover] = bench.of(Failover)
    assert (failover.route, failover.to_route, failover.reason) == (
        primary.name,
        larger.name,
        "context too long",
    )


# case -> (the fault, scripted for ever; the error raised with one route; its cause's type;
# how many requests reach the route)
NEVER_ENDING: dict[str, tuple[Fault, type[ResilientLLMError], type[ResilientLLMError], int]] = {
    # A retry-after longer than the time left is not waited for ...
    "rate_limit": (Fault("rate_limit", retry_after=30), DeadlineExceeded, RateLimited, 1),
    # ... a short one is, once per allowed retry.
    "rate_limit-short": (
        Fault("rate_limit", retry_after=0.1),
        AllProvidersFailed,
        RateLimited,
        ATTEMPTS_PER_ROUTE,
    ),
    **{
        fault: (Fault.of(fault), AllProvidersFailed, ProviderUnavailable, ATTEMPTS_PER_ROUTE)
        for fault in (
            "overloaded",
            "server_error",
            "unavailable",
            "reset",
            "malformed",
            "truncate",
            "stream_error",
        )
    },
    "auth": (Fault("auth"), AllProvidersFailed, AuthError, 1),
    "not_found": (Fault("not_found"), AllProvidersFailed, AuthError, 1),
}


def never_ending_cases() -> list[object]:
    return [
        pytest.param(kind, mode, case, id=f"{kind}-{mode}-{case}")
        for kind in KINDS
        for mode in MODES
        for case in NEVER_ENDING
        # In a stream these two come after the first chunk: StreamInterrupted (above).
        if not (case in ("truncate", "stream_error") and mode in STREAMS)
    ]


@pytest.mark.parametrize(("kind", "mode", "case"), never_ending_cases())
def test_a_fault_that_never_ends_raises_a_typed_error_within_the_deadline(
    bench: Bench, kind: str, mode: str, case: str
) -> None:
    only = bench.route(kind, "only")
    timeout = 3.0
    clock = FakeClock()  # the backoff and retry-after waits, on fake time
    llm = bench.engine(only, timeout=timeout, clock=clock)
    fault, error_type, cause_type, requests = NEVER_ENDING[case]
    bench.script(only, *[fault] * 20)

    with pytest.raises(ResilientLLMError) as info:
        bench.run(llm, mode)

    assert type(info.value) is error_type
    assert isinstance(info.value.__cause__, cause_type)
    assert info.value.provider == only.name
    assert clock.now() <= timeout, "never waited past the deadline"
    calls = bench.calls(requests)
    assert [(name, f) for name, _, f in calls] == [(only.name, fault.kind)] * requests


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_hang_is_cut_by_the_deadline(bench: Bench, kind: str, mode: str) -> None:
    only = bench.route(kind, "only")  # no Provider(timeout=...): only the deadline cuts it
    timeout = 1.0
    # Async: fake time, moved to the deadline once the request hangs. Sync: the SDK's read
    # timeout, which is the time left before the deadline.
    clock = FakeClock() if mode in ASYNC else None
    llm = bench.engine(only, timeout=timeout, clock=clock)
    bench.script(only, Fault("hang", delay=60))

    cuts: list[float] = []
    with (
        (
            contextlib.nullcontext(cuts)
            if clock is None
            else cutting(clock, bench.arrivals(only, "hang"))
        ) as cuts,
        pytest.raises(ResilientLLMError) as info,
    ):
        bench.run(llm, mode)

    assert cuts == ([] if clock is None else [timeout]), "cut at the deadline, not before"

    error = info.value
    assert isinstance(error, DeadlineExceeded | AllProvidersFailed), repr(error)
    assert isinstance(error.__cause__, ProviderUnavailable)
    assert "timed out" in error.__cause__.message
    # Logged once its client has gone; status 0: no response was ever sent.
    assert bench.calls(1) == [(only.name, 0, "hang")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_no_call_reaches_a_route_while_its_retry_after_is_in_force(
    bench: Bench, kind: str, mode: str
) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "primary")
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = bench.engine(primary, fallback, clock=clock)
    bench.script(primary, Fault("rate_limit", retry_after=30))

    results = [bench.run(llm, mode) for _ in range(5)]

    assert [r.text for r in results] == [ANSWER] * 5
    assert all(r.providers == {fallback.name} for r in results)
    calls = [(primary.name, 429, "rate_limit")] + [(fallback.name, 200, "ok")] * 5
    assert bench.calls(len(calls)) == calls
    assert [(e.route, e.to_route, e.reason) for e in bench.of(Failover)] == [
        (primary.name, fallback.name, "rate limited")
    ]
    assert llm.snapshot()[primary.name].paused_for == pytest.approx(30.0)

    clock.advance(29.0)  # still paused
    assert bench.run(llm, mode).providers == {fallback.name}
    clock.advance(1.5)  # the retry-after is over: the primary is preferred again
    assert bench.run(llm, mode).providers == {primary.name}
    assert bench.calls(8)[6:] == [(fallback.name, 200, "ok"), (primary.name, 200, "ok")]


@pytest.mark.parametrize("probe", ["succeeds", "fails"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_no_call_reaches_a_route_while_its_breaker_is_open(
    bench: Bench, kind: str, mode: str, probe: str
) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "primary")
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = bench.engine(primary, fallback, clock=clock)
    threshold = BREAKER.failure_threshold  # 3
    bench.script(primary, *["overloaded"] * (threshold + (probe == "fails")))
    failed: LogEntry = (primary.name, STATUS["overloaded"][kind], "overloaded")
    answered: LogEntry = (fallback.name, 200, "ok")

    results = [bench.run(llm, mode) for _ in range(5)]

    assert all(r.text == ANSWER and r.providers == {fallback.name} for r in results)
    # Call 1: two failures (its retries spent); call 2: the third opens the breaker;
    # calls 3-5 never reach the primary.
    calls = [failed, failed, answered, failed, answered, answered, answered, answered]
    assert bench.calls(len(calls)) == calls
    assert [(e.route, e.reason) for e in bench.of(Failover)] == [
        (primary.name, "retries spent"),
        (primary.name, "circuit opened"),
    ]
    assert llm.snapshot()[primary.name].breaker.state is CircuitState.OPEN

    clock.advance(29.0)  # the cooldown is not over
    assert bench.run(llm, mode).providers == {fallback.name}
    assert bench.calls(9)[8:] == [answered]

    clock.advance(1.5)  # past the cooldown: exactly one half-open probe
    result = bench.run(llm, mode)
    after = bench.calls(10 if probe == "succeeds" else 11)[9:]
    assert result.text == ANSWER
    if probe == "succeeds":
        assert after == [(primary.name, 200, "ok")]
        assert result.providers == {primary.name}
        assert llm.snapshot()[primary.name].breaker.state is CircuitState.CLOSED
    else:
        assert after == [failed, answered]
        assert result.providers == {fallback.name}
        assert llm.snapshot()[primary.name].breaker.state is CircuitState.OPEN
        assert bench.run(llm, mode).providers == {fallback.name}  # open again: not called
        assert bench.calls(12)[11:] == [answered]
    changes = [(e.old, e.new) for e in bench.of(BreakerStateChanged) if e.route == primary.name]
    last = ("half_open", "closed") if probe == "succeeds" else ("half_open", "open")
    assert changes == [("closed", "open"), ("open", "half_open"), last]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_local_limiter_spills_over_before_the_provider_quota_says_429(
    bench: Bench, kind: str, mode: str
) -> None:
    primary = bench.route(kind, "primary", rate_limit=RateLimit(requests_per_minute=2))
    fallback = bench.route(FALLBACK[kind], "fallback")
    bench.plan(primary, Plan(rpm=2))
    llm = bench.engine(primary, fallback, clock=FakeClock())

    results = [bench.run(llm, mode) for _ in range(5)]

    assert [r.text for r in results] == [ANSWER] * 5
    assert [r.providers for r in results] == [{primary.name}] * 2 + [{fallback.name}] * 3
    calls = bench.calls(5)
    assert calls == [(primary.name, 200, "ok")] * 2 + [(fallback.name, 200, "ok")] * 3
    assert all(status != 429 for _, status, _ in calls)
    assert llm.snapshot()[primary.name].limiter.requests_used == 2


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused_fails_over(bench: Bench, kind: str, mode: str) -> None:
    refused = Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        api_key="test-key",
        name=f"{kind}-{bench.tag}-refused",
    )
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = bench.engine(refused, fallback)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.providers == {fallback.name}
    failovers = [(e.route, e.to_route) for e in bench.of(Failover)]
    assert failovers == [(refused.name, fallback.name)]
    assert bench.calls(1) == [(fallback.name, 200, "ok")]
