"""Hostile caller input gets a ConfigurationError naming the field, before any request.

Each case once crashed deep inside an SDK (``UnicodeEncodeError``, ``RecursionError``,
``ValueError``, ``TypeError``, ``OverflowError``) after a route was chosen. The checks live
where a request is built, so the engine's four modes and both plugins reach them alike;
the chaos server's log shows nothing was sent.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from llama_index.core.base.llms.types import ChatMessage as LIChatMessage

from langchain_resilient import ChatResilientLLM
from llamaindex_resilient import ResilientLLM as LlamaResilientLLM
from resilient_llm import (
    ChatRequest,
    ConfigurationError,
    Message,
    Provider,
    ResilientLLM,
    RetryPolicy,
    StreamTimeouts,
    Tool,
    ToolCall,
)
from resilient_llm._arguments import MAX_TIMEOUT
from resilient_llm._checks import MAX_JSON_DEPTH, check_json, check_text
from resilient_llm.events import RouteSkipped
from resilient_llm.testing.chaos import ChaosServer

KINDS = ("openai", "anthropic", "gemini")
MODES = ("chat", "achat", "stream", "astream")


def nested(levels: int) -> dict[str, Any]:
    """An object schema exactly ``levels`` containers deep (``levels >= 3``)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 3):
        schema = {"type": "array", "items": schema}
    return {"type": "object", "properties": {"v": schema}}


def _self_referencing() -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    schema["properties"] = {"child": schema}
    return schema


def _deep_arguments(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def _tool(parameters: Any) -> list[dict[str, Any]]:
    return [{"name": "lookup", "parameters": parameters}]


ASSISTANT_CALL = {"role": "assistant", "content": "", "tool_calls": []}

# (case, messages, options, the field the error must name)
CASES: list[tuple[str, Any, dict[str, Any], str]] = [
    ("lone surrogate", [{"role": "user", "content": "caf\udce9"}], {}, "messages[0].content"),
    (
        "surrogate in a later message",
        [{"role": "system", "content": "ok"}, {"role": "user", "content": "\ud83d"}],
        {},
        "messages[1].content",
    ),
    ("surrogate in a name", [{"role": "user", "content": "hi", "name": "\udc80"}], {}, "name"),
    ("surrogate in stop", "hi", {"stop": ["\ud800"]}, "stop[0]"),
    (
        "5,000-deep tool schema",
        "hi",
        {"tools": _tool(nested(5000))},
        "tools[0].parameters['properties']['v']",
    ),
    (
        "self-referencing tool schema",
        "hi",
        {"tools": _tool(_self_referencing())},
        "tools[0].parameters['properties']['child'] contains itself",
    ),
    (
        "set in a tool schema",
        "hi",
        {"tools": _tool({"enum": {1, 2}})},
        "tools[0].parameters['enum']",
    ),
    ("bytes in a schema", "hi", {"response_schema": {"title": b"x"}}, "response_schema['title']"),
    ("5,000-deep response schema", "hi", {"response_schema": nested(5000)}, "response_schema"),
    (
        "self-referencing response schema",
        "hi",
        {"response_schema": _self_referencing()},
        "response_schema",
    ),
    (
        "nan in a schema",
        "hi",
        {"response_schema": {"maximum": math.nan}},
        "response_schema['maximum']",
    ),
    ("a tuple key", "hi", {"response_schema": {(1, 2): "x"}}, "response_schema has a key (1, 2)"),
    (
        "deep tool-call arguments",
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "function": {"name": "f", "arguments": _deep_arguments(5000)}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
        {},
        "messages[1].tool_calls[0].arguments",
    ),
    ("timeout 1e308", "hi", {"timeout": 1e308}, "the call's timeout"),
    ("timeout over a week", "hi", {"timeout": MAX_TIMEOUT + 1}, "the call's timeout"),
]
IDS = [case[0] for case in CASES]


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosServer]:
    with ChaosServer() as server:
        yield server


def _engine(chaos: ChaosServer, kind: str, **options: Any) -> ResilientLLM:
    provider = Provider(kind, "m", base_url=chaos.base_url(kind), api_key="x")  # type: ignore[arg-type]
    return ResilientLLM([provider], retry=RetryPolicy(max_retries=0), timeout=20, **options)


def _run(llm: ResilientLLM, mode: str, messages: Any, options: dict[str, Any]) -> object:
    if mode == "chat":
        return llm.chat(messages, **options)
    if mode == "achat":
        return asyncio.run(llm.achat(messages, **options))
    if mode == "stream":
        return list(llm.stream(messages, **options))

    async def drain() -> list[Any]:
        return [chunk async for chunk in llm.astream(messages, **options)]

    return asyncio.run(drain())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("messages", "options", "field"), [c[1:] for c in CASES], ids=IDS)
def test_the_engine_names_the_field_and_sends_nothing(
    chaos: ChaosServer, kind: str, mode: str, messages: Any, options: dict[str, Any], field: str
) -> None:
    chaos.clear_log()
    with _engine(chaos, kind) as llm, pytest.raises(ConfigurationError) as info:
        _run(llm, mode, messages, dict(options))
    assert field in str(info.value)
    assert chaos.log == []


# The plugins take their own message types: the cases of one user turn, in their form.
PLUGIN_CASES = [c for c in CASES if isinstance(c[1], str) or len(c[1]) == 1]
PLUGIN_CASES = [c for c in PLUGIN_CASES if "name" not in c[3]]


