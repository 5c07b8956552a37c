"""Refusals are answers, and visible: ``refusal`` text and ``finish_reason="refusal"``.

OpenAI sends ``content: null`` with the text in ``message.refusal`` (``delta.refusal`` in
streams); Anthropic ends with ``stop_reason: "refusal"``; Gemini withholds the reply with
``finishReason: "SAFETY"`` (and kin) or blocks the prompt (``promptFeedback.blockReason``,
no candidates). By default the refusal is returned and no other route is asked; with
``on_refusal="failover"`` the next route is asked, and if every route refuses the last
refusal is the answer.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessageChunk
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from langchain_resilient import ChatResilientLLM
from llamaindex_resilient import ResilientLLM as LlamaResilientLLM
from resilient_llm import (
    ConfigurationError,
    FakeClock,
    ResilientLLM,
    ResponseCache,
    StreamTimeouts,
)
from resilient_llm.extras._stored import dump_response, load_response

from .conftest import FALLBACK, MODES, QUESTION, STREAMS, Bench, answer
from .server import Recording

OPENAI_TEXT = "I'm sorry, I cannot assist with that request."
# (family, case) -> (JSON recording, SSE recording, refusal, content of the JSON reply)
REFUSALS = {
    ("openai", "refusal"): ("openai/refusal", "openai/stream_refusal", OPENAI_TEXT, ""),
    ("anthropic", "refusal"): (
        "anthropic/refusal",
        "anthropic/stream_refusal",
        "refused",
        "I would be happy to assist you. You can ",
    ),
    ("gemini", "SAFETY"): ("gemini/finish_safety", "gemini/stream_safety", "blocked: SAFETY", ""),
    ("gemini", "blockReason"): (
        "gemini/prompt_blocked",
        "gemini/stream_prompt_blocked",
        "blocked: MODEL_ARMOR",
        "",
    ),
}
CASES = sorted(REFUSALS)


def refusal_of(key: tuple[str, str], mode: str) -> str:
    json_name, sse_name, _, _ = REFUSALS[key]
    return sse_name if mode in STREAMS else json_name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", CASES, ids=["-".join(k) for k in CASES])
def test_a_refusal_is_returned_and_not_failed_over(
    bench: Bench, key: tuple[str, str], mode: str
) -> None:
    kind = key[0]
    _, _, text, content = REFUSALS[key]
    refusing = bench.route(kind, "refuses")
    other = bench.route(FALLBACK[kind], "unasked")
    bench.serve(refusing, refusal_of(key, mode))
    llm = bench.engine(refusing, other)

    result = bench.run(llm, mode)
    assert result.refusal == text
    assert result.finish_reason == "refusal"
    assert result.provider == refusing.name
    if mode not in STREAMS:
        assert result.text == content
    assert bench.requests(other) == []
    # A refusal is the provider working: nothing is counted against the route.
    snapshot = llm.snapshot()[refusing.name]
    assert not snapshot.disabled
    assert snapshot.breaker.state.value == "closed"
    assert [a["outcome"] for a in result.metadata["attempts"]] == ["ok"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", CASES, ids=["-".join(k) for k in CASES])
def test_on_refusal_failover_asks_the_next_route(
    bench: Bench, key: tuple[str, str], mode: str
) -> None:
    kind = key[0]
    refusing = bench.route(kind, "refuses")
    good = bench.route(FALLBACK[kind], "healthy")
    bench.serve(refusing, refusal_of(key, mode))
    bench.serve(good, answer(good.kind, mode))
    llm = bench.engine(refusing, good, on_refusal="failover")

    result = bench.run(llm, mode)
    assert result.provider == good.name
    assert result.refusal is None
    assert result.finish_reason == "stop"
    (failover,) = result.metadata["failovers"]
    assert failover == {"from": refusing.name, "to": good.name, "reason": "refused"}
    assert [a["outcome"] for a in result.metadata["attempts"]] == ["Refused", "ok"]
    assert llm.snapshot()[refusing.name].breaker.state.value == "closed"


@pytest.mark.parametrize("mode", STREAMS)
def test_a_watched_stream_fails_over_on_refusal_too(bench: Bench, mode: str) -> None:
    """With stream timeouts a reader thread (sync) or a timer (async) watches the stream;
    a refusal read there still moves the call on."""
    refusing = bench.route("openai", "refuses")
    good = bench.route("anthropic", "healthy")
    bench.serve(refusing, "openai/stream_refusal")
    bench.serve(good, "anthropic/stream_text")
    llm = bench.engine(
        refusing,
        good,
        on_refusal="failover",
        stream_timeouts=StreamTimeouts(first_token=20.0, idle=20.0),
    )
    result = bench.run(llm, mode)
    assert (result.provider, result.text, result.refusal) == (good.name, "2", None)


@pytest.mark.parametrize("mode", MODES)
def test_when_every_route_refuses_the_last_refusal_is_the_answer(bench: Bench, mode: str) -> None:
    first = bench.route("openai", "refuses")
    last = bench.route("gemini", "refuses-too")
    bench.serve(first, refusal_of(("openai", "refusal"), mode))
    bench.serve(last, refusal_of(("gemini", "SAFETY"), mode))
    llm = bench.engine(first, last, on_refusal="failover")

    result = bench.run(llm, mode)
    assert result.provider == last.name
    assert result.refusal == "blocked: SAFETY"
    assert result.finish_reason == "refusal"
    assert [a["outcome"] for a in result.metadata["attempts"]] == ["Refused", "Refused"]
    assert result.metadata["provider"] == last.name


@pytest.mark.parametrize("mode", MODES)
def test_a_refusal_outranks_a_later_route_that_rejects_the_request(bench: Bench, mode: str) -> None:
    refusing = bench.route("anthropic", "refuses")
    rejecting = bench.route("gemini", "rejects")
    bad_request = Recording.load("gemini/400_api_key_invalid")
    body = bad_request.body.decode().replace("API_KEY_INVALID", "FIELD_INVALID")
    bench.serve(refusing, refusal_of(("anthropic", "refusal"), mode))
    bench.serve(rejecting, bad_request.with_body(body))
    llm = bench.engine(refusing, rejecting, on_refusal="failover")

    result = bench.run(llm, mode)
    assert (result.provider, result.refusal) == (refusing.name, "refused")
    assert [a["outcome"] for a in result.metadata["attempts"]] == ["Refused", "BadRequest"]


def test_on_refusal_is_checked(bench: Bench) -> None:
    route = bench.route("openai", "unused")
    with pytest.raises(ConfigurationError, match="on_refusal"):
        ResilientLLM([route], on_refusal="retry")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="on_refusal"):
        LlamaResilientLLM([route], on_refusal="always")
    with pytest.raises(ValueError, match="on_refusal"):
        ChatResilientLLM(providers=[route], on_refusal="always")  # type: ignore[arg-type]
    assert ResilientLLM([route]).on_refusal == "return"


def test_a_cached_refusal_keeps_it(bench: Bench) -> None:
    route = bench.route("openai", "refuses")
    bench.serve(route, "openai/refusal", "openai/stream_refusal")
    llm = bench.engine(route, cache=ResponseCache())
    first = llm.chat(QUESTION, temperature=0)
    again = llm.chat(QUESTION, temperature=0)
    assert again.metadata["cache"] == "hit"
    assert (again.refusal, again.finish_reason) == (OPENAI_TEXT, "refusal")
    assert load_response(dump_response(first)) == first
    # A streamed refusal is stored whole, and a hit replays it in one chunk.
    streamed = list(llm.stream(QUESTION, temperature=0, max_tokens=50))
    replayed = list(llm.stream(QUESTION, temperature=0, max_tokens=50))
    assert "".join(c.refusal or "" for c in streamed) == OPENAI_TEXT
    assert [(c.refusal, c.finish_reason) for c in replayed] == [(OPENAI_TEXT, "refusal")]
    assert len(bench.requests(route)) == 2


# -- LangChain and LlamaIndex ------------------------------------------------------------


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
@pytest.mark.parametrize("key", CASES, ids=["-".join(k) for k in CASES])
def test_langchain_puts_the_refusal_where_chat_openai_does(
    bench: Bench, key: tuple[str, str], how: str
) -> None:
    _, _, text, _ = REFUSALS[key]
    route = bench.route(key[0], "refuses")
    bench.serve(route, refusal_of(key, "stream" if "stream" in how else "chat"))
    model = ChatResilientLLM(engine=bench.engine(route))

    if how == "invoke":
        message = model.invoke(QUESTION)
    elif how == "ainvoke":
        message = bench.runner.run(model.ainvoke(QUESTION))
    else:
        if how == "stream":
            chunks = list(model.stream(QUESTION))
        else:

            async def drain() -> list[AIMessageChunk]:
                return [c async for c in model.astream(QUESTION)]

            chunks = bench.runner.run(drain())
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged = merged + chunk
        message = merged
    assert message.additional_kwargs["refusal"] == text
    assert message.response_metadata["finish_reason"] == "refusal"


def test_langchain_passes_on_refusal_to_the_engine(bench: Bench) -> None:
    refusing = bench.route("anthropic", "refuses")
    good = bench.route("gemini", "healthy")
    bench.serve(refusing, "anthropic/refusal")
    bench.serve(good, "gemini/generate_text")
    # Plain requests, as the recordings are (see conftest's Bench.engine).
    model = ChatResilientLLM(
        providers=[refusing, good], on_refusal="failover", clock=FakeClock(0.0), hedge=False
    )
    try:
        message = model.invoke(QUESTION)
    finally:
        model.resilient_engine.close()
    assert "refusal" not in message.additional_kwargs
    assert message.response_metadata["provider"] == good.name


@pytest.mark.parametrize("how", ["chat", "achat", "stream_chat", "astream_chat"])
@pytest.mark.parametrize("key", CASES, ids=["-".join(k) for k in CASES])
def test_llamaindex_puts_the_refusal_in_additional_kwargs(
    bench: Bench, key: tuple[str, str], how: str
) -> None:
    _, _, text, _ = REFUSALS[key]
    route = bench.route(key[0], "refuses")
    bench.serve(route, refusal_of(key, "stream" if "stream" in how else "chat"))
    llm = LlamaResilientLLM(engine=bench.engine(route))
    messages = [ChatMessage(role=MessageRole.USER, content=QUESTION)]

    if how == "chat":
        response = llm.chat(messages)
    elif how == "achat":
        response = bench.runner.run(llm.achat(messages))
    elif how == "stream_chat":
        *_, response = llm.stream_chat(messages)
    else:

        async def last() -> object:
            responses = [r async for r in await llm.astream_chat(messages)]
            return responses[-1]

        response = bench.runner.run(last())
    assert response.message.additional_kwargs["refusal"] == text  # type: ignore[attr-defined]
    assert response.raw["finish_reason"] == "refusal"  # type: ignore[attr-defined]


def test_llamaindex_passes_on_refusal_to_the_engine(bench: Bench) -> None:
    refusing = bench.route("openai", "refuses")
    good = bench.route("anthropic", "healthy")
    bench.serve(refusing, "openai/refusal")
    bench.serve(good, "anthropic/message_text")
    llm = LlamaResilientLLM(
        [refusing, good], on_refusal="failover", clock=FakeClock(0.0), hedge=False
    )
    try:
        response = asyncio.run(llm.achat([ChatMessage(role=MessageRole.USER, content="Hi")]))
    finally:
        llm.engine.close()
    assert "refusal" not in response.message.additional_kwargs
    assert response.raw["provider"] == good.name


def test_an_anthropic_refusal_explains_itself_when_it_says_why() -> None:
    """Newer models add ``stop_details`` to a refusal; its explanation is the reason."""
    import json

    import anthropic

    from resilient_llm.providers.anthropic.convert import response_from_message

    body = json.loads(Recording.load("anthropic/refusal").body)
    plain = anthropic.types.Message.model_validate(body)
    assert response_from_message(plain, "r", None).refusal == "refused"
    body["stop_details"] = {"type": "refusal", "category": "cyber"}
    detailed = anthropic.types.Message.model_validate(body)
    assert response_from_message(detailed, "r", None).refusal == "refused: cyber"
    body["stop_details"]["explanation"] = "This request was blocked."
    explained = anthropic.types.Message.model_validate(body)
    reply = response_from_message(explained, "r", None)
    assert (reply.refusal, reply.finish_reason) == ("This request was blocked.", "refusal")
