"""The three adapters against the chaos server, through the real SDKs (nothing mocked)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterable

from resilient_llm.messages import ChatChunk, ChatRequest, ChatResponse, Message, Tool, ToolCall
from resilient_llm.providers import ChatAdapter
from resilient_llm.testing.chaos import Plan

from .conftest import Route

PARIS = "The capital of France is Paris."
FRANCE = ChatRequest((Message("user", "What is the capital of France?"),))
WEATHER = Tool(
    "get_weather",
    "Current weather in a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
)
TIME = Tool(
    "get_time",
    "Local time in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ASK_WEATHER = Message("user", "Weather in 'Oslo' for 3 days?")


def collect(chunks: Iterable[ChatChunk]) -> tuple[str, list[ChatChunk]]:
    items = list(chunks)
    return "".join(c.delta for c in items), items


async def acollect(chunks: AsyncIterator[ChatChunk]) -> tuple[str, list[ChatChunk]]:
    items = [chunk async for chunk in chunks]
    return "".join(c.delta for c in items), items


def check_reply(reply: ChatResponse, route: Route) -> None:
    assert reply.content == PARIS
    assert reply.provider == f"route-{route.prefix}"
    assert reply.model == "chaos-model"
    assert reply.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.input_tokens > 0
    assert reply.usage.output_tokens > 0


def test_chat_sync_and_async_on_two_event_loops(route: Route) -> None:
    adapter = route.adapter()
    check_reply(adapter.chat(FRANCE, timeout=5), route)
    # Two loops one after the other: an async client bound to the first loop's pool would
    # fail on the second; per-loop clients do not.
    check_reply(asyncio.run(adapter.achat(FRANCE, timeout=5)), route)
    check_reply(asyncio.run(adapter.achat(FRANCE, timeout=5)), route)
    check_reply(adapter.chat(FRANCE, timeout=5), route)


def test_request_model_overrides_the_provider_model(route: Route) -> None:
    reply = route.adapter().chat(ChatRequest(FRANCE.messages, model="other-model"), timeout=5)
    assert reply.model == "other-model"
    assert route.server.log[-1].model == "other-model"


def test_multi_turn_with_system_prompt_reaches_the_provider(route: Route) -> None:
    messages = (
        Message("system", "You are terse." * 4),
        Message("user", "hello there"),
        Message("assistant", "Echo: hello there"),
        Message("user", "and again"),
    )
    reply = route.adapter().chat(ChatRequest(messages), timeout=5)
    assert reply.content == "Echo: and again"
    # The brain counts every turn's text, system prompt included: all of it arrived.
    chars = sum(len(m.content) for m in messages)
    assert reply.usage is not None
    assert reply.usage.input_tokens == math.ceil(chars / 4)


def test_tool_call_and_result_round_trip(route: Route) -> None:
    adapter = route.adapter()
    first = adapter.chat(ChatRequest((ASK_WEATHER,), tools=(WEATHER, TIME)), timeout=5)
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert call.name == "get_weather"
    assert dict(call.arguments) == {"city": "Oslo", "days": 3}
    assert call.id
    history = (
        ASK_WEATHER,
        Message("assistant", first.content, tool_calls=first.tool_calls),
        Message("tool", '{"forecast": "sunny"}', tool_call_id=call.id),
    )
    second = adapter.chat(ChatRequest(history, tools=(WEATHER, TIME)), timeout=5)
    assert second.content.startswith("The tool returned:")
    assert "sunny" in second.content
    assert second.tool_calls == ()


def test_parallel_tool_results_answer_together(route: Route) -> None:
    calls = (
        ToolCall("call_a", "get_weather", {"city": "Oslo", "days": 1}),
        ToolCall("call_b", "get_time", {"city": "Oslo"}),
    )
    history = (
        ASK_WEATHER,
        Message("assistant", "", tool_calls=calls),
        Message("tool", "sunny", tool_call_id="call_a"),
        Message("tool", "noon", tool_call_id="call_b"),
    )
    reply = route.adapter().chat(ChatRequest(history, tools=(WEATHER, TIME)), timeout=5)
    assert "sunny" in reply.content
    assert "noon" in reply.content


def test_tool_choice_forces_the_named_tool(route: Route) -> None:
    request = ChatRequest(
        (Message("user", "What time is it in 'Lima'?"),),
        tools=(WEATHER, TIME),
        tool_choice="get_time",
    )
    (call,) = route.adapter().chat(request, timeout=5).tool_calls
    assert (call.name, dict(call.arguments)) == ("get_time", {"city": "Lima"})


def test_tool_choice_none_answers_in_text(route: Route) -> None:
    request = ChatRequest(FRANCE.messages, tools=(WEATHER,), tool_choice="none")
    reply = route.adapter().chat(request, timeout=5)
    assert (reply.content, reply.tool_calls) == (PARIS, ())


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def test_structured_output(route: Route) -> None:
    request = ChatRequest((Message("user", "Make up 'Ada', aged 36"),), response_schema=SCHEMA)
    adapter = route.adapter()
    reply = adapter.chat(request, timeout=5)
    assert json.loads(reply.content) == {"name": "Ada", "age": 36}
    assert (reply.tool_calls, reply.finish_reason) == ((), "stop")
    streamed, chunks = collect(adapter.stream(request, timeout=5))
    assert json.loads(streamed) == {"name": "Ada", "age": 36}
    assert chunks[-1].tool_calls == ()


def test_json_mode(route: Route) -> None:
    request = ChatRequest((Message("user", "What is the capital of France?"),), json_mode=True)
    reply = route.adapter().chat(request, timeout=5)
    assert isinstance(json.loads(reply.content), dict)


def test_stream_sync_and_async_match_the_plain_reply(route: Route) -> None:
    adapter = route.adapter()
    plain = adapter.chat(FRANCE, timeout=5)
    text, chunks = collect(adapter.stream(FRANCE, timeout=5))
    assert text == plain.content == PARIS
    assert len(chunks) > 2
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].usage == plain.usage
    assert chunks[-1].finish_reason == "stop"
    assert {c.provider for c in chunks} == {plain.provider}
    for _ in range(2):  # two loops: per-loop async clients
        atext, achunks = asyncio.run(acollect(adapter.astream(FRANCE, timeout=5)))
        assert atext == PARIS
        assert achunks[-1].usage == plain.usage


def test_stream_tool_calls_arrive_once_complete(route: Route) -> None:
    request = ChatRequest((ASK_WEATHER,), tools=(WEATHER,))
    _, chunks = collect(route.adapter().stream(request, timeout=5))
    with_calls = [c for c in chunks if c.tool_calls]
    assert len(with_calls) == 1
    assert with_calls[0] is chunks[-1]
    (call,) = chunks[-1].tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Oslo", "days": 3})
    assert chunks[-1].finish_reason == "tool_calls"


def test_stream_stopped_early_then_the_adapter_still_works(route: Route) -> None:
    adapter = route.adapter()
    stream = adapter.stream(FRANCE, timeout=5)
    assert next(iter(stream)).delta
    stream.close()  # type: ignore[attr-defined]

    async def early() -> None:
        chunks = adapter.astream(FRANCE, timeout=5)
        assert (await anext(chunks)).delta
        await chunks.aclose()  # type: ignore[attr-defined]
        assert (await adapter.achat(FRANCE, timeout=5)).content == PARIS

    asyncio.run(early())
    assert adapter.chat(FRANCE, timeout=5).content == PARIS


def test_close_then_reuse(route: Route) -> None:
    adapter = route.adapter()
    assert adapter.chat(FRANCE, timeout=5).content == PARIS
    adapter.close()
    assert adapter.chat(FRANCE, timeout=5).content == PARIS


def test_close_inside_a_running_loop(route: Route) -> None:
    adapter: ChatAdapter = route.adapter()

    async def main() -> None:
        await adapter.achat(FRANCE, timeout=5)
        adapter.close()
        await asyncio.sleep(0)
        assert (await adapter.achat(FRANCE, timeout=5)).content == PARIS

    asyncio.run(main())


def test_rate_limit_headers_when_the_plan_has_quotas(route: Route) -> None:
    route.plan(Plan(rpm=100, tpm=100_000))
    reply = route.adapter().chat(FRANCE, timeout=5)
    headers = reply.rate_limit_headers
    if route.kind == "gemini":  # Gemini sends no quota headers
        assert headers == {}
        return
    prefix = "x-ratelimit-" if route.kind == "openai" else "anthropic-ratelimit-"
    assert headers, "quota headers expected"
    assert all(name.startswith(prefix) for name in headers)
    limit = (
        "x-ratelimit-limit-requests"
        if route.kind == "openai"
        else ("anthropic-ratelimit-requests-limit")
    )
    assert headers[limit] == "100"


def test_async_clients_are_closed_with_their_loop(route: Route) -> None:
    adapter = route.adapter()
    for _ in range(3):
        assert asyncio.run(adapter.achat(FRANCE, timeout=5)).content == PARIS
    # asyncio.run finalised each loop's keeper, which closed that loop's client: no dead
    # loop (and no pool bound to one) stays referenced.
    assert len(adapter._clients._async._clients) == 0  # type: ignore[attr-defined]


def test_quota_headers_are_parsed_once_onto_the_reply_and_the_first_chunk(route: Route) -> None:
    # Gemini sends no quota headers: its replies and chunks carry no quota.
    route.plan(Plan(rpm=100))
    adapter = route.adapter()
    quoted = route.kind != "gemini"

    async def astream() -> list[ChatChunk]:
        return [chunk async for chunk in adapter.astream(FRANCE, timeout=5)]

    for reply in (adapter.chat(FRANCE, timeout=5), asyncio.run(adapter.achat(FRANCE, timeout=5))):
        assert (reply.quota is not None) is quoted
        if reply.quota is not None:
            assert reply.quota.limit_requests == 100
    for chunks in (list(adapter.stream(FRANCE, timeout=5)), asyncio.run(astream())):
        marked = [chunk.quota is not None for chunk in chunks]
        assert marked == [quoted] + [False] * (len(chunks) - 1)
        first = chunks[0].quota
        if first is not None:
            assert first.limit_requests == 100
