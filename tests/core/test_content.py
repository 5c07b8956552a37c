"""The content model: parts, the dict API's OpenAI-style parts, and what a request carries."""

from __future__ import annotations

import base64

import pytest

from resilient_llm import (
    Audio,
    ChatResponse,
    Document,
    Image,
    Message,
    Reasoning,
    ResilientLLM,
    Text,
    ToolCall,
    Usage,
)
from resilient_llm.content import join_reasoning, part_kinds
from resilient_llm.errors import ConfigurationError
from resilient_llm.extras._stored import dump_response, load_response
from resilient_llm.extras.cache import key_material
from resilient_llm.messages import ChatRequest, to_messages
from resilient_llm.policies.capabilities import Capabilities, request_media, unfit_reason
from resilient_llm.policies.tokens import estimate_tokens
from resilient_llm.providers import Provider

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PDF = b"%PDF-1.4\n" + bytes(range(200))
WAV = b"RIFF" + bytes(100)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_data_url_becomes_bytes_and_mime_type() -> None:
    image = Image(url=f"data:image/png;base64,{_b64(PNG)}")
    assert (image.data, image.mime_type, image.url) == (PNG, "image/png", None)
    assert image.base64 == _b64(PNG)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: Image(), "exactly one of data"),
        (lambda: Image(data=PNG), "mime_type"),
        (lambda: Image(data=_b64(PNG), mime_type="image/png"), "must be bytes"),
        (lambda: Image(data=PNG, mime_type="audio/wav"), "image/"),
        (lambda: Image(url="data:image/png,notbase64"), "base64"),
        (lambda: Image(url="https://x/y.png", detail="ultra"), "detail"),
        (lambda: Audio(data=WAV, mime_type="image/png"), "audio/"),
        (lambda: Reasoning("t", signature="s"), "family"),
        (lambda: Reasoning(redacted=True), "signature"),
        (lambda: Text("x", cache_control="ephemeral"), "cache_control"),  # type: ignore[arg-type]
        (lambda: ToolCall("1", "f", {}, signature="s"), "family"),
        (lambda: Message("user", [b"raw"]), r"content\[0\]"),  # type: ignore[list-item]
    ],
)
def test_a_wrong_part_is_named(make: object, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        make()  # type: ignore[operator]


def test_openai_style_parts_convert_to_parts_and_nothing_is_dropped() -> None:
    (message,) = to_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:", "cache_control": {"type": "ephemeral"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://e.com/a.png", "detail": "low"},
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{_b64(PNG)}"},
                    },
                    {"type": "input_audio", "input_audio": {"data": _b64(WAV), "format": "wav"}},
                    {"type": "file", "file": {"file_data": _b64(PDF), "filename": "a.pdf"}},
                    {
                        "type": "file",
                        "file": {"file_data": f"data:application/pdf;base64,{_b64(PDF)}"},
                    },
                ],
            }
        ]
    )
    assert message.content == (
        Text("Look:", cache_control={"type": "ephemeral"}),
        Image(url="https://e.com/a.png", detail="low"),
        Image(data=PNG, mime_type="image/png"),
        Audio(data=WAV, mime_type="audio/wav"),
        Document(data=PDF, name="a.pdf"),
        Document(data=PDF),
    )
    assert message.text == "Look:"
    assert part_kinds(message.parts) == {"image", "image_url", "audio", "document"}


@pytest.mark.parametrize(
    ("part", "needle"),
    [
        (
            {"type": "video_url", "video_url": {"url": "https://x"}},
            "unknown content part type 'video_url'",
        ),
        ({"text": "no type"}, "unknown content part type None"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, "file_id"),
        ({"type": "input_audio", "input_audio": {"data": _b64(WAV), "format": "flac"}}, "format"),
        ({"type": "input_audio", "input_audio": {"data": "!!", "format": "wav"}}, "base64"),
        ({"type": "image_url", "image_url": {}}, "image_url"),
    ],
)
def test_a_part_the_dict_api_cannot_take_raises_naming_it(
    part: dict[str, object], needle: str
) -> None:
    with pytest.raises(ConfigurationError, match=needle) as caught:
        to_messages([{"role": "user", "content": ["ok", part]}])
    assert "messages[0].content[1]" in str(caught.value)


def test_an_engine_refuses_an_unknown_part_before_any_call() -> None:
    llm = ResilientLLM([Provider("openai", model="gpt-4o-mini", api_key="sk-test")])
    with pytest.raises(ConfigurationError, match="video"):
        llm.request([{"role": "user", "content": [{"type": "video", "video": {}}]}])


def test_streamed_reasoning_pieces_join_into_blocks() -> None:
    pieces = [
        Reasoning("Let me ", family="anthropic"),
        Reasoning("think.", family="anthropic"),
        Reasoning("", "sig-1", "anthropic"),
        Reasoning(signature="opaque", family="anthropic", redacted=True),
        Reasoning("Gemini thought", "sig-2", "gemini"),
        Reasoning("unsigned tail", family="openai"),
    ]
    assert join_reasoning(pieces) == (
        Reasoning("Let me think.", "sig-1", "anthropic"),
        Reasoning(signature="opaque", family="anthropic", redacted=True),
        Reasoning("Gemini thought", "sig-2", "gemini"),
        Reasoning("unsigned tail", family="openai"),
    )


