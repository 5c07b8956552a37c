"""The pure Anthropic converters for issue 18: parts, thinking, usage (no I/O, no SDK)."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest

from resilient_llm.content import Audio, Document, Image, Reasoning, Text, join_reasoning
from resilient_llm.errors import BadRequest, ConfigurationError
from resilient_llm.messages import ChatRequest, Message, Tool, ToolCall
from resilient_llm.policies.capabilities import Capabilities
from resilient_llm.providers.anthropic import convert as ac
from resilient_llm.providers.anthropic import thinking as th
from resilient_llm.providers.anthropic.parts import part_block
from resilient_llm.providers.base import Provider, unsendable_reason

from .samples import WEATHER

MARK = {"type": "ephemeral"}
CALL = ToolCall("tu_1", "get_weather", {"city": "Paris"})


def _provider(model: str = "m-1", **options: Any) -> Provider:
    return Provider("anthropic", model, api_key="k", **options)


def _params(*messages: Message, model: str = "m-1", **fields: Any) -> dict[str, Any]:
    return ac.build_params(ChatRequest(messages, **fields), _provider(model))


def test_media_blocks() -> None:
    assert part_block(Image(data=b"\x01\x02", mime_type="image/gif", cache_control=MARK)) == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/gif", "data": "AQI="},
        "cache_control": MARK,
    }
    assert part_block(Image(url="https://x/y.png", detail="low")) == {
        "type": "image",
        "source": {"type": "url", "url": "https://x/y.png"},
    }
    assert part_block(Document(data=b"%PDF", name="a.pdf")) == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERg=="},
        "title": "a.pdf",
    }
    assert part_block(Document(data="héllo".encode(), mime_type="text/plain")) == {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "héllo"},
    }
    assert part_block(Document(url="https://x/a.pdf"))["source"] == {  # type: ignore[index]
        "type": "url",
        "url": "https://x/a.pdf",
    }
    with pytest.raises(BadRequest, match="no audio"):
        part_block(Audio(data=b"x", mime_type="audio/wav"))


def test_system_is_a_list_only_when_a_part_is_cached() -> None:
    plain = _params(Message("system", "A"), Message("system", "B"), Message("user", "hi"))
    assert plain["system"] == "A\n\nB"
    cached = _params(
        Message("system", (Text("A", cache_control=MARK),)),
        Message("system", "B"),
        Message("user", "hi"),
    )
    assert cached["system"] == [
        {"type": "text", "text": "A", "cache_control": MARK},
        {"type": "text", "text": "B"},
    ]


def test_tool_cache_control_and_parallel_switch() -> None:
    tool = Tool("t", "d", {"type": "object"}, cache_control=MARK)
    params = _params(Message("user", "hi"), tools=(tool,), parallel_tool_calls=False)
    assert params["tools"] == [
        {"name": "t", "description": "d", "input_schema": {"type": "object"}, "cache_control": MARK}
    ]
    assert params["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    # Without tools the API has no switch: nothing to send.
    assert "tool_choice" not in _params(Message("user", "hi"), parallel_tool_calls=False)


def test_tool_results_with_media_are_block_lists_and_text_stays_a_string() -> None:
    media = Message("tool", (Text("see"), Image(url="https://x/i.png")), tool_call_id="tu_1")
    plain = Message("tool", (Text("a"), Text("b")), tool_call_id="tu_1")
    _, out = ac.messages_to_anthropic((Message("user", "q"), media))
    # A tool result travels in a user turn, so it joins the question's.
    assert out[0]["content"][1:] == [
        {
            "type": "tool_result",
            "tool_use_id": "tu_1",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
            ],
        }
    ]
    _, out = ac.messages_to_anthropic((Message("user", "q"), plain))
    assert out[0]["content"][1]["content"] == "ab"


def test_reasoning_goes_first_and_only_to_its_family() -> None:
    turn = Message(
        "assistant",
        (
            Text("Let me check."),
            Reasoning("hmm", "sig-a", "anthropic"),
            Reasoning("", "red-a", "anthropic", redacted=True),
            Reasoning("other", "sig-g", "gemini"),
            Reasoning("unsigned"),
        ),
        tool_calls=(CALL,),
    )
    _, out = ac.messages_to_anthropic((Message("user", "q"), turn))
    assert [b["type"] for b in out[1]["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
    ]
    assert out[1]["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "sig-a"}
    assert out[1]["content"][1] == {"type": "redacted_thinking", "data": "red-a"}


@pytest.mark.parametrize(("effort", "budget"), list(th.BUDGETS.items()))
def test_effort_budgets_and_room_for_the_answer(effort: str, budget: int) -> None:
    params = _params(Message("user", "hi"), reasoning_effort=effort)
    assert params["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert params["max_tokens"] == budget + th.ANSWER_ROOM
    capped = _params(Message("user", "hi"), reasoning_effort=effort, max_tokens=1500)
    assert capped["thinking"]["budget_tokens"] == min(budget, 1499)
    assert capped["max_tokens"] == 1500


@pytest.mark.parametrize(
    ("model", "adaptive"),
    [
        ("claude-opus-4-7", True),
        ("claude-sonnet-4-6", True),
        ("claude-opus-5", True),
        ("claude-mythos-preview", True),
        ("claude-sonnet-4-5-20250929", False),
        ("claude-sonnet-4-20250514", False),
        ("claude-3-7-sonnet-latest", False),
        ("anthropic/claude-haiku-4-5", False),
        ("my-proxy-model", False),
    ],
)
def test_effort_control_by_model(model: str, adaptive: bool) -> None:
    assert th.adaptive(model) is adaptive
    params = _params(Message("user", "hi"), model=model, reasoning_effort="minimal")
    if adaptive:
        assert params["thinking"] == {"type": "adaptive"}
        assert params["output_config"] == {"effort": "low"}
    else:
        assert params["thinking"]["type"] == "enabled"


def test_no_thinking_where_it_cannot_be() -> None:
    assert "thinking" not in _params(
        Message("user", "hi"), model="claude-3-5-haiku-latest", reasoning_effort="high"
    )
    no_reasoning = Provider(
        "anthropic", "m-1", api_key="k", capabilities=Capabilities(reasoning=False)
    )
    request = ChatRequest((Message("user", "hi"),), reasoning_effort="high")
    assert "thinking" not in ac.build_params(request, no_reasoning)
    # A tool-use turn of another family: thinking waits for this request.
    foreign = (
        Message("user", "q"),
        Message("assistant", (Reasoning("x", "g", "gemini"),), tool_calls=(CALL,)),
        Message("tool", "r", tool_call_id="tu_1"),
    )
    assert "thinking" not in _params(*foreign, reasoning_effort="high")
    own = (
        foreign[0],
        Message("assistant", (Reasoning("x", "s", "anthropic"),), tool_calls=(CALL,)),
        foreign[2],
    )
    assert _params(*own, reasoning_effort="high")["thinking"]["type"] == "enabled"


def test_clashes_are_unsendable_reasons() -> None:
    def reason(**fields: Any) -> str | None:
        request = ChatRequest((Message("user", "hi"),), reasoning_effort="low", **fields)
        return unsendable_reason("anthropic", request, _provider())

    assert reason() is None
    assert "forced tool_choice ('required')" in str(
        reason(tools=(WEATHER,), tool_choice="required")
    )
    assert "structured output" in str(reason(response_schema={"type": "object"}))
    assert "leaves no room" in str(reason(max_tokens=1024))
    # The call's temperature clashes only where the SDK sends it (SDK 2's API removed it);
    # a passthrough temperature is always sent, so it always clashes.
    if th.sdk_takes("temperature"):
        assert "temperature 1 (got 0.2)" in str(reason(temperature=0.2))
    else:
        assert reason(temperature=0.2) is None
    hot = _provider(options={"temperature": 0.3})
    request = ChatRequest((Message("user", "hi"),), reasoning_effort="low")
    assert "temperature 1 (got 0.3)" in str(unsendable_reason("anthropic", request, hot))
    top_k = _provider(options={"top_k": 5})
    request = ChatRequest((Message("user", "hi"),), reasoning_effort="low")
    assert "top_k" in str(unsendable_reason("anthropic", request, top_k))
    # No thinking asked for: no clash.
    plain = ChatRequest((Message("user", "hi"),), tools=(WEATHER,), tool_choice="required")
    assert unsendable_reason("anthropic", plain, _provider()) is None
    audio = ChatRequest((Message("user", (Audio(data=b"x", mime_type="audio/wav"),)),))
    assert "no audio" in str(unsendable_reason("anthropic", audio))


def test_passthrough_is_laid_over_and_unknown_keys_go_in_extra_body() -> None:
    route = _provider(options={"thinking": {"type": "enabled", "budget_tokens": 3000}, "x": 1})
    request = ChatRequest(
        (Message("user", "hi"),),
        reasoning_effort="high",
        seed=3,
        provider_options={"anthropic": {"x": 2, "metadata": {"user_id": "u"}}, "openai": {"y": 1}},
    )
    params = ac.build_params(request, route)
    assert params["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert params["max_tokens"] == ac.DEFAULT_MAX_TOKENS  # the caller's thinking, not ours
    assert "seed" not in params
    assert "y" not in params
    kwargs = ac.sdk_kwargs(params)
    assert kwargs["metadata"] == {"user_id": "u"}
    assert kwargs["extra_body"] == {"x": 2}


def test_reply_reasoning_and_usage() -> None:
    message = NS(
        type="message",
        content=[
            NS(type="thinking", thinking="hmm", signature="s1"),
            NS(type="redacted_thinking", data="opaque"),
            NS(type="text", text="Hi"),
        ],
        stop_reason="end_turn",
        model="claude-x",
        id="msg",
        usage=NS(
            input_tokens=10,
            output_tokens=6,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=20,
        ),
    )
    reply = ac.response_from_message(message, "r", None)
    assert reply.reasoning == (
        Reasoning("hmm", "s1", "anthropic"),
        Reasoning("", "opaque", "anthropic", redacted=True),
    )
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.cached_input_tokens) == (130, 100)
    assert reply.usage.cache_write_tokens == 20
    assert reply.message.parts[:2] == reply.reasoning


def _ev(kind: str, **fields: Any) -> Any:
    return NS(type=kind, **fields)


def test_stream_reasoning_pieces_and_cache_usage() -> None:
    state = ac.AnthropicStreamState("r")
    usage = NS(input_tokens=3, output_tokens=1, cache_read_input_tokens=8)
    events = [
        _ev("message_start", message=NS(model="claude-x", usage=usage)),
        _ev("content_block_start", index=0, content_block=NS(type="thinking", thinking="")),
        _ev("content_block_delta", index=0, delta=NS(type="thinking_delta", thinking="a ")),
        _ev("content_block_delta", index=0, delta=NS(type="thinking_delta", thinking="b")),
        _ev("content_block_delta", index=0, delta=NS(type="signature_delta", signature="sg")),
        _ev("content_block_stop", index=0),
        _ev("content_block_start", index=1, content_block=NS(type="redacted_thinking", data="d")),
        _ev("content_block_stop", index=1),
        _ev("content_block_start", index=2, content_block=NS(type="text")),
        _ev("content_block_delta", index=2, delta=NS(type="text_delta", text="Hi")),
        _ev("content_block_stop", index=2),
        _ev(
            "message_delta",
            delta=NS(stop_reason="refusal", stop_details=None),
            usage=NS(output_tokens=5),
        ),
        _ev("message_stop"),
    ]
    out = [chunk for event in events for chunk in state.feed(event)] + state.finish()
    pieces = [p for c in out for p in c.reasoning]
    assert join_reasoning(pieces) == (
        Reasoning("a b", "sg", "anthropic"),
        Reasoning("", "d", "anthropic", redacted=True),
    )
    last = out[-1]
    assert last.usage is not None
    assert (last.usage.input_tokens, last.usage.cached_input_tokens, last.usage.output_tokens) == (
        11,
        8,
        5,
    )
    assert (last.finish_reason, last.refusal) == ("refusal", "refused")


@pytest.mark.parametrize(
    ("part", "why"),
    [
        (Audio(data=b"x", mime_type="audio/wav"), "no audio input"),
        (Image(data=b"BM", mime_type="image/bmp"), "not image/bmp"),
        (Document(data=b"x", mime_type="application/msword"), "not application/msword"),
        (Document(data=b"\xff\xfe", mime_type="text/plain"), "not"),
    ],
)
def test_media_anthropic_cannot_carry_skip_the_route(part: Any, why: str) -> None:
    request = ChatRequest((Message("user", (Text("look"), part)),))
    assert why in str(unsendable_reason("anthropic", request))
    fine = ChatRequest((Message("user", (Image(url="https://x/y.bmp"),)),))
    assert unsendable_reason("anthropic", fine) is None  # a URL's type is the server's to say


def test_per_call_options_are_not_passed_through() -> None:
    request = ChatRequest((Message("user", "hi"),), provider_options={"anthropic": {"stream": 1}})
    with pytest.raises(ConfigurationError, match="'stream' is set by the engine"):
        ac.build_params(request, _provider())
