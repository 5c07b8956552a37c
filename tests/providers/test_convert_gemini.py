"""The pure Gemini request/response converters (no I/O, no SDK calls)."""

from __future__ import annotations

import base64
from types import SimpleNamespace as NS
from typing import Any

import pytest

from resilient_llm.content import Audio, Document, Image, Reasoning, Text, join_reasoning
from resilient_llm.errors import ProviderUnavailable
from resilient_llm.messages import ChatRequest, Message, ToolCall, Usage
from resilient_llm.providers.gemini import convert as gc
from resilient_llm.providers.gemini import parts as gp
from resilient_llm.providers.gemini import reply as gr

from .samples import HISTORY, WEATHER


def test_gemini_contents_roles_and_function_parts() -> None:
    system, contents = gc.build_contents(HISTORY)
    assert system == "Be brief.\n\nUse metric."
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0] == {
        "function_call": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}
    }
    responses = contents[2]["parts"]
    assert responses[0] == {
        "function_response": {"id": "call_1", "name": "get_weather", "response": {"temp": 21}}
    }
    assert responses[1]["function_response"]["response"] == {"result": "cold"}
    assert responses[1]["function_response"]["name"] == "get_weather"
    assert responses[2] == {"text": "And so?"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ("get_weather", {"mode": "ANY", "allowed_function_names": ["get_weather"]}),
    ],
)
def test_gemini_tool_choice(choice: str, expected: dict[str, Any]) -> None:
    request = ChatRequest((Message("user", "hi"),), tools=(WEATHER,), tool_choice=choice)
    config = gc.build_config(request, None, {})
    assert config["tool_config"] == {"function_calling_config": expected}
    declaration = config["tools"][0]["function_declarations"][0]
    assert declaration["parameters_json_schema"] == dict(WEATHER.parameters)


def test_gemini_config_options() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = ChatRequest(
        (Message("user", "x"),), response_schema=schema, temperature=0.5, max_tokens=9, stop=("S",)
    )
    config = gc.build_config(request, "sys", {"timeout": 500})
    assert config["system_instruction"] == "sys"
    assert config["response_mime_type"] == "application/json"
    assert config["response_json_schema"] == schema
    assert (config["temperature"], config["max_output_tokens"]) == (0.5, 9)
    assert config["stop_sequences"] == ["S"]
    assert config["http_options"] == {"timeout": 500}
    json_only = gc.build_config(ChatRequest((Message("user", "x"),), json_mode=True), None, {})
    assert json_only["response_mime_type"] == "application/json"
    assert "response_json_schema" not in json_only


def _gem(parts: list[Any], finish: str | None, **extra: Any) -> Any:
    candidate = NS(content=NS(parts=parts), finish_reason=finish)
    return NS(candidates=[candidate], model_version="gemini-x", **extra)


def test_gemini_response_and_finish_reasons() -> None:
    call = NS(id=None, name="get_weather", args={"city": "Oslo"})
    response = _gem(
        [
            NS(text="thinking", thought=True, function_call=None),
            NS(text=None, thought=None, function_call=call),
        ],
        "STOP",
        usage_metadata=NS(prompt_token_count=4, candidates_token_count=2, thoughts_token_count=3),
        prompt_feedback=None,
    )
    reply = gr.response_from_generate(response, "r", "fallback", None)
    assert reply.content == ""
    assert reply.tool_calls == (ToolCall("call_get_weather", "get_weather", {"city": "Oslo"}),)
    assert reply.finish_reason == "tool_calls"
    assert reply.usage is not None
    assert reply.usage.output_tokens == 5
    assert reply.model == "gemini-x"
    assert gr.finish_reason("MAX_TOKENS") == "length"
    assert gr.finish_reason("SAFETY") == "refusal"


