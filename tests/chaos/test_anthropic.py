"""The Anthropic protocol, driven by the official ``anthropic`` SDK (no mocks)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
from pydantic import BaseModel

from resilient_llm import FakeClock
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

from .sdk import (
    CITY_PROMPT,
    PROMPT,
    WEATHER_PROMPT,
    WEATHER_SCHEMA,
    anthropic_client,
    drain,
    eventually,
)

MODEL = "claude-haiku-4-5"
USER: list[Any] = [{"role": "user", "content": PROMPT}]
TOOLS: list[Any] = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
PARIS = "The capital of France is Paris."


class City(BaseModel):
    city: str
    population: int


def test_plain_answer(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(model=MODEL, max_tokens=100, messages=USER, system="Be brief.")
    assert message.content[0].type == "text"
    assert message.content[0].text == PARIS
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    assert message.usage.input_tokens == len("Be brief." + PROMPT) // 4 + 1
    assert message.usage.output_tokens == len(PARIS) // 4 + 1


def test_stream_with_usage(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == PARIS
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(PARIS) // 4 + 1
    assert final.usage.input_tokens > 0


def test_raw_stream_events(ant: anthropic.Anthropic) -> None:
    events = list(ant.messages.create(model=MODEL, max_tokens=100, messages=USER, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_tool_call_takes_arguments_from_the_prompt(ant: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": WEATHER_PROMPT}]
    message = ant.messages.create(model=MODEL, max_tokens=200, messages=messages, tools=TOOLS)
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "Lyon", "days": 3, "unit": "celsius"}


def test_forced_tool_and_streamed_tool_call(ant: anthropic.Anthropic) -> None:
    tools = [*TOOLS, {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]
    with ant.messages.stream(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": WEATHER_PROMPT}],
        tools=tools,
        tool_choice={"type": "tool", "name": "lookup"},
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, getattr(b, "name", None)) for b in final.content] == [("tool_use", "lookup")]


def test_tool_result_round_trip(ant: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": WEATHER_PROMPT}]
    first = ant.messages.create(model=MODEL, max_tokens=200, messages=messages, tools=TOOLS)
    call = first.content[0]
    assert call.type == "tool_use"
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    second = ant.messages.create(model=MODEL, max_tokens=200, messages=messages, tools=TOOLS)
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert second.content[0].text == "The tool returned: sunny"


def test_structured_output_parses(ant: anthropic.Anthropic) -> None:
    ask: list[Any] = [{"role": "user", "content": CITY_PROMPT}]
    parsed = ant.messages.parse(model=MODEL, max_tokens=200, messages=ask, output_format=City)
    assert parsed.parsed_output == City(city="Paris", population=2100000)


def test_count_tokens(ant: anthropic.Anthropic, chaos: ChaosServer) -> None:
    chaos.script("anthropic", "overloaded")  # count_tokens bypasses the script
    counted = ant.messages.count_tokens(model=MODEL, messages=USER)
    assert counted.input_tokens == len(PROMPT) // 4 + 1
    assert chaos.log[-1].path == "/anthropic/v1/messages/count_tokens"
    with pytest.raises(anthropic.OverloadedError):
        ant.messages.create(model=MODEL, max_tokens=10, messages=USER)


ERRORS = [
    ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("overloaded", anthropic.OverloadedError, 529, "overloaded_error"),
    ("server_error", anthropic.InternalServerError, 500, "api_error"),
    ("unavailable", anthropic.ServiceUnavailableError, 503, "api_error"),
    ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error"),
    ("context_length", anthropic.BadRequestError, 400, "invalid_request_error"),
    ("auth", anthropic.AuthenticationError, 401, "authentication_error"),
    ("not_found", anthropic.NotFoundError, 404, "not_found_error"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("kind", "error", "status", "type_"), ERRORS)
def test_error_faults(
    chaos: ChaosServer,
    ant: anthropic.Anthropic,
    kind: str,
    error: type[anthropic.APIStatusError],
    status: int,
    type_: str,
    stream: bool,
) -> None:
    chaos.script("anthropic", kind)
    with pytest.raises(error) as caught:
        ant.messages.create(model=MODEL, max_tokens=10, messages=USER, stream=stream)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == type_
    if kind == "context_length":
        assert "prompt is too long" in caught.value.body["error"]["message"]
    if kind == "rate_limit":
        assert caught.value.response.headers["retry-after"] == "1"


def test_overloaded_is_an_internal_server_error_with_retry_after(
    chaos: ChaosServer, ant: anthropic.Anthropic
) -> None:
    chaos.script("anthropic", Fault("overloaded", retry_after=3))
    with pytest.raises(anthropic.InternalServerError) as caught:
        ant.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert caught.value.status_code == 529
    assert caught.value.response.headers["retry-after"] == "3"


@pytest.mark.parametrize("stream", [False, True])
def test_reset_is_a_connection_error(
    chaos: ChaosServer, ant: anthropic.Anthropic, stream: bool
) -> None:
    chaos.script("anthropic", "reset")
    with pytest.raises(anthropic.APIConnectionError) as caught:
        ant.messages.create(model=MODEL, max_tokens=10, messages=USER, stream=stream)
    assert isinstance(caught.value.__cause__, httpx2.ReadError)


def test_malformed_body_is_a_bare_json_error(chaos: ChaosServer, ant: anthropic.Anthropic) -> None:
    # The SDK does not wrap it: json.JSONDecodeError escapes, from create() and from the stream.
    chaos.script("anthropic", "malformed", "malformed")
    with pytest.raises(json.JSONDecodeError):
        ant.messages.create(model=MODEL, max_tokens=10, messages=USER)
    stream = ant.messages.create(model=MODEL, max_tokens=10, messages=USER, stream=True)
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_truncated_body_and_stream(chaos: ChaosServer, ant: anthropic.Anthropic) -> None:
    # A short JSON body is wrapped as APIConnectionError; a stream cut before message_stop
    # raises httpx2.RemoteProtocolError while iterating, after the events that arrived:
    # unwrapped, or wrapped as APIConnectionError when the cut lands in the SDK's own read
    # (which one depends on where the read was when the peer closed).
    chaos.script("anthropic", "truncate", "truncate")
    with pytest.raises(anthropic.APIConnectionError) as caught:
        ant.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    received: list[Any] = []
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)) as cut:
        drain(
            ant.messages.create(model=MODEL, max_tokens=100, messages=USER, stream=True), received
        )
    if isinstance(cut.value, anthropic.APIConnectionError):
        assert isinstance(cut.value.__cause__, httpx2.RemoteProtocolError)
    assert "content_block_delta" in [e.type for e in received]
    assert "message_stop" not in [e.type for e in received]


def test_in_band_stream_error(chaos: ChaosServer, ant: anthropic.Anthropic) -> None:
    # `event: error` arrives as APIStatusError with the stream's status, 200, and the
    # error's type in the body.
    chaos.script("anthropic", "stream_error", "stream_error")
    received: list[Any] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        drain(
            ant.messages.create(model=MODEL, max_tokens=100, messages=USER, stream=True), received
        )
    assert caught.value.status_code == 200
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert "content_block_delta" in [e.type for e in received]
    # Without a stream there is nothing in-band: the fault answers 529.
    with pytest.raises(anthropic.OverloadedError):
        ant.messages.create(model=MODEL, max_tokens=10, messages=USER)


def test_hang_times_out(chaos: ChaosServer, ant: anthropic.Anthropic) -> None:
    chaos.script("anthropic", "hang")
    with pytest.raises(anthropic.APITimeoutError):
        ant.with_options(timeout=0.2).messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert eventually(lambda: [r.fault for r in chaos.log] == ["hang"])


def test_quota_headers_and_tpm(clocked: tuple[ChaosServer, FakeClock]) -> None:
    server, clock = clocked
    # Each call charges ceil(30 / 4) + 100 = 108 tokens: two fit in 250, a third does not.
    server.set_plan("anthropic", Plan(rpm=5, tpm=250))
    with anthropic_client(server) as client:
        raw = client.messages.with_raw_response
        first = raw.create(model=MODEL, max_tokens=100, messages=USER)
        assert first.headers["anthropic-ratelimit-requests-limit"] == "5"
        assert first.headers["anthropic-ratelimit-requests-remaining"] == "4"
        assert first.headers["anthropic-ratelimit-tokens-remaining"] == str(250 - 108)
        assert first.headers["anthropic-ratelimit-tokens-reset"].endswith("Z")
        clock.advance(10)
        raw.create(model=MODEL, max_tokens=100, messages=USER)
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model=MODEL, max_tokens=100, messages=USER)
        assert caught.value.response.headers["retry-after"] == "50"
        assert "tokens per min" in caught.value.body["error"]["message"]  # type: ignore[index]
        clock.advance(50)
        raw.create(model=MODEL, max_tokens=100, messages=USER)
    assert [r.status for r in server.log] == [200, 200, 429, 200]
