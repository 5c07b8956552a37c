"""Stream recovery through LangChain: ``stream`` and ``astream`` of ``ChatResilientLLM``
give the unbroken answer when a stream breaks mid-answer and another family continues it,
and the chunks' response metadata show the seam.

Every mid-stream break (truncation, a reset, an in-band error, a stall cut by the idle
limit) on each family, continued on each other family. Stalls run on a ``FakeClock``
moved to the idle limit once the stream is known to be silent (``cutting``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_resilient import ChatResilientLLM
from resilient_llm import FakeClock, Provider, RetryPolicy, StreamTimeouts
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

from ..timing import cutting

KINDS = ("openai", "anthropic", "gemini")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
PAIRS = [(a, b) for a, b in itertools.product(KINDS, KINDS) if a != b]
FAULTS = ("truncate", "reset_mid_stream", "stream_error", "stall")
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
_TAGS = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _route(server: ChaosServer, kind: str, role: str, tag: int) -> Provider:
    name = f"{kind}-lcr{tag}-{role}"
    server.set_plan(name, Plan())
    return Provider(
        cast("Any", kind),
        MODELS[kind],
        name=name,
        base_url=server.base_url(name),
        api_key="chaos",
    )


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("kind", "other"), PAIRS)
def test_langchain_streams_continue_on_another_family(
    server: ChaosServer, kind: str, other: str, fault: str, mode: str
) -> None:
    tag = next(_TAGS)
    primary = _route(server, kind, "primary", tag)
    fallback = _route(server, other, "fallback", tag)
    server.script(primary.name, Fault("stall", delay=60) if fault == "stall" else fault)
    clock = FakeClock()
    model = ChatResilientLLM(
        providers=[primary, fallback],
        retry=RetryPolicy(max_retries=1, base=0.01, cap=0.05),
        timeout=30.0,
        clock=clock,
        hedge=False,
        stream_timeouts=StreamTimeouts(idle=0.4),
        stream_recovery="continue",
    )
    chunks: list[AIMessageChunk] = []

    async def drain() -> None:
        async for chunk in model.astream(QUESTION):
            chunks.append(chunk)

    # Fake time moves only for a stall: to its idle limit, once the stream is silent.
    with cutting(clock, lambda: 1 if chunks and fault == "stall" else 0):
        if mode == "stream":
            for chunk in model.stream(QUESTION):
                chunks.append(chunk)
        else:
            asyncio.run(drain())

    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.content == ANSWER
    seams = [
        c.response_metadata["stream_resumed"]
        for c in chunks
        if "stream_resumed" in c.response_metadata
    ]
    assert len(seams) == 1
    assert seams[0]["from"] == primary.name
    assert seams[0]["to"] == fallback.name
    assert ANSWER[: seams[0]["at"]] + ANSWER[seams[0]["at"] :] == whole.content
    assert whole.response_metadata["resumed"][0]["to"] == fallback.name
    model._engine.close()


def test_a_langchain_stream_takes_recovery_per_call(server: ChaosServer) -> None:
    tag = next(_TAGS)
    primary = _route(server, "gemini", "primary", tag)
    fallback = _route(server, "anthropic", "fallback", tag)
    server.script(primary.name, "truncate")
    model = ChatResilientLLM(providers=[primary, fallback], hedge=False)

    text = "".join(str(c.content) for c in model.stream(QUESTION, stream_recovery="continue"))

    assert text == ANSWER
    model._engine.close()


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_the_setting_survives_serialization_and_pickling(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    from langchain_core.load import dumpd, load

    from resilient_llm import StreamRecovery

    monkeypatch.setenv("OPENAI_API_KEY", "chaos")
    setting = StreamRecovery(instruction={"fr": "Continue."}, max_resumes=1)
    model = ChatResilientLLM(models=["openai:gpt-4o-mini"], stream_recovery=setting)
    data = dumpd(model)
    assert data["kwargs"]["stream_recovery"] == {
        "instruction": {"fr": "Continue."},
        "max_resumes": 1,
    }
    loaded = load(
        data, valid_namespaces=["langchain_resilient"], allowed_objects=[ChatResilientLLM]
    )
    assert loaded.resilient_engine.stream_recovery == setting
    assert pickle.loads(pickle.dumps(model)).resilient_engine.stream_recovery == setting
