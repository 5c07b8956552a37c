"""Replies of the wrong shape, through the real SDKs, are typed failed attempts.

A loopback server (``crafted.py``) answers each request with a body no provider should
send: HTML, ``null``, a list, a string, an object that is no message, fields of the wrong
type, a tool call without a name, usage as strings or negative. Each must surface from the
adapter as ``ProviderUnavailable`` (retryable: the engine retries and fails over) naming
the route and never the key, in all four modes. Tool arguments that do not parse are not a
malformed reply: the call is kept, marked invalid, with the text the model wrote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from resilient_llm.errors import ProviderUnavailable, ResilientLLMError
from resilient_llm.messages import ChatChunk, ChatRequest, ChatResponse, Message, Tool
from resilient_llm.providers import ChatAdapter, create_adapter
from resilient_llm.providers.base import Provider

from .crafted import Answer, CraftedServer, sse
from .hostile import BODIES, EVENTS, anthropic_tool_input, ok_answer, openai_tool_arguments

KEY = "sk-hostile-canary-4242"
QUESTION = ChatRequest((Message("user", "What is the capital of France?"),))
TOOLS = ChatRequest((Message("user", "Call f."),), tools=(Tool("f"),))


@pytest.fixture(scope="module")
def crafted() -> Iterator[CraftedServer]:
    with CraftedServer() as server:
        yield server


_COUNTER = iter(range(1_000_000))


def _adapter(server: CraftedServer, kind: str, answer: Answer) -> tuple[ChatAdapter, str]:
    prefix = f"{kind}-h{next(_COUNTER)}"
    server.answer(prefix, answer)
    name = f"route-{prefix}"
    provider = Provider(
        kind,  # type: ignore[arg-type]
        "model-x",
        name=name,
        api_key=KEY,
        base_url=server.base_url(prefix, kind),
    )
    return create_adapter(provider), name


def run(adapter: ChatAdapter, mode: str, request: ChatRequest = QUESTION) -> Any:
    """One call: the reply (chat modes) or the list of chunks (streams)."""
    if mode == "chat":
        return adapter.chat(request, 5)
    if mode == "achat":
        return asyncio.run(adapter.achat(request, 5))
    if mode == "stream":
        return list(adapter.stream(request, 5))
    if mode == "astream":

        async def drain() -> list[ChatChunk]:
            return [chunk async for chunk in adapter.astream(request, 5)]

        return asyncio.run(drain())
    raise ValueError(mode)


def _failure(adapter: ChatAdapter, mode: str, name: str) -> ResilientLLMError:
    try:
        with pytest.raises(ResilientLLMError) as info:
            run(adapter, mode)
    finally:
        adapter.close()
    error = info.value
    assert type(error) is ProviderUnavailable, repr(error)
    assert error.retryable
    assert error.provider == name
    assert name in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error)
    return error


_BODY_CASES = [(kind, name) for kind, cases in BODIES.items() for name in cases]
_EVENT_CASES = [(kind, name) for kind, cases in EVENTS.items() for name in cases]


@pytest.mark.parametrize("mode", ["chat", "achat"])
@pytest.mark.parametrize(("kind", "case"), _BODY_CASES)
def test_a_hostile_body_is_provider_unavailable(
    crafted: CraftedServer, kind: str, case: str, mode: str
) -> None:
    adapter, name = _adapter(crafted, kind, BODIES[kind][case])
    _failure(adapter, mode, name)


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize(("kind", "case"), _EVENT_CASES)
def test_a_hostile_stream_event_is_provider_unavailable(
    crafted: CraftedServer, kind: str, case: str, mode: str
) -> None:
    adapter, name = _adapter(crafted, kind, EVENTS[kind][case])
    _failure(adapter, mode, name)


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("case", ["null", "not_a_message", "html"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_a_hostile_body_as_the_only_stream_event_is_provider_unavailable(
    crafted: CraftedServer, kind: str, case: str, mode: str
) -> None:
    body = BODIES[kind][case].body.decode()
    adapter, name = _adapter(crafted, kind, Answer(events=sse(body)))
    _failure(adapter, mode, name)


@pytest.mark.parametrize("mode", ["chat", "achat", "stream", "astream"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_the_well_formed_reply_the_cases_vary_is_accepted(
    crafted: CraftedServer, kind: str, mode: str
) -> None:
    # The hostile cases are one change away from these: were these refused too, the
    # tests above would pass for the wrong reason.
    adapter, name = _adapter(crafted, kind, ok_answer(kind))
    try:
        out = run(adapter, mode)
    finally:
        adapter.close()
    if isinstance(out, ChatResponse):
        assert (out.content, out.provider, out.finish_reason) == ("Hi", name, "stop")
        assert out.usage is not None
        assert out.usage.input_tokens == 3
    else:
        assert "".join(c.delta for c in out).startswith("Hi")
        assert out[-1].finish_reason == "stop"
        assert out[-1].usage is not None
        assert out[-1].usage.input_tokens == 3


# -- tool arguments that do not parse: an answer with an invalid call ------------------


def _calls(out: Any) -> tuple[Any, ...]:
    if isinstance(out, ChatResponse):
        return out.tool_calls
    return tuple(call for chunk in out for call in chunk.tool_calls)


MODES = ["chat", "achat", "stream", "astream"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("arguments", "error"),
    [('{"city": "Par', "not valid JSON"), ("[1, 2]", "a list, not a JSON object")],
)
def test_openai_arguments_that_are_no_object_make_an_invalid_call(
    crafted: CraftedServer, mode: str, arguments: str, error: str
) -> None:
    adapter, _ = _adapter(crafted, "openai", openai_tool_arguments(arguments))
    try:
        out = run(adapter, mode, TOOLS)
    finally:
        adapter.close()
    (call,) = _calls(out)
    assert (call.id, call.name, dict(call.arguments)) == ("t1", "f", {})
    assert call.invalid
    assert call.raw_arguments == arguments
    assert error in (call.error or "")


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_input_that_is_no_object_makes_an_invalid_call(
    crafted: CraftedServer, mode: str
) -> None:
    adapter, _ = _adapter(crafted, "anthropic", anthropic_tool_input("x", '"x"'))
    try:
        out = run(adapter, mode, TOOLS)
    finally:
        adapter.close()
    (call,) = _calls(out)
    assert (call.name, call.raw_arguments, dict(call.arguments)) == ("f", '"x"', {})
    assert "a string, not a JSON object" in (call.error or "")


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_anthropic_streamed_input_that_does_not_parse_makes_an_invalid_call(
    crafted: CraftedServer, mode: str
) -> None:
    adapter, _ = _adapter(crafted, "anthropic", anthropic_tool_input({}, '{"city": '))
    try:
        out = run(adapter, mode, TOOLS)
    finally:
        adapter.close()
    (call,) = _calls(out)
    assert call.raw_arguments == '{"city": '
    assert "not valid JSON" in (call.error or "")


# -- Gemini: no candidates is a failure, unless the prompt was blocked -----------------

_BLOCKED = {
    "promptFeedback": {"blockReason": "SAFETY"},
    "usageMetadata": {"promptTokenCount": 3},
    "modelVersion": "gemini-x",
}


@pytest.mark.parametrize("mode", MODES)
def test_a_gemini_blocked_prompt_is_an_empty_refusal(crafted: CraftedServer, mode: str) -> None:
    answer = Answer(body=json.dumps(_BLOCKED).encode(), events=sse(_BLOCKED))
    adapter, name = _adapter(crafted, "gemini", answer)
    try:
        out = run(adapter, mode)
    finally:
        adapter.close()
    if isinstance(out, ChatResponse):
        assert (out.content, out.provider, out.finish_reason) == ("", name, "refusal")
        assert out.refusal == "blocked: SAFETY"
        assert out.metadata["block_reason"] == "SAFETY"
    else:
        assert "".join(c.delta for c in out) == ""
        assert out[-1].finish_reason == "refusal"
        assert out[-1].refusal == "blocked: SAFETY"
        assert out[-1].metadata["block_reason"] == "SAFETY"


@pytest.mark.parametrize("mode", MODES)
def test_gemini_without_candidates_or_a_block_reason_is_provider_unavailable(
    crafted: CraftedServer, mode: str
) -> None:
    empty = {"usageMetadata": {"promptTokenCount": 3}, "modelVersion": "gemini-x"}
    answer = Answer(body=json.dumps(empty).encode(), events=sse(empty))
    adapter, name = _adapter(crafted, "gemini", answer)
    _failure(adapter, mode, name)
