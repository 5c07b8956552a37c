"""Tool calls whose arguments do not parse reach LangChain as ``invalid_tool_calls``.

The model (a crafted loopback server speaking OpenAI's protocol, through the real SDK)
answers with a call whose arguments are not JSON. LangChain's convention, which agents
and ``ToolNode`` rely on: such a call is not in ``tool_calls`` (nothing would run it with
made-up arguments) but in ``invalid_tool_calls``, with the raw text in ``args`` and an
``error``. Sent back in the history, the call keeps its text: an OpenAI-protocol route
receives it verbatim, and a route whose protocol takes only an object is skipped.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

from langchain_resilient import ChatResilientLLM
from resilient_llm import BadRequest, Provider, ResilientLLM, RetryPolicy
from resilient_llm.events import RouteSkipped

from ..providers.crafted import CraftedServer
from ..providers.hostile import ok_answer, openai_tool_arguments

BROKEN = "{'city': 'Paris'}"  # Python's repr, not JSON
_PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def crafted() -> Iterator[CraftedServer]:
    with CraftedServer() as server:
        yield server


def _route(crafted: CraftedServer, kind: str, answer: object) -> Provider:
    prefix = f"{kind}-lc{next(_PREFIXES)}"
    crafted.answer(prefix, answer)  # type: ignore[arg-type]
    return Provider(
        kind,  # type: ignore[arg-type]
        "model-x",
        name=prefix,
        api_key="k",
        base_url=crafted.base_url(prefix, kind),
    )


def _model(*providers: Provider, events: list[object] | None = None) -> ChatResilientLLM:
    engine = ResilientLLM(
        list(providers),
        retry=RetryPolicy(max_retries=0),
        timeout=10,
        on_event=(events.append if events is not None else ()),
    )
    return ChatResilientLLM(engine=engine).bind_tools([_weather])  # type: ignore[return-value]


def _weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


def _check(message: AIMessage) -> None:
    assert message.tool_calls == []
    (invalid,) = message.invalid_tool_calls
    assert (invalid["name"], invalid["args"], invalid["id"]) == ("f", BROKEN, "t1")
    assert "not valid JSON" in (invalid["error"] or "")


def test_invoke_lists_a_call_with_broken_arguments_as_invalid(crafted: CraftedServer) -> None:
    model = _model(_route(crafted, "openai", openai_tool_arguments(BROKEN)))
    reply = model.invoke("weather in Paris?")
    assert isinstance(reply, AIMessage)
    _check(reply)


def test_ainvoke_lists_a_call_with_broken_arguments_as_invalid(crafted: CraftedServer) -> None:
    model = _model(_route(crafted, "openai", openai_tool_arguments(BROKEN)))
    reply = asyncio.run(model.ainvoke("weather in Paris?"))
    assert isinstance(reply, AIMessage)
    _check(reply)


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_a_stream_carries_the_invalid_call_in_its_chunk(crafted: CraftedServer, mode: str) -> None:
    model = _model(_route(crafted, "openai", openai_tool_arguments(BROKEN)))
    if mode == "stream":
        chunks = list(model.stream("weather in Paris?"))
    else:

        async def drain() -> list[AIMessageChunk]:
            return [c async for c in model.astream("weather in Paris?")]  # type: ignore[misc]

        chunks = asyncio.run(drain())
    (with_call,) = [c for c in chunks if c.tool_call_chunks]
    assert isinstance(with_call, AIMessageChunk)
    _check(with_call)
    assert with_call.tool_call_chunks[0]["args"] == BROKEN
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls == []  # LangChain's own re-parse of the added chunks agrees
    assert [c["args"] for c in total.invalid_tool_calls] == [BROKEN]


def _history() -> list[object]:
    call = {"name": "f", "args": BROKEN, "id": "t1", "error": "bad", "type": "invalid_tool_call"}
    return [
        HumanMessage("weather in Paris?"),
        AIMessage("", invalid_tool_calls=[call]),
        ToolMessage("the arguments were not JSON", tool_call_id="t1"),
        HumanMessage("try again"),
    ]


def test_the_history_sends_the_invalid_call_back_verbatim_over_openai(
    crafted: CraftedServer,
) -> None:
    route = _route(crafted, "openai", ok_answer("openai"))
    assert _model(route).invoke(_history()).content == "Hi"  # type: ignore[arg-type]
    (body,) = crafted.bodies(route.name)
    (sent,) = body["messages"][1]["tool_calls"]
    assert sent == {"id": "t1", "type": "function", "function": {"name": "f", "arguments": BROKEN}}


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_a_route_that_takes_only_objects_is_skipped_for_it(
    crafted: CraftedServer, kind: str
) -> None:
    events: list[object] = []
    strict = _route(crafted, kind, ok_answer(kind))
    openai = _route(crafted, "openai", ok_answer("openai"))
    reply = _model(strict, openai, events=events).invoke(_history())  # type: ignore[arg-type]
    assert reply.response_metadata["provider"] == openai.name
    assert crafted.hits(strict.name) == 0
    (skipped,) = [e for e in events if isinstance(e, RouteSkipped)]
    assert skipped.route == strict.name
    assert "'f'" in skipped.reason
    assert "not a JSON object" in skipped.reason


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_with_no_route_that_can_carry_it_the_call_is_refused_by_name(
    crafted: CraftedServer, kind: str
) -> None:
    strict = _route(crafted, kind, ok_answer(kind))
    with pytest.raises(BadRequest, match="tool call 'f'"):
        _model(strict).invoke(_history())  # type: ignore[arg-type]
    assert crafted.hits(strict.name) == 0