def test_gemini_stream_state_needs_a_terminal_finish_reason() -> None:
    state = gr.GeminiStreamState("r", "fallback")
    text = NS(text="Hi", thought=None, function_call=None)
    assert [c.delta for c in state.feed(_gem([text], None, usage_metadata=None))] == ["Hi"]
    state.feed(_gem([], "CONTINUATION", usage_metadata=None))
    with pytest.raises(ProviderUnavailable, match="terminal event"):
        state.finish()
    state.feed(_gem([], "STOP", usage_metadata=NS(prompt_token_count=1, candidates_token_count=1)))
    (last,) = state.finish()
    assert last.finish_reason == "stop"
    assert last.usage is not None
    assert last.usage.total_tokens == 2


def _part(**fields: Any) -> Any:
    base = {"text": None, "thought": None, "function_call": None, "thought_signature": None}
    return NS(**{**base, **fields})


def test_gemini_reply_reasoning_and_signatures_round_trip() -> None:
    """Thoughts, a text part's signature and a call's signature come back as reasoning
    and call signatures (base64), and the reply's message reproduces the parts."""
    call = NS(id="c1", name="get_weather", args={"city": "Oslo"})
    response = _gem(
        [
            _part(text="Pondering.", thought=True),
            _part(text="Let me check.", thought_signature=b"\x00text-sig"),
            _part(function_call=call, thought_signature=b"\xffcall-sig"),
        ],
        "STOP",
        usage_metadata=NS(
            prompt_token_count=10,
            candidates_token_count=4,
            thoughts_token_count=6,
            cached_content_token_count=8,
        ),
        prompt_feedback=None,
    )
    reply = gr.response_from_generate(response, "r", "m", None)
    text_sig = base64.b64encode(b"\x00text-sig").decode()
    call_sig = base64.b64encode(b"\xffcall-sig").decode()
    assert reply.reasoning == (
        Reasoning("Pondering.", None, "gemini"),
        Reasoning("", text_sig, "gemini"),
    )
    assert reply.tool_calls[0].signature == call_sig
    assert reply.tool_calls[0].family == "gemini"
    assert reply.usage == Usage(10, 10, cached_input_tokens=8, reasoning_tokens=6)
    _, contents = gc.build_contents((Message("user", "q"), reply.message), "gemini-3-pro")
    assert contents[1]["parts"] == [
        {"text": "Pondering.", "thought": True},
        {"text": "Let me check.", "thought_signature": b"\x00text-sig"},
        {
            "function_call": {"id": "c1", "name": "get_weather", "args": {"city": "Oslo"}},
            "thought_signature": b"\xffcall-sig",
        },
    ]


def test_gemini_stream_reasoning_pieces_and_call_signatures() -> None:
    state = gr.GeminiStreamState("r", "m")
    call = NS(id=None, name="f", args={})
    chunks = [
        *state.feed(_gem([_part(text="Hm", thought=True)], None, usage_metadata=None)),
        *state.feed(_gem([_part(text="Hi", thought_signature=b"s")], None, usage_metadata=None)),
        *state.feed(
            _gem([_part(function_call=call, thought_signature=b"c")], "STOP", usage_metadata=None)
        ),
        *state.finish(),
    ]
    pieces = [p for c in chunks for p in c.reasoning]
    assert pieces == [Reasoning("Hm", None, "gemini"), Reasoning("", "cw==", "gemini")]
    # The text part's signature stays apart from the thought before it, so sent back it
    # rides on that text part again.
    assert join_reasoning(pieces) == (
        Reasoning("Hm", None, "gemini"),
        Reasoning("", "cw==", "gemini"),
    )
    assert "".join(c.delta for c in chunks) == "Hi"
    assert chunks[-1].tool_calls[0].signature == "Yw=="


