"""Inputs that once crashed with the wrong error type, now refused clearly (issue 7 finds)."""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from resilient_llm import ConfigurationError, FakeClock, Provider, RateLimit, ResilientLLM
from resilient_llm.messages import to_messages
from resilient_llm.testing.chaos import ChaosServer

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosServer]:
    with ChaosServer() as server:
        yield server


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/openai/v1/chat/completions", "[" * 100_000),
        ("/openai/v1/chat/completions", {"model": "m", "messages": [{"role": ["x"]}]}),
        (
            "/openai/v1/chat/completions",
            {"model": "m", "messages": [{"role": "assistant", "tool_calls": 5}]},
        ),
        ("/openai/v1/chat/completions", {"model": "m", "messages": USER, "tools": 5}),
        ("/anthropic/v1/messages", {"model": "m", "max_tokens": 5, "messages": USER, "tools": 5}),
        (
            "/gemini/v1beta/models/m:generateContent",
            {
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [{"name": "f"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": 5}},
            },
        ),
    ],
)
def test_the_chaos_server_answers_malformed_requests_with_400(
    chaos: ChaosServer, path: str, body: object
) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert post(chaos.url + path, raw) == 400


def test_the_chaos_brain_takes_odd_schemas_and_surrogates(chaos: ChaosServer) -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "required": [[1]]}},
    }
    body = {"model": "m", "messages": [{"role": "user", "content": "\ud800"}], "tools": [tool]}
    assert post(chaos.url + "/openai/v1/chat/completions", json.dumps(body).encode()) == 200


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        ([{"role": ["x"]}], "messages[0].role"),
        ([{"role": {}}], "messages[0].role"),
        ([{"role": "assistant", "tool_calls": 5}], "messages[0].tool_calls"),
        ([{"role": "assistant", "tool_calls": [{"function": "x"}]}], "messages[0].tool_calls"),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"function": {"name": "f", "arguments": "[" * 100_000}}],
                }
            ],
            "not valid JSON",
        ),
        ([{"role": "tool", "content": "x"}], "messages[0]: a 'tool' Message needs tool_call_id"),
        ([{"role": "user", "content": "x", "tool_call_id": 5}], "messages[0].tool_call_id"),
        (5, "messages must be a list"),
    ],
)
def test_bad_messages_raise_configuration_errors_naming_the_message(
    items: object, needle: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        to_messages(items)  # type: ignore[arg-type]
    assert needle in str(info.value)


def _engine(**kwargs: object) -> ResilientLLM:
    return ResilientLLM([Provider("openai", "m", base_url="http://127.0.0.1:9/v1")], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: ResilientLLM(None), "ResilientLLM needs providers=[Provider(...)] or models="),  # type: ignore[arg-type]
        (lambda: ResilientLLM(5), "ResilientLLM.providers must be a list"),  # type: ignore[arg-type]
        (lambda: _engine(timeout=math.inf), "ResilientLLM.timeout"),
        (lambda: _engine(spill_over=math.nan), "ResilientLLM.spill_over"),
        (lambda: _engine(spill_over=math.inf), "ResilientLLM.spill_over"),
        (lambda: _engine(on_event=5), "ResilientLLM.on_event"),
        (lambda: _engine(on_event=[5]), "ResilientLLM.on_event"),
        (lambda: _engine(clock=5), "ResilientLLM.clock"),
    ],
)
def test_bad_engine_settings_name_the_field(make: Callable[[], object], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(needle)):
        make()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"tools": 5}, "tools must be a list"),
        ({"stop": 5}, "stop must be a list"),
        ({"tools": [{"function": "x"}]}, "'function' must be a dict"),
        ({"tools": [TOOL], "tool_choice": ["f"]}, "tool_choice must be a str"),
        ({"max_tokens": "5"}, "max_tokens must be an int > 0"),
        ({"max_tokens": True}, "max_tokens must be an int > 0"),
        ({"temperature": "1"}, "temperature must be a number"),
        ({"json_mode": "no"}, "json_mode must be a bool"),
        ({"response_schema": [1]}, "response_schema must be a dict"),
        ({"stop": [5]}, "stop must be strings"),
        ({"model": 5}, "model must be a model name"),
        ({"timeout": 0}, "the call's timeout"),
    ],
)
def test_bad_call_options_name_the_option(options: dict[str, object], needle: str) -> None:
    llm = _engine(clock=FakeClock())
    with pytest.raises(ConfigurationError, match=needle):
        llm.chat("hi", **options)


def test_langchain_refuses_engine_settings_beside_an_engine_even_when_falsy() -> None:
    from langchain_resilient import ChatResilientLLM

    with pytest.raises(ValueError, match="max_retries"):
        ChatResilientLLM(engine=_engine(), max_retries=0)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: Provider("openai", "m", base_url="http://x:abc"), "Provider.base_url"),
        (lambda: Provider("openai", "m", base_url="http://:80/v1"), "Provider.base_url"),
        (lambda: Provider("openai", "m", api_key=5), "Provider.api_key"),  # type: ignore[arg-type]
        (lambda: Provider("openai", "m", options=[1]), "Provider.options"),  # type: ignore[arg-type]
        (lambda: Provider("openai", "m", options="ab"), "Provider.options"),  # type: ignore[arg-type]
        (lambda: _engine(jitter_seed="x"), "ResilientLLM.jitter_seed"),
        (lambda: RateLimit(window=10**400), "RateLimit.window"),
        (lambda: _engine(adapter_factory=5), "ResilientLLM.adapter_factory"),
    ],
)
def test_bad_provider_and_engine_values_name_the_field(
    make: Callable[[], object], needle: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(needle)):
        make()
