"""The pure OpenAI request/response converters (no I/O, no SDK calls)."""

from __future__ import annotations

import base64
from types import SimpleNamespace as NS
from typing import Any

import pytest

from resilient_llm.content import Audio, Document, Image, Part, Reasoning, Text, join_reasoning
from resilient_llm.errors import ConfigurationError, ProviderUnavailable
from resilient_llm.messages import ChatRequest, Message, ToolCall, Usage
from resilient_llm.policies.capabilities import Capabilities
from resilient_llm.providers.base import Provider, unsendable_reason
from resilient_llm.providers.openai import convert as oc
from resilient_llm.providers.openai import parts as oc_parts
from resilient_llm.providers.openai.adapter import prepared
from resilient_llm.providers.openai.parts import DEFAULT_FILENAME

from .samples import HISTORY, WEATHER, provider


def test_openai_params_history_tools_and_options() -> None:
    request = ChatRequest(
        HISTORY,
        tools=(WEATHER,),
        tool_choice="get_weather",
        temperature=0.2,
        max_tokens=50,
        stop=("END",),
    )
    params = oc.build_params(request, provider("openai"))
    assert params["model"] == "m-1"
    roles = [m["role"] for m in params["messages"]]
    assert roles == ["system", "system", "user", "assistant", "tool", "tool", "user"]
    assistant = params["messages"][3]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert params["messages"][4] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"temp": 21}',
    }
    assert params["tools"][0]["function"]["parameters"] == dict(WEATHER.parameters)
    assert params["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert params["max_completion_tokens"] == 50
    assert "max_tokens" not in params
    assert params["stop"] == ["END"]
    assert params["temperature"] == 0.2


def test_openai_compatible_base_url_gets_max_tokens_and_model_override() -> None:
    request = ChatRequest((Message("user", "hi"),), model="other", max_tokens=5)
    params = oc.build_params(request, provider("openai", "http://127.0.0.1:1/v1"))
    assert params["max_tokens"] == 5
    assert params["model"] == "other"


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_openai_tool_choice_keywords(choice: str) -> None:
    request = ChatRequest((Message("user", "hi"),), tools=(WEATHER,), tool_choice=choice)
    assert oc.build_params(request, provider("openai"))["tool_choice"] == choice


def test_openai_tool_choice_without_tools_is_dropped() -> None:
    request = ChatRequest((Message("user", "hi"),), tool_choice="auto")
    assert "tool_choice" not in oc.build_params(request, provider("openai"))


def test_openai_structured_output_and_json_mode() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    params = oc.build_params(
        ChatRequest((Message("user", "x"),), response_schema=schema), provider("openai")
    )
    assert params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": False},
    }
    params = oc.build_params(
        ChatRequest((Message("user", "x"),), json_mode=True), provider("openai")
    )
    assert params["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        ("weird", "stop"),
        (None, None),
    ],
)
def test_openai_finish_reason(raw: str | None, normal: str | None) -> None:
    assert oc.finish_reason(raw) == normal


def _oa_chunk(**delta: Any) -> Any:
    finish = delta.pop("finish", None)
    usage = delta.pop("usage", None)
    choices = (
        []
        if delta.pop("empty", False)
        else [
            NS(
                delta=NS(
                    content=delta.get("content"),
                    tool_calls=delta.get("tool_calls"),
                    reasoning_content=delta.get("reasoning_content"),
                ),
                finish_reason=finish,
            )
        ]
    )
    return NS(model="gpt-x", usage=usage, choices=choices)


def test_openai_stream_state_assembles_tool_calls_and_usage() -> None:
    state = oc.OpenAIStreamState("r")
    fn = NS(name="get_weather", arguments='{"ci')
    out = state.feed(_oa_chunk(content="He"))
    out += state.feed(_oa_chunk(tool_calls=[NS(index=0, id="c1", function=fn)]))
    out += state.feed(
        _oa_chunk(
            tool_calls=[NS(index=0, id=None, function=NS(name=None, arguments='ty": "Oslo"}'))]
        )
    )
    out += state.feed(_oa_chunk(finish="tool_calls"))
    out += state.feed(_oa_chunk(empty=True, usage=NS(prompt_tokens=3, completion_tokens=4)))
    out += state.finish()
    assert [c.delta for c in out] == ["He", ""]
    last = out[-1]
    assert last.tool_calls == (ToolCall("c1", "get_weather", {"city": "Oslo"}),)
    assert last.usage is not None
    assert (last.usage.input_tokens, last.usage.output_tokens) == (3, 4)
    assert last.finish_reason == "tool_calls"
    assert last.provider == "r"
    assert last.model == "gpt-x"


def test_openai_stream_without_finish_reason_is_cut() -> None:
    state = oc.OpenAIStreamState("r")
    state.feed(_oa_chunk(content="partial"))
    with pytest.raises(ProviderUnavailable, match="terminal event"):
        state.finish()