def test_gemini_signatures_go_back_only_to_gemini() -> None:
    foreign = ToolCall("a", "f", {}, signature="sig", family="anthropic")
    mine = ToolCall("b", "f", {}, signature="-_8=", family="gemini")  # URL-safe is read too
    history = (
        Message("user", "q"),
        Message(
            "assistant",
            (Reasoning("deep", "anth-sig", "anthropic"), Reasoning("", "AAE=", "gemini")),
            tool_calls=(foreign, mine),
        ),
    )
    for model, first in (("gemini-2.5-flash", None), ("gemini-3-flash", gp.SKIP_SIGNATURE)):
        _, contents = gc.build_contents(history, model)
        parts = contents[1]["parts"]
        # The signature with no text after it stays on an empty text part, as it came.
        assert parts[0] == {"text": "", "thought_signature": b"\x00\x01"}
        assert parts[1].get("thought_signature") == first
        assert parts[2]["thought_signature"] == b"\xfb\xff"
    assert gp.SKIP_SIGNATURE != b"skip_thought_signature_validator"
    assert base64.urlsafe_b64encode(gp.SKIP_SIGNATURE) == b"skip_thought_signature_validator"


def test_gemini_media_parts_and_tool_result_media() -> None:
    png = Image(data=b"png", mime_type="image/png")
    wav = Audio(url="https://x.test/a.wav")
    history = (
        Message("user", (Text("see"), png, Document(url="https://x.test/r.pdf?x=1"), wav)),
        Message("assistant", tool_calls=(ToolCall("c", "f", {}),)),
        Message("tool", (Text("done"), png, wav), tool_call_id="c"),
    )
    _, contents = gc.build_contents(history, "gemini-3-pro-preview")
    assert contents[0]["parts"] == [
        {"text": "see"},
        {"inline_data": {"mime_type": "image/png", "data": b"png"}},
        {"file_data": {"file_uri": "https://x.test/r.pdf?x=1", "mime_type": "application/pdf"}},
        {"file_data": {"file_uri": "https://x.test/a.wav", "mime_type": "audio/wav"}},
    ]
    response, beside = contents[2]["parts"]
    assert response["function_response"]["parts"] == [
        {"inline_data": {"mime_type": "image/png", "data": b"png"}}
    ]
    assert response["function_response"]["response"] == {"result": "done"}
    assert beside == {"file_data": {"file_uri": "https://x.test/a.wav", "mime_type": "audio/wav"}}
    _, older = gc.build_contents(history, "gemini-2.5-pro")
    assert "parts" not in older[2]["parts"][0]["function_response"]
    assert len(older[2]["parts"]) == 3


def test_gemini_unsendable_reasons() -> None:
    def reason(*content: Any, calls: tuple[ToolCall, ...] = ()) -> str | None:
        messages = [Message("user", content)] if content else [Message("user", "q")]
        if calls:
            messages.append(Message("assistant", tool_calls=calls))
        return gp.unsendable_reason(ChatRequest(tuple(messages)))

    assert reason(Image(url="https://x.test/pic")) is not None
    assert reason(Image(url="https://x.test/pic", mime_type="image/webp")) is None
    assert reason(Audio(url="https://x.test/a.pdf")) is not None  # a type, but not audio
    assert reason(Document(url="https://x.test/doc")) is None  # a PDF unless told otherwise
    bad = ToolCall("c", "f", {}, signature="not base64!", family="gemini")
    assert "not base64" in str(reason(calls=(bad,)))
    other = ToolCall("c", "f", {}, signature="not base64!", family="anthropic")
    assert reason(calls=(other,)) is None


@pytest.mark.parametrize(
    ("model", "reasoning", "expected"),
    [
        ("gemini-3-flash", None, {"include_thoughts": True, "thinking_level": "HIGH"}),
        ("gemini-2.5-flash-lite", True, {"include_thoughts": True, "thinking_budget": 24576}),
        ("gemini-2.0-flash", False, None),
    ],
)
def test_gemini_thinking_config(model: str, reasoning: bool | None, expected: Any) -> None:
    request = ChatRequest(
        (Message("user", "x"),), reasoning_effort="high", parallel_tool_calls=False
    )
    config = gc.build_config(request, None, {}, model=model, reasoning=reasoning)
    assert config.get("thinking_config") == expected
    assert "parallel_tool_calls" not in config
    over = gc.build_config(
        request, None, {}, model=model, passthrough={"thinking_config": {"thinking_budget": 5}}
    )
    assert over["thinking_config"] == {"thinking_budget": 5}
