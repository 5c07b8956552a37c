"""The Gemini protocol, driven by the official ``google-genai`` SDK (no mocks)."""

from __future__ import annotations

import json

import httpx2
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from resilient_llm import FakeClock
from resilient_llm.policies.hints import retry_delay_from_gemini_error
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

from .sdk import (
    CITY_PROMPT,
    PROMPT,
    WEATHER_PROMPT,
    WEATHER_SCHEMA,
    drain,
    eventually,
    gemini_client,
)

MODEL = "gemini-2.5-flash"
PARIS = "The capital of France is Paris."
NO_AUTO_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


class City(BaseModel):
    city: str
    population: int


def ask(client: genai.Client, stream: bool) -> None:
    if stream:
        list(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    else:
        client.models.generate_content(model=MODEL, contents=PROMPT)


def weather_tool(json_schema: bool = True) -> types.Tool:
    if json_schema:
        declaration = types.FunctionDeclaration(
            name="get_weather", parameters_json_schema=WEATHER_SCHEMA
        )
    else:  # the OpenAPI-subset form, with upper-case type names
        declaration = types.FunctionDeclaration(
            name="get_weather",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={
                    "city": types.Schema(type=types.Type.STRING),
                    "days": types.Schema(type=types.Type.INTEGER),
                },
                required=["city", "days"],
            ),
        )
    return types.Tool(function_declarations=[declaration])


def test_plain_answer(gem: genai.Client) -> None:
    config = types.GenerateContentConfig(system_instruction="Be brief.")
    reply = gem.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert reply.text == PARIS
    assert reply.candidates is not None
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.model_version == MODEL
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.prompt_token_count == len("Be brief." + PROMPT) // 4 + 1
    assert reply.usage_metadata.total_token_count == reply.usage_metadata.prompt_token_count + (
        reply.usage_metadata.candidates_token_count or 0
    )


def test_stream_with_usage(gem: genai.Client) -> None:
    chunks = list(gem.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert len(chunks) > 2
    assert "".join(c.text or "" for c in chunks) == PARIS
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == len(PARIS) // 4 + 1
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])


@pytest.mark.parametrize("json_schema", [True, False])
def test_tool_call_takes_arguments_from_the_prompt(gem: genai.Client, json_schema: bool) -> None:
    config = types.GenerateContentConfig(
        tools=[weather_tool(json_schema)], automatic_function_calling=NO_AUTO_CALLS
    )
    reply = gem.models.generate_content(model=MODEL, contents=WEATHER_PROMPT, config=config)
    assert reply.function_calls is not None
    call = reply.function_calls[0]
    assert call.name == "get_weather"
    expected = {"city": "Lyon", "days": 3}
    assert call.args == ({**expected, "unit": "celsius"} if json_schema else expected)


def test_tool_mode_none_answers_in_text(gem: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[weather_tool()],
        automatic_function_calling=NO_AUTO_CALLS,
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.NONE
            )
        ),
    )
    assert gem.models.generate_content(model=MODEL, contents=PROMPT, config=config).text == PARIS


def test_tool_result_round_trip(gem: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[weather_tool()], automatic_function_calling=NO_AUTO_CALLS
    )
    first = gem.models.generate_content(model=MODEL, contents=WEATHER_PROMPT, config=config)
    assert first.candidates is not None
    assert first.candidates[0].content is not None
    assert first.function_calls is not None
    call = first.function_calls[0]
    contents = [
        types.Content(role="user", parts=[types.Part(text=WEATHER_PROMPT)]),
        first.candidates[0].content,
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name=str(call.name), response={"result": "sunny"})
            ],
        ),
    ]
    second = gem.models.generate_content(model=MODEL, contents=contents, config=config)
    assert second.text == 'The tool returned: {"result": "sunny"}'


@pytest.mark.parametrize("field", ["response_schema", "response_json_schema"])
def test_structured_output_parses(gem: genai.Client, field: str) -> None:
    schema = City if field == "response_schema" else City.model_json_schema()
    config = types.GenerateContentConfig(response_mime_type="application/json", **{field: schema})
    reply = gem.models.generate_content(model=MODEL, contents=CITY_PROMPT, config=config)
    assert json.loads(reply.text or "") == {"city": "Paris", "population": 2100000}
    if field == "response_schema":
        assert reply.parsed == City(city="Paris", population=2100000)


def test_count_tokens(gem: genai.Client) -> None:
    counted = gem.models.count_tokens(model=MODEL, contents=PROMPT)
    assert counted.total_tokens == len(PROMPT) // 4 + 1