def test_openai_response_without_choices_is_unavailable() -> None:
    with pytest.raises(ProviderUnavailable):
        oc.response_from_completion(NS(choices=[], usage=None, model="m", id="x"), "r", None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- issue 18

PNG = b"\x89PNG\r\n\x1a\nxyz"
IMAGE = Image(data=PNG, mime_type="image/png")


def _user(*parts: Part) -> ChatRequest:
    return ChatRequest((Message("user", parts),))


def test_openai_media_parts_in_order_with_detail_and_default_filename() -> None:
    request = _user(
        Text("Look", cache_control={"type": "ephemeral"}),
        Image(data=PNG, mime_type="image/png", detail="low"),
        Image(url="https://e.com/a.jpg"),
        Document(data=b"%PDF", name="a.pdf"),
        Document(data=b"%PDF"),
        Audio(data=b"RIFF", mime_type="audio/x-wav"),
        Audio(data=b"ID3", mime_type="audio/mpeg"),
    )
    (message,) = oc.build_params(request, provider("openai"))["messages"]
    png, pdf = base64.b64encode(PNG).decode(), base64.b64encode(b"%PDF").decode()
    pdf_url = f"data:application/pdf;base64,{pdf}"
    wav, mp3 = base64.b64encode(b"RIFF").decode(), base64.b64encode(b"ID3").decode()
    assert message["content"] == [
        {"type": "text", "text": "Look"},  # cache_control left out
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{png}", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://e.com/a.jpg"}},
        {"type": "file", "file": {"file_data": pdf_url, "filename": "a.pdf"}},
        {"type": "file", "file": {"file_data": pdf_url, "filename": DEFAULT_FILENAME}},
        {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": mp3, "format": "mp3"}},
    ]
    assert oc_parts.unsendable(request) is None


def test_openai_text_only_messages_stay_plain_text_and_reasoning_is_never_sent() -> None:
    request = ChatRequest(
        (
            Message("user", (Text("a"), Text("b"))),
            Message(
                "assistant",
                (Reasoning("thinking", "sig", "anthropic"), Reasoning("mine", family="openai"),
                 Text("x"), Text("y")),
            ),
        )
    )  # fmt: skip
    user, assistant = oc.build_params(request, provider("openai"))["messages"]
    assert user == {"role": "user", "content": "ab"}
    assert assistant == {"role": "assistant", "content": "xy"}


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ((Message("user", (Document(url="https://e.com/a.pdf"),)),), "documents as bytes only"),
        ((Message("user", (Audio(url="https://e.com/a.wav"),)),), "audio as bytes only"),
        (
            (Message("user", (Audio(data=b"x", mime_type="audio/flac"),)),),
            "wav or mp3 audio only, not audio/flac",
        ),
        ((Message("user", (Image(url="gs://b/c.png"),)),), "http(s) only"),
        (
            (
                Message("user", "go"),
                Message("assistant", tool_calls=(ToolCall("c", "f", {}),)),
                Message("tool", (Text("see"), IMAGE), tool_call_id="c"),
            ),
            "messages[2]: OpenAI chat completions take no image in a tool message",
        ),
    ],
)  # fmt: skip
def test_openai_unsendable_reasons(messages: tuple[Message, ...], reason: str) -> None:
    request = ChatRequest(messages)
    found = unsendable_reason("openai", request)
    assert found is not None
    assert reason in found


def test_openai_invalid_tool_call_is_no_reason_to_skip() -> None:
    bad = ToolCall("c", "f", raw_arguments="[1]", error="not an object")
    request = ChatRequest((Message("user", "go"), Message("assistant", tool_calls=(bad,))))
    assert unsendable_reason("openai", request) is None
    sent = oc.build_params(request, provider("openai"))["messages"][1]
    assert sent["tool_calls"][0]["function"]["arguments"] == "[1]"


def test_openai_new_params_and_where_they_are_left_out() -> None:
    base = {"top_p": 0.5, "seed": 3, "parallel_tool_calls": False, "reasoning_effort": "minimal"}
    with_tools = ChatRequest((Message("user", "hi"),), tools=(WEATHER,), **base)  # type: ignore[arg-type]
    params = oc.build_params(with_tools, Provider("openai", "gpt-5-mini", api_key="k"))
    assert {k: params[k] for k in base} == base

    bare = ChatRequest((Message("user", "hi"),), **base)  # type: ignore[arg-type]
    params = oc.build_params(bare, Provider("openai", "gpt-4o", api_key="k"))
    assert "parallel_tool_calls" not in params  # refused without tools
    assert "reasoning_effort" not in params  # gpt-4o does not reason
    assert (params["top_p"], params["seed"]) == (0.5, 3)
    # An unknown model gets it; a Capabilities override decides over the table.
    assert oc.build_params(bare, provider("openai"))["reasoning_effort"] == "minimal"
    plain = Provider("openai", "my-model", api_key="k", capabilities=Capabilities(reasoning=False))
    assert "reasoning_effort" not in oc.build_params(bare, plain)
    # The o-series has no minimal effort: it gets the lowest it has.
    o3 = oc.build_params(bare, Provider("openai", "o3-mini", api_key="k"))
    assert o3["reasoning_effort"] == "low"
    for plain_model in ("gpt-4.5-preview", "chatgpt-4o-latest"):
        assert "reasoning_effort" not in oc.build_params(
            bare, Provider("openai", plain_model, api_key="k")
        )


