"""Stream recovery through the whole engine: a stream that breaks after text reached the
caller goes on, on a route of another family, and the caller reads the unbroken answer.

Every break the chaos server can make mid-stream (truncation, a reset connection, an
in-band error, a silence cut by the idle limit) on each family, continued on each other
family, in ``stream`` and ``astream``: the joined text equals the answer an unbroken
stream gives, exactly. The chaos brain answers a continuation with the rest of that
answer (a prefill exactly; after an instruction, restating the last word, which the seam
removes). Stalls run on a :class:`FakeClock` moved to the idle limit once the stream is
known to be silent, so no real timeout races the machine.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from resilient_llm import (
    Capabilities,
    ChatChunk,
    FakeClock,
    ResilientLLM,
    StreamInterrupted,
    StreamTimeouts,
)
from resilient_llm.events import AttemptStarted, Failover, StreamResumed
from resilient_llm.testing.chaos import Fault

from .conftest import ANSWER, BREAKER, KINDS, RETRY, STREAMS, Bench, cutting

FAULTS = ("truncate", "reset_mid_stream", "stream_error", "stall")
PAIRS = [(a, b) for a, b in itertools.product(KINDS, KINDS) if a != b]
IDLE = StreamTimeouts(idle=0.4)
# The form each family's chaos-model route is asked to continue in.
FORM = {"openai": "instruction", "anthropic": "prefill", "gemini": "prefill"}


def _engine(
    bench: Bench, *providers: Any, clock: FakeClock | None = None, **options: Any
) -> ResilientLLM:
    llm = ResilientLLM(
        list(providers),
        retry=RETRY,
        breaker=BREAKER,
        timeout=30.0,
        clock=clock,
        stream_timeouts=IDLE,
        on_event=bench.events.append,
        hedge=False,
        stream_recovery=options.pop("stream_recovery", "continue"),
        **options,
    )
    bench.engines.append(llm)
    return llm


def _broken(
    bench: Bench, llm: ResilientLLM, mode: str, fault: str, clock: FakeClock
) -> list[ChatChunk]:
    chunks: list[ChatChunk] = []
    if fault == "stall":
        with cutting(clock, lambda: 1 if chunks else 0):
            bench.run(llm, mode, chunks)
    else:
        bench.run(llm, mode, chunks)
    return chunks


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("kind", "other"), PAIRS)
def test_a_broken_stream_is_continued_on_another_family(
    bench: Bench, kind: str, other: str, fault: str, mode: str
) -> None:
    clock = FakeClock()
    primary = bench.route(kind, "primary")
    fallback = bench.route(other, "fallback")
    bench.script(primary, Fault("stall", delay=60) if fault == "stall" else fault)
    llm = _engine(bench, primary, fallback, clock=clock)

    chunks = _broken(bench, llm, mode, fault, clock)

    text = "".join(c.delta for c in chunks)
    assert text == ANSWER
    providers = [c.provider for c in chunks if c.delta]
    assert providers[0] == primary.name
    assert providers[-1] == fallback.name
    seam = next(c for c in chunks if "resumed" in c.metadata)
    (record,) = seam.metadata["resumed"]
    assert record["from"] == primary.name
    assert record["to"] == fallback.name
    assert record["form"] == FORM[other]
    assert 0 < record["at"] < len(ANSWER)
    assert text[: record["at"]] == "".join(c.delta for c in chunks[: chunks.index(seam)])
    (event,) = bench.of(StreamResumed)
    assert (event.route, event.to_route, event.chars) == (primary.name, fallback.name, record["at"])
    assert bench.of(Failover) == [], "a continuation is not a failover of the call"
    assert chunks[-1].finish_reason is not None
    # The continuation was an attempt of its own, on the fallback.
    assert [e.route for e in bench.of(AttemptStarted)] == [primary.name, fallback.name]
    assert [name for name, _, _ in bench.calls(2)] == [primary.name, fallback.name]


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_recovery_is_off_by_default_and_per_call(bench: Bench, kind: str, mode: str) -> None:
    primary = bench.route(kind, "primary")
    fallback = bench.route(KINDS[(KINDS.index(kind) + 1) % 3], "fallback")
    llm = _engine(bench, primary, fallback, stream_recovery=None)
    bench.script(primary, "truncate", "truncate")

    with pytest.raises(StreamInterrupted):
        bench.run(llm, mode)
    assert bench.of(StreamResumed) == []

    chunks: list[ChatChunk] = []
    if mode == "stream":
        chunks = list(llm.stream("What is the capital of France?", stream_recovery="continue"))
    else:

        async def drain() -> None:
            async for chunk in llm.astream(
                "What is the capital of France?", stream_recovery="continue"
            ):
                chunks.append(chunk)

        bench.runner.run(drain())
    assert "".join(c.delta for c in chunks) == ANSWER
    assert len(bench.of(StreamResumed)) == 1


@pytest.mark.parametrize("mode", STREAMS)
def test_the_same_route_continues_when_it_is_the_only_one(bench: Bench, mode: str) -> None:
    only = bench.route("anthropic", "only")
    bench.script(only, "stream_error")
    llm = _engine(bench, only)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert [name for name, _, _ in bench.calls(2)] == [only.name, only.name]


@pytest.mark.parametrize("mode", STREAMS)
def test_claude_4_6_is_asked_in_words_not_with_a_prefill(bench: Bench, mode: str) -> None:
    primary = bench.route("gemini", "primary")
    # The chaos server answers a prefill to this model with the real API's 400.
    opus = dataclasses.replace(bench.route("anthropic", "opus"), model="claude-opus-4-6")
    bench.script(primary, "truncate")
    llm = _engine(bench, primary, opus)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    (event,) = bench.of(StreamResumed)
    assert event.form == "instruction"


@pytest.mark.parametrize("mode", STREAMS)
def test_an_openai_compatible_server_that_continues_a_final_message_gets_a_prefill(
    bench: Bench, mode: str
) -> None:
    primary = bench.route("anthropic", "primary")
    compatible = bench.route("openai", "compatible", capabilities=Capabilities(prefill=True))
    bench.script(primary, "reset_mid_stream")
    llm = _engine(bench, primary, compatible)

    assert bench.run(llm, mode).text == ANSWER
    (event,) = bench.of(StreamResumed)
    assert event.form == "prefill"


@pytest.mark.parametrize("mode", STREAMS)
def test_a_continuation_past_the_deadline_is_an_interruption(bench: Bench, mode: str) -> None:
    clock = FakeClock()
    primary = bench.route("openai", "primary")
    fallback = bench.route("gemini", "fallback")
    # The stall lasts past the call's deadline: its idle limit is the deadline's end.
    bench.script(primary, Fault("stall", delay=60))
    llm = ResilientLLM(
        [primary, fallback],
        retry=RETRY,
        breaker=BREAKER,
        timeout=5.0,
        clock=clock,
        stream_timeouts=StreamTimeouts(idle=5.0),
        on_event=bench.events.append,
        hedge=False,
        stream_recovery="continue",
    )
    bench.engines.append(llm)
    chunks: list[ChatChunk] = []

    with cutting(clock, lambda: 1 if chunks else 0), pytest.raises(StreamInterrupted) as info:
        bench.run(llm, mode, chunks)

    delivered = "".join(c.delta for c in chunks)
    assert delivered
    assert ANSWER.startswith(delivered)
    assert delivered != ANSWER
    assert info.value.partial_text == delivered
    assert "could not be continued" in info.value.message
    assert bench.of(StreamResumed) == []
    assert [name for name, _, _ in bench.calls(1)] == [primary.name], "no attempt past it"


@pytest.mark.parametrize("mode", STREAMS)
def test_structured_output_and_tool_streams_are_never_continued(bench: Bench, mode: str) -> None:
    primary = bench.route("openai", "primary")
    fallback = bench.route("anthropic", "fallback")
    bench.script(primary, "truncate")
    llm = _engine(bench, primary, fallback)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}

    async def drain() -> None:
        async for _ in llm.astream("Name 'Paris'", response_schema=schema):
            pass

    def run() -> None:
        if mode == "stream":
            list(llm.stream("Name 'Paris'", response_schema=schema))
        else:
            bench.runner.run(drain())

    with pytest.raises(StreamInterrupted):
        run()
    assert bench.of(StreamResumed) == []


@pytest.mark.parametrize("mode", STREAMS)
def test_a_continuation_that_hangs_to_the_deadline_is_an_interruption(
    bench: Bench, mode: str
) -> None:
    clock = FakeClock()
    primary = bench.route("gemini", "primary")
    fallback = bench.route("anthropic", "fallback")
    bench.script(primary, "truncate")
    bench.script(fallback, Fault("hang", delay=60))
    llm = _engine(bench, primary, fallback, clock=clock)
    chunks: list[ChatChunk] = []

    # The continuation's attempt is cut at the call's deadline once it hangs at the server.
    with (
        cutting(clock, bench.arrivals(fallback, "hang")) as cuts,
        pytest.raises(StreamInterrupted) as info,
    ):
        bench.run(llm, mode, chunks)

    assert cuts == [pytest.approx(30.0)]
    delivered = "".join(c.delta for c in chunks)
    assert delivered
    assert info.value.partial_text == delivered
    assert "could not be continued" in info.value.message
    assert bench.of(StreamResumed) == []
    assert [name for name, _, _ in bench.calls(2)] == [primary.name, fallback.name]


ADD = {
    "name": "add",
    "description": "Add two numbers.",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_tool_call_stream_is_retried_whole_not_continued(
    bench: Bench, kind: str, mode: str
) -> None:
    primary = bench.route(kind, "primary")
    bench.script(primary, "truncate")
    llm = _engine(bench, primary, bench.route(KINDS[(KINDS.index(kind) + 1) % 3], "fallback"))
    chunks: list[ChatChunk] = []

    async def drain() -> None:
        async for chunk in llm.astream("Add 2 and 3", tools=[ADD]):
            chunks.append(chunk)

    if mode == "stream":
        chunks = list(llm.stream("Add 2 and 3", tools=[ADD]))
    else:
        bench.runner.run(drain())

    calls = [call for chunk in chunks for call in chunk.tool_calls]
    assert [(c.name, dict(c.arguments)) for c in calls] == [("add", {"a": 2, "b": 3})]
    assert bench.of(StreamResumed) == []
    # The call never reached the caller before the break: the whole stream is asked again.
    assert [name for name, _, _ in bench.calls(2)] == [primary.name, primary.name]