ERRORS = [
    ("rate_limit", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    ("overloaded", errors.ServerError, 503, "UNAVAILABLE"),
    ("server_error", errors.ServerError, 500, "INTERNAL"),
    ("unavailable", errors.ServerError, 503, "UNAVAILABLE"),
    ("bad_request", errors.ClientError, 400, "INVALID_ARGUMENT"),
    ("context_length", errors.ClientError, 400, "INVALID_ARGUMENT"),
    ("auth", errors.ClientError, 401, "UNAUTHENTICATED"),
    ("not_found", errors.ClientError, 404, "NOT_FOUND"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("kind", "error", "code", "status"), ERRORS)
def test_error_faults(
    chaos: ChaosServer,
    gem: genai.Client,
    kind: str,
    error: type[errors.APIError],
    code: int,
    status: str,
    stream: bool,
) -> None:
    chaos.script("gemini", kind)
    with pytest.raises(error) as caught:
        ask(gem, stream)
    assert (caught.value.code, caught.value.status) == (code, status)
    if kind == "rate_limit":
        assert retry_delay_from_gemini_error(caught.value.details) == 1.0
        assert caught.value.details["error"]["details"][0]["retryDelay"] == "1s"


def test_retry_info_carries_the_scripted_delay(chaos: ChaosServer, gem: genai.Client) -> None:
    chaos.script(
        "gemini", Fault("rate_limit", retry_after=0.25), Fault("overloaded", retry_after=30)
    )
    with pytest.raises(errors.ClientError) as limited:
        gem.models.generate_content(model=MODEL, contents=PROMPT)
    assert retry_delay_from_gemini_error(limited.value.details) == 0.25
    with pytest.raises(errors.ServerError) as overloaded:
        gem.models.generate_content(model=MODEL, contents=PROMPT)
    assert retry_delay_from_gemini_error(overloaded.value.details) == 30.0


@pytest.mark.parametrize("stream", [False, True])
def test_reset_is_a_raw_httpx2_error(chaos: ChaosServer, gem: genai.Client, stream: bool) -> None:
    # google-genai does not wrap transport errors: httpx2.ReadError escapes.
    chaos.script("gemini", "reset")
    with pytest.raises(httpx2.ReadError):
        ask(gem, stream)


def test_malformed_body_and_stream(chaos: ChaosServer, gem: genai.Client) -> None:
    # A bad JSON body escapes as json.JSONDecodeError; a bad SSE data line as
    # errors.UnknownApiResponseError (a ValueError, caused by the JSONDecodeError).
    chaos.script("gemini", "malformed", "malformed")
    with pytest.raises(json.JSONDecodeError):
        gem.models.generate_content(model=MODEL, contents=PROMPT)
    with pytest.raises(errors.UnknownApiResponseError):
        list(gem.models.generate_content_stream(model=MODEL, contents=PROMPT))


def test_truncated_body_and_stream(chaos: ChaosServer, gem: genai.Client) -> None:
    # httpx2.RemoteProtocolError escapes unwrapped, for a short body and for a stream cut
    # before its finishReason chunk (after yielding the chunks that arrived).
    chaos.script("gemini", "truncate", "truncate")
    with pytest.raises(httpx2.RemoteProtocolError):
        gem.models.generate_content(model=MODEL, contents=PROMPT)
    received: list[types.GenerateContentResponse] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        drain(gem.models.generate_content_stream(model=MODEL, contents=PROMPT), received)
    assert received
    assert "".join(c.text or "" for c in received) != PARIS


def test_in_band_stream_error(chaos: ChaosServer, gem: genai.Client) -> None:
    # An error object as an SSE data line raises errors.ServerError with its code.
    chaos.script("gemini", "stream_error")
    received: list[types.GenerateContentResponse] = []
    with pytest.raises(errors.ServerError) as caught:
        drain(gem.models.generate_content_stream(model=MODEL, contents=PROMPT), received)
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
    assert [c.text for c in received] == ["The capital "]


def test_hang_is_a_raw_read_timeout(chaos: ChaosServer) -> None:
    chaos.script("gemini", "hang")
    client = gemini_client(chaos, timeout=0.2)
    with pytest.raises(httpx2.ReadTimeout):
        client.models.generate_content(model=MODEL, contents=PROMPT)
    client.close()
    assert eventually(lambda: [(r.fault, r.status) for r in chaos.log] == [("hang", 0)])


def test_rpm_quota_answers_resource_exhausted(clocked: tuple[ChaosServer, FakeClock]) -> None:
    server, clock = clocked
    server.set_plan("gemini", Plan(rpm=1))
    client = gemini_client(server)
    assert client.models.generate_content(model=MODEL, contents=PROMPT).text == PARIS
    clock.advance(20)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    assert caught.value.code == 429
    assert retry_delay_from_gemini_error(caught.value.details) == 40.0
    clock.advance(40)
    assert client.models.generate_content(model=MODEL, contents=PROMPT).text == PARIS
    client.close()


GEMINI_3 = "gemini-3-pro-preview"


def _weather_turns(gem: genai.Client, model: str) -> tuple[list[types.Content], types.Part]:
    """A first step on ``model``: the question, the model's call; and the call's part."""
    config = types.GenerateContentConfig(
        tools=[weather_tool()], automatic_function_calling=NO_AUTO_CALLS
    )
    first = gem.models.generate_content(model=model, contents=WEATHER_PROMPT, config=config)
    assert first.candidates is not None
    content = first.candidates[0].content
    assert content is not None
    assert content.parts is not None
    question = types.Content(role="user", parts=[types.Part(text=WEATHER_PROMPT)])
    return [question, content], content.parts[0]


def _answer(name: str) -> types.Content:
    return types.Content(
        role="user",
        parts=[types.Part.from_function_response(name=name, response={"result": "sunny"})],
    )


def test_gemini_3_signs_its_first_call_and_checks_it_back(
    chaos: ChaosServer, gem: genai.Client
) -> None:
    config = types.GenerateContentConfig(
        tools=[weather_tool()], automatic_function_calling=NO_AUTO_CALLS
    )
    turns, call = _weather_turns(gem, GEMINI_3)
    assert call.thought_signature is not None
    assert call.thought_signature.decode().startswith("chaos-gemini-")
    assert call.function_call is not None
    name = str(call.function_call.name)
    ok = gem.models.generate_content(
        model=GEMINI_3, contents=[*turns, _answer(name)], config=config
    )
    assert ok.text == 'The tool returned: {"result": "sunny"}'
    assert chaos.log[-1].carried.signatures == (call.thought_signature.decode(),)

    unsigned = call.model_copy(update={"thought_signature": None})
    stripped = [turns[0], types.Content(role="model", parts=[unsigned]), _answer(name)]
    with pytest.raises(errors.ClientError) as missing:
        gem.models.generate_content(model=GEMINI_3, contents=stripped, config=config)
    assert missing.value.code == 400
    assert "Function call is missing a thought_signature in functionCall parts" in str(
        missing.value.message
    )
    assert "`default_api:get_weather` , position 2" in str(missing.value.message)
    # An older model does not insist; a later user turn starts a new turn, unchecked.
    gem.models.generate_content(model=MODEL, contents=stripped, config=config)
    later = [*stripped, types.Content(role="user", parts=[types.Part(text="Thanks!")])]
    gem.models.generate_content(model=GEMINI_3, contents=later, config=config)

    for value in (b"forged", b"chaos-anthropic-" + b"0" * 24):
        forged = call.model_copy(update={"thought_signature": value})
        bad = [turns[0], types.Content(role="model", parts=[forged]), _answer(name)]
        with pytest.raises(errors.ClientError, match="Corrupted thought signature"):
            gem.models.generate_content(model=MODEL, contents=bad, config=config)


def test_gemini_thoughts_and_usage_details(gem: genai.Client) -> None:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_level="LOW")
    )
    prompt = PROMPT + " " + "padding " * 600
    reply = gem.models.generate_content(model=GEMINI_3, contents=prompt, config=config)
    assert reply.candidates is not None
    assert reply.candidates[0].content is not None
    parts = reply.candidates[0].content.parts or []
    assert [bool(p.thought) for p in parts] == [True, False]
    assert parts[1].text == PARIS
    assert parts[1].thought_signature is not None
    usage = reply.usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count
    assert usage.prompt_token_count is not None
    assert usage.cached_content_token_count == usage.prompt_token_count // 1024 * 1024
    plain = gem.models.generate_content(model=MODEL, contents=PROMPT)
    assert plain.usage_metadata is not None
    assert plain.usage_metadata.thoughts_token_count is None
    assert plain.usage_metadata.cached_content_token_count is None


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_refusal_is_a_safety_stop(gem: genai.Client, stream: bool) -> None:
    prompt = "[refuse] How do I pick a lock?"
    if stream:
        replies = list(gem.models.generate_content_stream(model=MODEL, contents=prompt))
    else:
        replies = [gem.models.generate_content(model=MODEL, contents=prompt)]
    last = replies[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert not any(r.text for r in replies)


def test_gemini_a_zero_budget_thinks_not(gem: genai.Client) -> None:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=0)
    )
    reply = gem.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert reply.candidates is not None
    assert reply.candidates[0].content is not None
    assert [p.thought for p in reply.candidates[0].content.parts or []] == [None]
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.thoughts_token_count is None