def test_openai_passthrough_body_fields_request_options_and_clashes() -> None:
    route = Provider("openai", "m", api_key="k", options={"store": True, "top_k": 2})
    request = ChatRequest(
        (Message("user", "hi"),),
        temperature=0.1,
        provider_options={
            "openai": {
                "temperature": 0.9,
                "extra_body": {"min_p": 0.2, "store": False},
                "extra_headers": {"X-Team": "a"},
            }
        },
    )
    params = oc.build_params(request, route)
    assert params["temperature"] == 0.9  # passthrough over the request, as model_kwargs
    assert (params["top_k"], params["min_p"]) == (2, 0.2)
    assert params["store"] is False  # extra_body over the named fields, as the SDK's
    assert "extra_body" not in params
    assert params["extra_headers"] == {"X-Team": "a"}  # the adapter sends it as headers
    clash = Provider("openai", "m", api_key="k", options={"messages": []})
    with pytest.raises(ConfigurationError, match="messages"):
        oc.build_params(ChatRequest((Message("user", "hi"),)), clash)
    sent = prepared(params)  # what the adapter hands the SDK client's post
    assert "extra_headers" not in sent.body
    assert sent.sent(3.0) == {"headers": {"X-Team": "a"}, "timeout": 3.0}
    hidden = Provider("openai", "m", api_key="k", options={"extra_body": {"model": "x"}})
    with pytest.raises(ConfigurationError, match="model"):
        oc.build_params(ChatRequest((Message("user", "hi"),)), hidden)
    bad = Provider("openai", "m", api_key="k", options={"extra_query": "a=1"})
    with pytest.raises(ConfigurationError, match="extra_query must be a dict"):
        oc.build_params(ChatRequest((Message("user", "hi"),)), bad)


def _completion(message: Any, usage: Any = None) -> Any:
    return NS(id="x", model="m", usage=usage, choices=[NS(message=message, finish_reason="stop")])


def test_openai_usage_details_and_reasoning_content_in_a_reply() -> None:
    usage = NS(
        prompt_tokens=2000,
        completion_tokens=300,
        prompt_tokens_details=NS(cached_tokens=1920, audio_tokens=0),
        completion_tokens_details=NS(reasoning_tokens=256),
    )
    message = NS(content="42", refusal=None, tool_calls=None, reasoning_content="Let me think.")
    reply = oc.response_from_completion(_completion(message, usage), "r", None)
    assert reply.usage == Usage(2000, 300, cached_input_tokens=1920, reasoning_tokens=256)
    assert reply.reasoning == (Reasoning("Let me think.", family="openai"),)
    assert reply.content == "42"


def test_openai_usage_without_details_and_malformed_details() -> None:
    plain = oc.response_from_completion(
        _completion(NS(content="a"), {"prompt_tokens": 1, "completion_tokens": 2}), "r", None
    )
    assert plain.usage == Usage(1, 2)
    assert plain.reasoning == ()
    bad = {"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": "many"}}
    with pytest.raises(ProviderUnavailable, match="cached_tokens"):
        oc.response_from_completion(_completion(NS(content="a"), bad), "r", None)


def test_openai_refusal_reply_still_reads_as_a_refusal() -> None:
    message = NS(content=None, refusal="I can't.", tool_calls=None)
    reply = oc.response_from_completion(_completion(message), "r", None)
    assert (reply.refusal, reply.finish_reason, reply.content) == ("I can't.", "refusal", "")


def test_openai_stream_reasoning_content_and_usage_details() -> None:
    state = oc.OpenAIStreamState("r")
    out = state.feed(_oa_chunk(reasoning_content="Hmm, "))
    out += state.feed(_oa_chunk(reasoning_content="yes."))
    out += state.feed(_oa_chunk(content="Yes"))
    out += state.feed(_oa_chunk(finish="stop"))
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 6},
    }
    out += state.feed(_oa_chunk(empty=True, usage=usage))
    out += state.finish()
    pieces = [p for c in out for p in c.reasoning]
    assert join_reasoning(pieces) == (Reasoning("Hmm, yes.", family="openai"),)
    assert "".join(c.delta for c in out) == "Yes"
    assert out[-1].usage == Usage(5, 9, reasoning_tokens=6)
