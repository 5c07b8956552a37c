"""Content blocks in and out, without a server: every form LangChain apps send, the forms
ChatAnthropic and ChatGoogleGenerativeAI return, and their round trips as history."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_resilient._convert import to_ai_message, to_messages
from langchain_resilient._streaming import StreamTally
from resilient_llm import ChatChunk, ChatResponse, Message, Provider, ToolCall, Usage
from resilient_llm.content import Audio, Document, Image, Reasoning, Text, join_reasoning

from . import _media

PNG, PDF, WAV = _media.png(), _media.pdf(), _media.wav()
PNG64, PDF64, WAV64 = (base64.b64encode(b).decode() for b in (PNG, PDF, WAV))
URL = "https://example.com/cat.png"
IMAGE_BLOCK = {"type": "image", "base64": PNG64, "mime_type": "image/png"}


def _one(block: dict[str, Any] | str, message: type[BaseMessage] = HumanMessage) -> Any:
    """The part the block becomes (a prompt of that one block and a text)."""
    out = to_messages([message(["look:", block])])[0]  # type: ignore[call-arg]
    assert isinstance(out.content, tuple)
    assert out.content[0] == Text("look:")
    return out.content[1]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        # LangChain v1 standard blocks
        ({"type": "image", "base64": PNG64, "mime_type": "image/png"}, Image(PNG, "image/png")),
        ({"type": "image", "url": URL}, Image(url=URL)),
        ({"type": "image", "url": f"data:image/png;base64,{PNG64}"}, Image(PNG, "image/png")),
        (
            {"type": "file", "base64": PDF64, "mime_type": "application/pdf", "filename": "a.pdf"},
            Document(PDF, name="a.pdf"),
        ),
        (
            {
                "type": "file",
                "base64": PDF64,
                "mime_type": "application/pdf",
                "extras": {"filename": "b.pdf", "cache_control": {"type": "ephemeral"}},
            },
            Document(PDF, name="b.pdf", cache_control={"type": "ephemeral"}),
        ),
        (
            {"type": "file", "url": "https://x/a.pdf"},
            Document(url="https://x/a.pdf", mime_type=None),
        ),
        ({"type": "audio", "base64": WAV64, "mime_type": "audio/wav"}, Audio(WAV, "audio/wav")),
        (
            {"type": "text-plain", "text": "notes", "mime_type": "text/plain", "title": "n.txt"},
            Document(b"notes", "text/plain", name="n.txt"),
        ),
        # LangChain v0 blocks
        (
            {"type": "image", "source_type": "base64", "data": PNG64, "mime_type": "image/png"},
            Image(PNG, "image/png"),
        ),
        ({"type": "image", "source_type": "url", "url": URL}, Image(url=URL)),
        (
            {
                "type": "file",
                "source_type": "base64",
                "data": PDF64,
                "mime_type": "application/pdf",
            },
            Document(PDF),
        ),
        (
            {"type": "audio", "source_type": "base64", "data": WAV64, "mime_type": "audio/wav"},
            Audio(WAV, "audio/wav"),
        ),
        # OpenAI chat-completions parts
        (
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}},
            Image(PNG, "image/png"),
        ),
        (
            {"type": "image_url", "image_url": {"url": URL, "detail": "low"}},
            Image(url=URL, detail="low"),
        ),
        (
            {"type": "input_audio", "input_audio": {"data": WAV64, "format": "wav"}},
            Audio(WAV, "audio/wav"),
        ),
        (
            {
                "type": "file",
                "file": {"filename": "c.pdf", "file_data": f"data:application/pdf;base64,{PDF64}"},
            },
            Document(PDF, name="c.pdf"),
        ),
        # ChatAnthropic's native blocks
        (
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG64},
                "cache_control": {"type": "ephemeral"},
            },
            Image(PNG, "image/png", cache_control={"type": "ephemeral"}),
        ),
        ({"type": "image", "source": {"type": "url", "url": URL}}, Image(url=URL)),
        (
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF64},
                "title": "d.pdf",
            },
            Document(PDF, name="d.pdf"),
        ),
        (
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "plain words"},
            },
            Document(b"plain words", "text/plain"),
        ),
        (
            {"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}},
            Text("cached", {"type": "ephemeral"}),
        ),
    ],
)
def test_every_media_form_becomes_its_part(block: dict[str, Any], expected: object) -> None:
    assert _one(block) == expected


def test_media_in_a_tool_result_and_plain_text_stays_a_str() -> None:
    out = to_messages(
        [
            ToolMessage(
                [{"type": "image", "base64": PNG64, "mime_type": "image/png"}],
                tool_call_id="1",
                name="shot",
            ),
            ToolMessage(
                content_blocks=[{"type": "file", "base64": PDF64, "mime_type": "application/pdf"}],
                tool_call_id="2",
            ),
            HumanMessage([{"type": "text", "text": "a"}, "b"]),
        ]
    )
    assert out[0] == Message("tool", (Image(PNG, "image/png"),), tool_call_id="1", name="shot")
    assert out[1].content == (Document(PDF),)
    assert out[2] == Message("user", "ab")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (HumanMessage([{"type": "image", "file_id": "file-1"}]), "file id"),
        (HumanMessage([{"type": "file", "source_type": "id", "id": "f"}]), "file id"),
        (HumanMessage([{"type": "file", "file": {"file_id": "file-1"}}]), "file_id"),
        (
            HumanMessage([{"type": "document", "source": {"type": "file", "file_id": "f"}}]),
            "file_id",
        ),
        (HumanMessage([{"type": "video", "url": "https://x/v.mp4"}]), "'video'"),
        (HumanMessage([{"type": "mystery"}]), "unknown content block type 'mystery'"),
        (HumanMessage([{"type": "image", "base64": PNG64}]), "mime_type"),
        (HumanMessage([{"type": "image", "base64": "%%%", "mime_type": "image/png"}]), "base64"),
        (HumanMessage([{"type": "thinking", "thinking": "x"}]), "assistant message only"),
        (SystemMessage([{"type": "image", "url": URL}]), r"messages\[0\]: .*Image"),
    ],
)
def test_content_no_route_can_take_raises_naming_it(message: BaseMessage, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        to_messages([message])


def test_chat_anthropic_thinking_history_is_anthropic_reasoning() -> None:
    history = AIMessage(
        [
            {"type": "thinking", "thinking": "Let me see.", "signature": "sig-1", "index": 0},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Calling.", "index": 1},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ],
        tool_calls=[{"name": "f", "args": {}, "id": "t1", "type": "tool_call"}],
    )
    assert to_messages([history])[0] == Message(
        "assistant",
        (
            Reasoning("Let me see.", "sig-1", "anthropic"),
            Reasoning(signature="opaque", family="anthropic", redacted=True),
            Text("Calling."),
        ),
        tool_calls=(ToolCall("t1", "f", {}),),
    )


def test_chat_google_genai_history_is_gemini_reasoning_and_signed_calls() -> None:
    history = AIMessage(
        [
            {"type": "thinking", "thinking": "Plan.", "signature": "c2lnLTE="},
            {"type": "text", "text": "Sure.", "extras": {"signature": "c2lnLTI="}},
        ],
        tool_calls=[{"name": "f", "args": {"a": 1}, "id": "t1", "type": "tool_call"}],
        additional_kwargs={"__gemini_function_call_thought_signatures__": {"t1": "c2lnLTM="}},
        response_metadata={"model_provider": "google_genai"},
    )
    assert to_messages([history])[0] == Message(
        "assistant",
        (
            Reasoning("Plan.", "c2lnLTE=", "gemini"),
            Reasoning("", "c2lnLTI=", "gemini"),
            Text("Sure."),
        ),
        tool_calls=(ToolCall("t1", "f", {"a": 1}, signature="c2lnLTM=", family="gemini"),),
    )
    # Without model_provider, Gemini's signature forms still name the family.
    bare = history.model_copy(update={"response_metadata": {}})
    assert to_messages([bare])[0] == to_messages([history])[0]


def test_v1_reasoning_blocks_and_wrapped_redacted_thinking() -> None:
    history = AIMessage(
        [
            {"type": "reasoning", "reasoning": "Hmm.", "extras": {"signature": "s1"}},
            {"type": "non_standard", "value": {"type": "redacted_thinking", "data": "r1"}},
            {"type": "text", "text": "ok"},
        ],
        response_metadata={"output_version": "v1", "model_provider": "anthropic"},
    )
    assert to_messages([history])[0].content == (
        Reasoning("Hmm.", "s1", "anthropic"),
        Reasoning(signature="r1", family="anthropic", redacted=True),
        Text("ok"),
    )


def _reply(kind: str, **fields: Any) -> ChatResponse:
    return ChatResponse(provider=kind, model="m", **{"content": "", **fields})


def test_a_reply_with_reasoning_is_chat_anthropics_list_and_round_trips() -> None:
    reply = _reply(
        "anthropic",
        content="Four.",
        reasoning=(
            Reasoning("2+2", "sig-a", "anthropic"),
            Reasoning(signature="red", family="anthropic", redacted=True),
        ),
        usage=Usage(10, 7, cached_input_tokens=4, cache_write_tokens=2, reasoning_tokens=5),
    )
    message = to_ai_message(reply, "anthropic")
    assert message.content == [
        {"type": "thinking", "thinking": "2+2", "signature": "sig-a"},
        {"type": "redacted_thinking", "data": "red"},
        {"type": "text", "text": "Four."},
    ]
    assert message.usage_metadata == {
        "input_tokens": 10,
        "output_tokens": 7,
        "total_tokens": 17,
        "input_token_details": {"cache_read": 4, "cache_creation": 2},
        "output_token_details": {"reasoning": 5},
    }
    assert to_messages([message]) == [reply.message]
    # LangChain's own reading of the blocks: reasoning, then text.
    assert [b["type"] for b in message.content_blocks][-1] == "text"


def test_a_gemini_reply_round_trips_its_signatures() -> None:
    reply = _reply(
        "gemini",
        content="Calling f.",
        reasoning=(Reasoning("thought", "Z2VtLTE=", "gemini"), Reasoning("", "Z2VtLTI=", "gemini")),
        tool_calls=(ToolCall("c1", "f", {"x": 1}, signature="Z2VtLTM=", family="gemini"),),
    )
    message = to_ai_message(reply, "gemini")
    assert message.additional_kwargs["__gemini_function_call_thought_signatures__"] == {
        "c1": "Z2VtLTM="
    }
    assert message.response_metadata["model_provider"] == "google_genai"
    assert to_messages([message]) == [reply.message]
    assert [b["type"] for b in message.content_blocks] == [
        "reasoning",
        "reasoning",
        "text",
        "tool_call",
    ]


def test_a_reply_without_reasoning_is_a_str_with_its_refusal_aside() -> None:
    message = to_ai_message(_reply("openai", content="hi"), "openai")
    assert message.content == "hi"
    assert "model_provider" not in message.response_metadata
    refused = to_ai_message(_reply("openai", refusal="no", finish_reason="refusal"), "openai")
    assert (refused.content, refused.additional_kwargs) == ("", {"refusal": "no"})


def _streamed(kind: str, chunks: list[ChatChunk]) -> AIMessageChunk:
    tally = StreamTally([Provider(kind, "m", name=kind, api_key="k")])  # type: ignore[arg-type]
    out = [c for c in (tally.chunk(ch) for ch in chunks) if c is not None] + [tally.last()]
    merged = out[0].message
    for piece in out[1:]:
        merged = merged + piece.message
    assert isinstance(merged, AIMessageChunk)
    return merged


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_streamed_blocks_merge_into_the_invoke_blocks(kind: str) -> None:
    pieces = [
        Reasoning("Let ", family=kind),
        Reasoning("me think.", family=kind),
        Reasoning("", "sig-1", kind),
        Reasoning("More.", "sig-2", kind),
    ]
    call = ToolCall("c1", "f", {"a": 1}, signature="sig-3" if kind == "gemini" else None,
                    family=kind if kind == "gemini" else None)  # fmt: skip
    chunks = [
        ChatChunk(provider=kind, model="m"),  # the stream's opening, empty
        ChatChunk(reasoning=tuple(pieces[:2])),
        ChatChunk(reasoning=(pieces[2],)),
        ChatChunk(delta="Hel", reasoning=(pieces[3],)),
        ChatChunk(delta="lo"),
        ChatChunk(tool_calls=(call,), finish_reason="tool_calls", usage=Usage(3, 9, 1, 0, 6)),
    ]
    merged = _streamed(kind, chunks)
    reply = _reply(
        kind,
        content="Hello",
        reasoning=join_reasoning(pieces),
        tool_calls=(call,),
        usage=Usage(3, 9, 1, 0, 6),
    )
    invoked = to_ai_message(reply, kind)
    strip = [{k: v for k, v in b.items() if k != "index"} for b in merged.content]  # type: ignore[union-attr]
    assert strip == invoked.content
    indices = [b["index"] for b in merged.content]  # type: ignore[index]
    assert indices == ([0, 1, 2] if kind == "anthropic" else [0, 1, 2, 3])
    assert merged.additional_kwargs == invoked.additional_kwargs
    assert merged.usage_metadata == invoked.usage_metadata
    assert to_messages([merged]) == [reply.message]


def test_a_stream_without_reasoning_stays_a_str() -> None:
    merged = _streamed("openai", [ChatChunk(), ChatChunk(delta="a"), ChatChunk(delta="b")])
    assert merged.content == "ab"


def test_openai_protocol_reasoning_content_is_kept_as_chat_deepseek_keeps_it() -> None:
    reply = _reply("openai", content="42.", reasoning=(Reasoning("Adding up.", family="openai"),))
    message = to_ai_message(reply, "openai")
    assert message.content == "42."
    assert message.additional_kwargs == {"reasoning_content": "Adding up."}
    assert message.content_blocks[0] == {"type": "reasoning", "reasoning": "Adding up."}
    assert to_messages([message]) == [reply.message]
    pieces = (Reasoning("Adding ", family="openai"), Reasoning("up.", family="openai"))
    merged = _streamed(
        "openai", [ChatChunk(reasoning=pieces[:1]), ChatChunk(reasoning=pieces[1:], delta="42.")]
    )
    assert (merged.content, merged.additional_kwargs) == ("42.", message.additional_kwargs)


def test_chat_anthropic_native_tool_use_and_tool_result_blocks() -> None:
    out = to_messages(
        [
            AIMessage(
                [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "u1", "name": "pick", "input": {"c": "red"}},
                ]
            ),
            HumanMessage(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "u1",
                        "content": [{"type": "text", "text": "red it is"}, IMAGE_BLOCK],
                    },
                    {"type": "text", "text": "And now?"},
                ]
            ),
        ]
    )
    assert out == [
        Message("assistant", "Let me check.", tool_calls=(ToolCall("u1", "pick", {"c": "red"}),)),
        Message("tool", (Text("red it is"), Image(PNG, "image/png")), tool_call_id="u1"),
        Message("user", "And now?"),
    ]
