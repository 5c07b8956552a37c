"""Stream recovery through LlamaIndex: ``stream_chat`` and ``astream_chat`` give the
unbroken answer when the primary's stream breaks mid-answer and the fallback (another
family) continues it; the response at the seam says so."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.llms import ChatMessage, ChatResponse

from .conftest import Routes

QUESTION = [ChatMessage(role="user", content="What is the capital of France?")]
PARIS = "The capital of France is Paris."


@pytest.mark.parametrize("fault", ["truncate", "reset_mid_stream", "stream_error"])
@pytest.mark.parametrize("mode", ["stream_chat", "astream_chat"])
def test_a_broken_stream_is_continued(routes: Routes, mode: str, fault: str) -> None:
    routes.server.script(routes.primary, fault)
    llm = routes.llm(stream_recovery="continue", hedge=False)

    async def drain() -> list[ChatResponse]:
        return [r async for r in await llm.astream_chat(QUESTION)]

    responses = list(llm.stream_chat(QUESTION)) if mode == "stream_chat" else asyncio.run(drain())

    assert "".join(r.delta or "" for r in responses) == PARIS
    assert responses[-1].message.content == PARIS
    seams = [
        r.additional_kwargs["stream_resumed"]
        for r in responses
        if "stream_resumed" in r.additional_kwargs
    ]
    assert [(s["from"], s["to"]) for s in seams] == [(routes.primary, routes.fallback)]
    raw = responses[-1].raw
    assert raw is not None
    assert raw["resumed"][0]["to"] == routes.fallback
    assert [p for p, _ in routes.calls()] == [routes.primary, routes.fallback]


def test_recovery_per_stream(routes: Routes) -> None:
    routes.server.script(routes.primary, "truncate")
    llm = routes.llm(hedge=False)

    responses = list(llm.stream_chat(QUESTION, stream_recovery="continue"))

    assert responses[-1].message.content == PARIS
