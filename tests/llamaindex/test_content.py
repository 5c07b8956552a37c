"""LlamaIndex content blocks in, reasoning and usage out: the pure converters.

Media keep their exact bytes and mime type; signatures are read and written where
llama-index-llms-anthropic and -google-genai keep them, so a reply fed back as history
gives the engine the very message it answered with.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    CitableBlock,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from llamaindex_resilient._convert import to_messages
from llamaindex_resilient._reply import StreamState, to_chat_response
from resilient_llm import (
    Audio,
    ChatChunk,
    ChatResponse,
    ConfigurationError,
    Document,
    Image,
    Message,
    Reasoning,
    Text,
    ToolCall,
    Usage,
)

# Not valid base64 (LlamaIndex decodes bytes that are), as real media never are.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01" + bytes(range(256))
PDF = b"%PDF-1.4\n\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00" + bytes(range(200, 256))


def _user(*blocks: object, **extra: object) -> Message:
    (message,) = to_messages(
        [ChatMessage(role="user", blocks=list(blocks), additional_kwargs=extra)]
    )
    return message


def test_media_blocks_become_parts_with_their_exact_bytes(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(PDF)
    message = _user(
        TextBlock(text="What is in these?"),
        ImageBlock(image=PNG, detail="high"),
        DocumentBlock(path=path),
        DocumentBlock(data=PDF, title="report.pdf"),
        AudioBlock(audio=WAV, format="wav"),
    )
    assert message.content == (
        Text("What is in these?"),
        Image(data=PNG, mime_type="image/png", detail="high"),
        Document(data=PDF, mime_type="application/pdf", name="scan.pdf"),
        Document(data=PDF, mime_type="application/pdf", name="report.pdf"),
        Audio(data=WAV, mime_type="audio/wav"),
    )
    assert message.content[1].data == PNG


def test_urls_stay_urls_and_data_urls_become_bytes() -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    message = _user(
        ImageBlock(url="https://example.org/cat.png"),
        ImageBlock(url=data_url),
        DocumentBlock(url="https://example.org/a.pdf"),
    )
    assert message.content == (
        Image(url="https://example.org/cat.png", mime_type="image/png"),
        Image(data=PNG, mime_type="image/png"),
        Document(url="https://example.org/a.pdf", mime_type="application/pdf"),
    )


def test_a_text_only_message_stays_one_string() -> None:
    assert _user(TextBlock(text="a"), TextBlock(text="b")).content == "a\nb"


def test_cache_points_mark_the_part_before_them() -> None:
    marker = CacheControl(type="ephemeral", ttl="1h")
    message = _user(
        TextBlock(text="long context"),
        ImageBlock(image=PNG),
        CachePoint(cache_control=marker),
        TextBlock(text="question"),
    )
    assert message.content == (
        Text("long context"),
        Image(data=PNG, mime_type="image/png", cache_control={"type": "ephemeral", "ttl": "1h"}),
        Text("question"),
    )
    with pytest.raises(ConfigurationError, match=r"blocks\[0\]: a CachePoint must follow"):
        _user(CachePoint(cache_control=marker), TextBlock(text="x"))
    with pytest.raises(ConfigurationError, match="after a Audio part"):
        _user(AudioBlock(audio=WAV, format="wav"), CachePoint(cache_control=marker))


def test_a_message_cache_control_marks_each_part() -> None:
    # llama-index-llms-anthropic's cache_idx sets it on whole messages.
    message = _user(TextBlock(text="a"), cache_control={"type": "ephemeral"})
    assert message.content == (Text("a", cache_control={"type": "ephemeral"}),)


def test_tool_results_carry_media() -> None:
    (message,) = to_messages(
        [
            ChatMessage(
                role=MessageRole.TOOL,
                blocks=[TextBlock(text="the chart:"), ImageBlock(image=PNG)],
                additional_kwargs={"tool_call_id": "c1"},
            )
        ]
    )
    assert message == Message(
        "tool", (Text("the chart:"), Image(data=PNG, mime_type="image/png")), tool_call_id="c1"
    )


@pytest.mark.parametrize(
    ("block", "name"),
    [
        (CitableBlock(content=[TextBlock(text="x")], title="t", source="s"), "CitableBlock"),
    ],
)
def test_other_blocks_raise_naming_them(block: object, name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"blocks\[1\] is a {name}"):
        _user(TextBlock(text="x"), block)


def test_unreadable_media_raise_naming_the_block(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"blocks\[0\]: AudioBlock needs format"):
        _user(AudioBlock(audio=b"\x00\x01\xff"))
    with pytest.raises(ConfigurationError, match=r"blocks\[0\]: Image.detail"):
        _user(ImageBlock(image=PNG, detail="ultra"))


def test_thinking_blocks_of_each_integration() -> None:
    gemini_sig = b"\x12\x34opaque\xff"
    (message,) = to_messages(
        [
            ChatMessage(
                role="assistant",
                blocks=[
                    # llama-index-llms-anthropic: the SDK block's dump minus its text
                    ThinkingBlock(
                        content="plan",
                        additional_information={"type": "thinking", "signature": "s1"},
                    ),
                    ThinkingBlock(
                        content="",
                        additional_information={"type": "redacted_thinking", "data": "r1"},
                    ),
                    # llama-index-llms-google-genai: the SDK part's dump (bytes signature)
                    ThinkingBlock(
                        content="hmm",
                        additional_information={"thought": True, "thought_signature": gemini_sig},
                    ),
                    ThinkingBlock(content="no signature"),
                    TextBlock(text="answer"),
                ],
            )
        ]
    )
    assert message.content == (
        Reasoning("plan", "s1", "anthropic"),
        Reasoning("", "r1", "anthropic", redacted=True),
        Reasoning("hmm", base64.b64encode(gemini_sig).decode(), "gemini"),
        Reasoning("no signature"),
        Text("answer"),
    )


def test_gemini_signatures_aligned_with_blocks() -> None:
    (message,) = to_messages(
        [
            ChatMessage(
                role="assistant",
                blocks=[
                    TextBlock(text="calling"),
                    ToolCallBlock(tool_call_id="f", tool_name="f", tool_kwargs={"x": 1}),
                ],
                additional_kwargs={"thought_signatures": ["t-sig", "c-sig"]},
            )
        ]
    )
    assert message.content == (Reasoning("", "t-sig", "gemini"), Text("calling"))
    assert message.tool_calls == (ToolCall("f", "f", {"x": 1}, signature="c-sig", family="gemini"),)


def test_a_thinking_block_outside_an_assistant_message_raises() -> None:
    with pytest.raises(ConfigurationError, match="belongs in an assistant message"):
        _user(ThinkingBlock(content="x", additional_information={"signature": "s"}))


REPLY = ChatResponse(
    content="It is 42.",
    provider="p",
    model="m",
    reasoning=(
        Reasoning("first", "sig-a", "anthropic"),
        Reasoning("", "red", "anthropic", redacted=True),
    ),
    tool_calls=(ToolCall("c1", "multiply", {"a": 6, "b": 7}),),
    usage=Usage(100, 30, cached_input_tokens=60, cache_write_tokens=10, reasoning_tokens=20),
)
GEMINI_REPLY = ChatResponse(
    content="",
    provider="g",
    model="gemini-3-pro",
    reasoning=(Reasoning("thought", "g-sig", "gemini"),),
    tool_calls=(
        ToolCall("c1", "f", {}, signature="call-sig", family="gemini"),
        ToolCall("c2", "g", {}),
    ),
)


@pytest.mark.parametrize("reply", [REPLY, GEMINI_REPLY], ids=["anthropic", "gemini"])
def test_a_reply_fed_back_as_history_is_the_same_message(reply: ChatResponse) -> None:
    response = to_chat_response(reply)
    assert [type(b).__name__ for b in response.message.blocks][: len(reply.reasoning)] == [
        "ThinkingBlock"
    ] * len(reply.reasoning)
    (back,) = to_messages([response.message.model_copy(deep=True)])
    assert back == reply.message


def test_reply_blocks_keep_signatures_as_the_integrations_do() -> None:
    blocks = to_chat_response(REPLY).message.blocks
    assert [b.additional_information for b in blocks[:2]] == [  # type: ignore[union-attr]
        {"type": "thinking", "signature": "sig-a", "family": "anthropic"},
        # the reply's thought tokens on its last thinking block, as google-genai does
        {
            "type": "redacted_thinking",
            "data": "red",
            "family": "anthropic",
            "total_thinking_tokens": 20,
        },
    ]
    message = to_chat_response(GEMINI_REPLY).message
    assert message.blocks[0].additional_information == {  # type: ignore[union-attr]
        "thought": True,
        "thought_signature": "g-sig",
        "family": "gemini",
    }
    assert message.additional_kwargs["thought_signatures"] == [None, "call-sig", None]


def test_usage_details() -> None:
    response = to_chat_response(REPLY)
    assert response.additional_kwargs == {
        "prompt_tokens": 100,
        "completion_tokens": 30,
        "total_tokens": 130,
        "cached_tokens": 60,
        "cache_write_tokens": 10,
        "reasoning_tokens": 20,
    }
    usage = response.raw["usage"]  # type: ignore[index]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 60}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 20}
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (60, 10)


def test_stream_chunks_carry_thinking_deltas_and_whole_blocks() -> None:
    state = StreamState()
    chunks = [
        ChatChunk(reasoning=(Reasoning("Let me ", family="anthropic"),)),
        ChatChunk(reasoning=(Reasoning("think.", family="anthropic"),)),
        ChatChunk(reasoning=(Reasoning("", "sig-s", "anthropic"),)),
        ChatChunk(delta="Done."),
        ChatChunk(usage=Usage(5, 7, reasoning_tokens=3), finish_reason="stop"),
    ]
    responses = [state.chat(c) for c in chunks]
    assert [r.additional_kwargs.get("thinking_delta") for r in responses] == [
        "Let me ",
        "think.",
        None,
        None,
        None,
    ]
    assert [r.delta for r in responses] == ["", "", "", "Done.", ""]
    last = responses[-1].message
    thinking = last.blocks[0]
    assert isinstance(thinking, ThinkingBlock)
    assert (thinking.content, thinking.additional_information["signature"]) == (
        "Let me think.",
        "sig-s",
    )
    assert thinking.num_tokens == 3
    (back,) = to_messages([last])
    assert back == Message(
        "assistant", (Reasoning("Let me think.", "sig-s", "anthropic"), Text("Done."))
    )
