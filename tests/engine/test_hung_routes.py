"""A hung provider never costs the whole deadline: with default settings, an attempt that
shows no sign of life (no reply, no first chunk) for half the time left gets the next
route started beside it, and the healthy route answers before the deadline.

Every hung kind the chaos server has, for each family and each of the four calls. Real
time runs here (the SDKs' reads wait in real seconds), so the deadline is generous for
the healthy route; nothing is asserted on durations: which route answered, how many
hedges, and what each route was asked. The hung attempt is cancelled: its connection is
let go of (the server logs the request, which it does once the client has left, long
before the fault would end) and its route counts no failure and holds nothing.
"""

from __future__ import annotations

import threading

import pytest

from resilient_llm import Capabilities, DeadlineExceeded, Provider, ResilientLLM
from resilient_llm.events import Hedged
from resilient_llm.testing.chaos import Fault

from .conftest import ANSWER, FALLBACK, KINDS, MODES, QUESTION, STREAMS, Bench, eventually

DEADLINE = 3.0
HUNG = {
    "hang": Fault("hang", delay=60),
    "hang_after_headers": Fault("hang_after_headers", delay=60),
    "slow_first_token": Fault("slow_first_token", delay=60),
    "blackhole": Fault("blackhole", delay=60),
    # Keeps sending: a byte every half second, so no per-read timeout ever fires.
    "trickle": Fault("trickle", delay=0.5),
}
# What the server logs for the abandoned request: no status before the headers.
STATUS = {"hang": 0, "blackhole": 0}


def _engine(bench: Bench, *providers: Provider, timeout: float = DEADLINE) -> ResilientLLM:
    """An engine with the default settings but for its deadline."""
    llm = ResilientLLM(list(providers), timeout=timeout, on_event=bench.events.append)
    bench.engines.append(llm)
    return llm


def _hedge_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "resilient-llm-hedge")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", list(HUNG))
def test_a_hung_primary_is_answered_by_the_next_route(
    bench: Bench, fault: str, kind: str, mode: str
) -> None:
    primary = bench.route(kind, "hung", max_concurrency=1)
    fallback = bench.route(FALLBACK[kind], "healthy")
    bench.script(primary, HUNG[fault])
    llm = _engine(bench, primary, fallback)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.providers == {fallback.name}, "no text of the hung route reached the caller"
    [hedged] = bench.of(Hedged)
    assert hedged.route == primary.name
    assert ("first chunk" if mode in STREAMS else "first chunk of the reply") in hedged.reason
    # One request each; the hung one ended by the client leaving (logged long before the
    # fault would have let it end).
    status = STATUS.get(fault, 200)
    assert sorted(bench.calls(2)) == sorted(
        [(primary.name, status, fault), (fallback.name, 200, "ok")]
    )
    snapshot = llm.snapshot()[primary.name]
    assert (snapshot.breaker.failures, snapshot.breaker.calls) == (0, 0), "cancelled: no verdict"
    assert snapshot.bulkhead is not None
    assert eventually(lambda: llm.snapshot()[primary.name].bulkhead.in_flight == 0)  # type: ignore[union-attr]
    assert eventually(lambda: _hedge_threads() == 0), "the losing sync run's thread ended"


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_but_live_stream_completes_on_its_route(bench: Bench, kind: str, mode: str) -> None:
    primary = bench.route(kind, "slow")
    fallback = bench.route(FALLBACK[kind], "spare")
    # A frame every 0.8 s: the first chunk within about 3 s, the whole stream after 4 to
    # 7 s, past the half of the deadline at which a quiet attempt would be raced.
    bench.script(primary, Fault("steady", delay=0.8))
    llm = _engine(bench, primary, fallback, timeout=10.0)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.providers == {primary.name}
    assert bench.of(Hedged) == []
    assert bench.calls(1) == [(primary.name, 200, "steady")], "the spare was never asked"


@pytest.mark.parametrize("mode", MODES)
def test_hedging_off_leaves_the_hung_route_the_whole_deadline(bench: Bench, mode: str) -> None:
    primary = bench.route("openai", "hung")
    fallback = bench.route("anthropic", "healthy")
    bench.script(primary, Fault("blackhole", delay=60))
    llm = ResilientLLM([primary, fallback], timeout=1.0, hedge=False)
    bench.engines.append(llm)
    with pytest.raises(DeadlineExceeded):
        bench.run(llm, mode)
    assert [name for name, _, _ in bench.calls(1)] == [primary.name]


@pytest.mark.parametrize("mode", ["chat", "astream"])
def test_a_model_that_thinks_first_is_given_longer(bench: Bench, mode: str) -> None:
    primary = bench.route("anthropic", "thinker", capabilities=Capabilities(reasoning=True))
    fallback = bench.route("gemini", "healthy")
    bench.script(primary, Fault("blackhole", delay=60))
    llm = _engine(bench, primary, fallback)

    assert bench.run(llm, mode).providers == {fallback.name}
    [hedged] = bench.of(Hedged)
    assert "80% of the" in hedged.reason, hedged.reason


def test_the_plugins_get_the_same_hedge(bench: Bench) -> None:
    from llama_index.core.llms import ChatMessage

    from langchain_resilient import ChatResilientLLM
    from llamaindex_resilient import ResilientLLM as LlamaResilientLLM

    primary = bench.route("openai", "hung")
    fallback = bench.route("gemini", "healthy")
    bench.script(primary, Fault("blackhole", delay=60), Fault("trickle", delay=0.5))
    chat = ChatResilientLLM(providers=[primary, fallback], timeout=DEADLINE)
    bench.engines.append(chat.resilient_engine)
    message = chat.invoke(QUESTION)
    assert message.content == ANSWER
    assert message.response_metadata["provider"] == fallback.name
    llama = LlamaResilientLLM(providers=[primary, fallback], timeout=DEADLINE)
    bench.engines.append(llama.engine)
    response = llama.chat([ChatMessage(role="user", content=QUESTION)])
    assert response.message.content == ANSWER
    assert response.raw["provider"] == fallback.name  # type: ignore[index]