@pytest.mark.parametrize(
    ("messages", "options", "field"),
    [c[1:] for c in PLUGIN_CASES],
    ids=[c[0] for c in PLUGIN_CASES],
)
def test_both_plugins_reach_the_same_checks(
    chaos: ChaosServer, messages: Any, options: dict[str, Any], field: str
) -> None:
    text = messages if isinstance(messages, str) else messages[0]["content"]
    provider = Provider("openai", "m", base_url=chaos.base_url("openai"), api_key="x")
    chaos.clear_log()
    engine = ResilientLLM([provider], retry=RetryPolicy(max_retries=0))
    lc = ChatResilientLLM(engine=engine)
    li = LlamaResilientLLM(engine=engine)
    call = {k: v for k, v in options.items() if k in ("stop", "timeout")}
    if "tools" in options:
        lc_run = lambda: lc.bind_tools(options["tools"]).invoke(text)  # noqa: E731
        field = "tools[0].parameters"
    elif "response_schema" in options:
        lc_run = lambda: lc.invoke(text, response_schema=options["response_schema"])  # noqa: E731
    else:
        lc_run = lambda: lc.invoke([HumanMessage(text)], **call)  # noqa: E731
    with pytest.raises(ConfigurationError) as lc_info:
        lc_run()
    assert field in str(lc_info.value)
    if "tools" not in options and "response_schema" not in options:
        with pytest.raises(ConfigurationError) as li_info:
            li.chat([LIChatMessage(role="user", content=text)], **call)
        assert field in str(li_info.value)
    assert chaos.log == []


def test_the_limits_themselves_are_taken(chaos: ChaosServer) -> None:
    """What is exactly at each bound is sent and answered, by every family."""
    arguments = _deep_arguments(MAX_JSON_DEPTH)
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": arguments}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "user", "content": "caf\u00e9 \U0001f600"},  # non-ASCII, no surrogate
    ]
    for kind in KINDS:
        with _engine(chaos, kind) as llm:
            assert llm.chat("hi", tools=_tool(nested(MAX_JSON_DEPTH)), timeout=MAX_TIMEOUT)
            assert llm.chat("hi", response_schema=nested(MAX_JSON_DEPTH))
            assert llm.chat(history)
    with pytest.raises(ConfigurationError, match="nested deeper than 100 levels"):
        ChatRequest((Message("user", "hi"),), response_schema=nested(MAX_JSON_DEPTH + 1))
    shared = {"type": "string"}  # shared, not cyclic: fine
    ChatRequest((Message("user", "hi"),), tools=(Tool("t", "", {"a": shared, "b": shared}),))


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ResilientLLM([Provider("openai", "m")], timeout=1e308), "ResilientLLM.timeout"),
        (lambda: Provider("openai", "m", timeout=1e308), "Provider.timeout"),
        (lambda: StreamTimeouts(first_token=1e308), "StreamTimeouts.first_token"),
        (lambda: StreamTimeouts(idle=MAX_TIMEOUT * 2), "StreamTimeouts.idle"),
        (
            lambda: LlamaResilientLLM(providers=[Provider("openai", "m")], timeout=1e308),
            "ResilientLLM.timeout",
        ),
        (
            lambda: ChatRequest(
                (Message("assistant", "", tool_calls=(ToolCall("c", "f", {"x": {1}}),)),)
            ),
            "messages[0].tool_calls[0].arguments['x'] is a set",
        ),
        (lambda: ChatRequest((Message("user", "hi"),), model="gpt\udfff"), "model"),
    ],
)
def test_settings_name_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build()
    assert field in str(info.value)


def test_the_langchain_model_names_its_timeout() -> None:
    with pytest.raises(ValueError, match=r"ResilientLLM\.timeout must be at most 604800 s"):
        ChatResilientLLM(providers=[Provider("openai", "m")], timeout=1e308)


# -- a request of system messages only -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_only_system_messages_where_no_route_takes_them(
    chaos: ChaosServer, kind: str, mode: str
) -> None:
    chaos.clear_log()
    system_only = [{"role": "system", "content": "Be brief."}]
    with _engine(chaos, kind) as llm, pytest.raises(ConfigurationError) as info:
        _run(llm, mode, system_only, {})
    assert "messages holds only system messages" in str(info.value)
    assert kind in str(info.value)
    assert chaos.log == []


def test_only_system_messages_go_to_a_route_that_takes_them(chaos: ChaosServer) -> None:
    events: list[Any] = []
    gemini = Provider("gemini", "m", base_url=chaos.base_url("gemini"), api_key="x")
    openai = Provider("openai", "m", base_url=chaos.base_url("openai"), api_key="x")
    with ResilientLLM([gemini, openai], on_event=events.append) as llm:
        reply = llm.chat([{"role": "system", "content": "Be brief."}])
    assert reply.provider == "openai"
    assert [(e.route, e.reason) for e in events if isinstance(e, RouteSkipped)] == [
        ("gemini", "cannot take the request: gemini needs a user message besides the system prompt")
    ]


# -- the checks against the encoder they stand in for -------------------------------------

ANYTHING = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=8)
    | st.binary(max_size=4)
    | st.builds(set, st.lists(st.integers(), max_size=2)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | st.integers() | st.none(), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=ANYTHING)
def test_what_check_json_passes_json_can_carry(value: Any) -> None:
    # Stricter than json.dumps on purpose (it turns int and None keys into strings).
    try:
        check_json("v", value)
    except ConfigurationError:
        return
    json.dumps(value, allow_nan=False).encode("utf-8")  # must not raise


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.text(st.characters(exclude_categories=())))
def test_check_text_refuses_exactly_what_utf8_cannot_encode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(ConfigurationError, match="lone surrogate"):
            check_text("t", text)
    else:
        check_text("t", text)
