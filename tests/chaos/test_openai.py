"""The OpenAI protocol, driven by the official ``openai`` SDK (no mocks)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from resilient_llm import FakeClock
from resilient_llm.testing.chaos import ChaosServer, Fault

from .sdk import (
    CITY_PROMPT,
    PROMPT,
    WEATHER_PROMPT,
    WEATHER_SCHEMA,
    drain,
    eventually,
    openai_client,
)

MODEL = "gpt-4o-mini"
USER = [{"role": "user", "content": PROMPT}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]


class City(BaseModel):
    city: str
    population: int


def test_plain_answer(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=USER)
    assert reply.choices[0].message.content == "The capital of France is Paris."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(PROMPT) // 4 + 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The capital of France is Paris."
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_compare_and_echo(oai: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "Compare Paris and Lyon"}]
    compare = oai.chat.completions.create(model=MODEL, messages=ask).choices[0].message.content
    assert compare is not None
    assert "Paris" in compare
    assert "Lyon" in compare
    echo = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert echo.choices[0].message.content == "Echo: hi"


def test_tool_call_takes_arguments_from_the_prompt(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": WEATHER_PROMPT}]
    reply = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lyon", "days": 3, "unit": "celsius"}


def test_tool_choice_none_answers_in_text(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=USER, tools=TOOLS, tool_choice="none")
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "The capital of France is Paris."


def test_streamed_tool_call(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": WEATHER_PROMPT}]
    stream = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True)
    deltas = [d for c in stream if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id is not None
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments)["days"] == 3


def test_tool_result_round_trip(oai: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": WEATHER_PROMPT}]
    first = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "The tool returned: sunny, 21 C"
    assert second.choices[0].finish_reason == "stop"


def test_structured_output_parses(oai: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": CITY_PROMPT}]
    parsed = oai.chat.completions.parse(model=MODEL, messages=ask, response_format=City)
    assert parsed.choices[0].message.parsed == City(city="Paris", population=2100000)


def test_json_mode_returns_an_object(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model=MODEL, messages=USER, response_format={"type": "json_object"}
    )
    content = reply.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"answer": "The capital of France is Paris."}


def test_max_tokens_cuts_the_answer(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=2)
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "The capi"  # 2 tokens = 8 characters


ERRORS = [
    ("rate_limit", openai.RateLimitError, 429),
    ("overloaded", openai.InternalServerError, 503),
    ("server_error", openai.InternalServerError, 500),
    ("unavailable", openai.InternalServerError, 503),
    ("bad_request", openai.BadRequestError, 400),
    ("context_length", openai.BadRequestError, 400),
    ("auth", openai.AuthenticationError, 401),
    ("not_found", openai.NotFoundError, 404),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("kind", "error", "status"), ERRORS)
def test_error_faults(
    chaos: ChaosServer,
    oai: openai.OpenAI,
    kind: str,
    error: type[openai.APIStatusError],
    status: int,
    stream: bool,
) -> None:
    chaos.script("openai", kind)
    with pytest.raises(error) as caught:
        oai.chat.completions.create(model=MODEL, messages=USER, stream=stream)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["message"]
    if kind == "context_length":
        assert body["code"] == "context_length_exceeded"
    if kind == "rate_limit":
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.response.headers["retry-after-ms"] == "1000"


def test_rate_limit_carries_the_scripted_retry_after(
    chaos: ChaosServer, oai: openai.OpenAI
) -> None:
    chaos.script("openai", Fault("rate_limit", retry_after=2.5))
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model=MODEL, messages=USER)
    assert caught.value.response.headers["retry-after"] == "2.5"
    assert caught.value.response.headers["retry-after-ms"] == "2500"


@pytest.mark.parametrize("stream", [False, True])
def test_reset_is_a_connection_error(chaos: ChaosServer, oai: openai.OpenAI, stream: bool) -> None:
    chaos.script("openai", "reset")
    with pytest.raises(openai.APIConnectionError) as caught:
        oai.chat.completions.create(model=MODEL, messages=USER, stream=stream)
    assert isinstance(caught.value.__cause__, httpx2.ReadError)


def test_malformed_body_is_a_bare_json_error(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    # The SDK does not wrap it: json.JSONDecodeError escapes from create().
    chaos.script("openai", "malformed", "malformed")
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model=MODEL, messages=USER)
    stream = oai.chat.completions.create(model=MODEL, messages=USER, stream=True)
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_truncated_body_and_stream(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    # The SDK wraps httpx2.RemoteProtocolError as APIConnectionError, for a short JSON body
    # and for a stream cut before its terminal chunk ([DONE]); the stream first yields what
    # arrived.
    chaos.script("openai", "truncate", "truncate")
    with pytest.raises(openai.APIConnectionError) as caught:
        oai.chat.completions.create(model=MODEL, messages=USER)
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        drain(oai.chat.completions.create(model=MODEL, messages=USER, stream=True), received)
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert any(c.choices and c.choices[0].delta.content for c in received)
    assert all(c.choices[0].finish_reason is None for c in received)


def test_in_band_stream_error(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    # A `data: {"error": ...}` line mid-stream raises the SDK's plain APIError (no status).
    chaos.script("openai", "stream_error")
    received: list[Any] = []
    with pytest.raises(openai.APIError) as caught:
        drain(oai.chat.completions.create(model=MODEL, messages=USER, stream=True), received)
    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert any(c.choices and c.choices[0].delta.content for c in received)


def test_hang_times_out_and_is_logged(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    chaos.script("openai", "hang")
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.2).chat.completions.create(model=MODEL, messages=USER)
    # The server notices the client leaving and logs the hang with no status.
    assert eventually(lambda: len(chaos.log) == 1)
    assert (chaos.log[0].fault, chaos.log[0].status) == ("hang", 0)


def test_slow_first_token(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    chaos.script(
        "openai", Fault("slow_first_token", delay=0.5), Fault("slow_first_token", delay=0.01)
    )
    # The headers come at once; the first chunk is late, so a short read timeout fires
    # while iterating, not in create().
    stream = oai.with_options(timeout=0.15).chat.completions.create(
        model=MODEL, messages=USER, stream=True
    )
    with pytest.raises(openai.APITimeoutError):
        list(stream)
    stream = oai.chat.completions.create(model=MODEL, messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "The capital of France is Paris."
    )


def test_rpm_quota(clocked: tuple[ChaosServer, FakeClock]) -> None:
    from resilient_llm.testing.chaos import Plan

    server, clock = clocked
    server.set_plan("openai", Plan(rpm=2, tpm=10_000))
    with openai_client(server) as client:
        raw = client.chat.completions.with_raw_response
        first = raw.create(model=MODEL, messages=USER, max_tokens=100)
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert first.headers["x-ratelimit-limit-tokens"] == "10000"
        assert first.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 108)
        clock.advance(15)
        second = raw.create(model=MODEL, messages=USER, max_tokens=100)
        assert second.headers["x-ratelimit-remaining-requests"] == "0"
        clock.advance(15)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=USER)
        # The first admission leaves the window 60 s after it: 30 s from now.
        assert caught.value.response.headers["retry-after"] == "30"
        assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
        clock.advance(30)
        assert (
            raw.create(model=MODEL, messages=USER).headers["x-ratelimit-remaining-requests"] == "0"
        )
    assert [r.status for r in server.log] == [200, 200, 429, 200]
    assert [r.fault for r in server.log] == ["ok", "ok", "quota", "ok"]
    assert [r.tokens for r in server.log] == [108, 108, 0, 8]