def test_a_reply_becomes_the_assistant_turn_to_send_back() -> None:
    call = ToolCall("c1", "lookup", {"q": "x"}, signature="c2ln", family="gemini")
    thought = Reasoning("why", "sig", "gemini")
    reply = ChatResponse("Answer", "g", "gemini-3-pro", tool_calls=(call,), reasoning=(thought,))
    assert reply.message == Message("assistant", (thought, Text("Answer")), tool_calls=(call,))
    plain = ChatResponse("Hi", "o", "gpt-4o-mini")
    assert plain.message == Message("assistant", "Hi")


def test_a_stored_reply_keeps_reasoning_signatures_and_usage_details() -> None:
    reply = ChatResponse(
        "A",
        "p",
        "m",
        tool_calls=(ToolCall("1", "f", {"a": 1}, signature="s", family="gemini"),),
        usage=Usage(100, 20, cached_input_tokens=60, cache_write_tokens=5, reasoning_tokens=12),
        reasoning=(
            Reasoning("t", "sig", "anthropic"),
            Reasoning(signature="d", family="anthropic", redacted=True),
        ),
    )
    assert load_response(dump_response(reply)) == reply


def test_the_cache_key_tells_media_and_parameters_apart() -> None:
    provider = Provider("openai", model="gpt-4o-mini", api_key="sk-test")

    def key(**changes: object) -> str | None:
        content = changes.pop(
            "content", (Text("What is this?"), Image(data=PNG, mime_type="image/png"))
        )
        request = ChatRequest((Message("user", content),), **changes)  # type: ignore[arg-type]
        return key_material(request, [provider])

    base = key()
    assert base is not None
    assert _b64(PNG) not in base
    other_image = (Text("What is this?"), Image(data=PNG + b"!", mime_type="image/png"))
    for changed in (
        key(content=other_image),
        key(top_p=0.5),
        key(seed=3),
        key(reasoning_effort="high"),
        key(parallel_tool_calls=False),
        key(provider_options={"anthropic": {"top_k": 5}}),
    ):
        assert changed != base


def test_media_are_counted_in_the_estimate_and_routes_that_cannot_take_them_are_unfit() -> None:
    text_only = ChatRequest((Message("user", "What is this?"),))
    with_image = ChatRequest(
        (Message("user", ("What is this?", Image(data=PNG, mime_type="image/png"))),)
    )
    with_audio = ChatRequest(
        (Message("user", ("Transcribe", Audio(data=WAV * 500, mime_type="audio/wav"))),)
    )
    assert estimate_tokens(with_image) > estimate_tokens(text_only) + 1000
    assert estimate_tokens(with_audio) > estimate_tokens(text_only)
    assert request_media(with_image) == {"image"}
    blind = Capabilities(images=False)
    unfit = unfit_reason(blind, with_image, estimate_tokens(with_image))
    assert unfit is not None
    assert "images" in unfit.reason
    assert unfit_reason(Capabilities.for_model("gpt-4o-mini"), with_audio, 10) is not None
    assert unfit_reason(Capabilities.for_model("gemini-2.5-flash"), with_audio, 10) is None
    assert unfit_reason(Capabilities(), with_audio, 10) is None  # unknown: never skipped


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("top_p", 1.5, "top_p"),
        ("seed", 1.5, "seed"),
        ("seed", True, "seed"),
        ("parallel_tool_calls", "yes", "parallel_tool_calls"),
        ("reasoning_effort", "max", "reasoning_effort"),
        ("provider_options", {"anthropic": 3}, "provider_options"),
        ("provider_options", {"gemini": {"x": float("nan")}}, "provider_options"),
    ],
)
def test_request_parameters_are_checked(field: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        ChatRequest((Message("user", "hi"),), **{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "part"),
    [
        ("system", Image(url="https://e.com/a.png")),
        ("assistant", Audio(data=WAV, mime_type="audio/wav")),
        ("user", Reasoning("I think", "sig", "anthropic")),
        ("tool", Reasoning("I think")),
    ],
)
def test_a_part_its_role_cannot_hold_is_refused(role: str, part: object) -> None:
    extra = {"tool_call_id": "c1"} if role == "tool" else {}
    with pytest.raises(ConfigurationError, match=rf"a '{role}' message takes"):
        Message(role, ("text", part), **extra)  # type: ignore[arg-type]


def test_the_capabilities_every_route_shares() -> None:
    gpt, claude = Capabilities.for_model("gpt-4o"), Capabilities.for_model("claude-sonnet-4-5")
    common = Capabilities.common([gpt, claude, Capabilities.for_model("gemini-2.5-flash")])
    assert (common.context_window, common.max_output) == (128_000, 16_384)
    assert (common.images, common.documents, common.audio, common.tools) == (
        True,
        True,
        False,
        True,
    )
    assert common.reasoning is False  # gpt-4o does not reason
    unknown = Capabilities.common([gpt, Capabilities()])
    assert (unknown.context_window, unknown.images, unknown.audio) == (None, None, False)
    assert Capabilities.common([]) == Capabilities()


def test_a_gemini_signature_piece_stays_its_own_block() -> None:
    pieces = [
        Reasoning("Thinking ", family="gemini"),
        Reasoning("about it.", family="gemini"),
        Reasoning("", "c2ln", "gemini"),  # the signature of the text part that followed
    ]
    assert join_reasoning(pieces) == (
        Reasoning("Thinking about it.", family="gemini"),
        Reasoning("", "c2ln", "gemini"),
    )
