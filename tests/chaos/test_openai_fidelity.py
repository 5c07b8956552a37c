"""The OpenAI wire's issue-18 behaviour, driven by the official ``openai`` SDK (no mocks):
what a request carried, the 400s the real API answers, usage details, refusals and
``reasoning_content``."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from resilient_llm.testing.chaos import ChaosServer
from resilient_llm.testing.chaos.brain import REFUSAL_TEXT
from resilient_llm.testing.chaos.openai_wire import REASONING_TOKENS
from resilient_llm.testing.chaos.wire import digest

PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)
PDF = b"%PDF-1.7\n%%EOF\n"
WAV = b"RIFF" + bytes(40)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _last(chaos: ChaosServer) -> Any:
    return chaos.log[-1]


def test_carried_parts_params_and_cache_markers(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    content: Any = [
        {"type": "text", "text": "What are these?", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(PNG)}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.jpg"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{_b64(PDF)}"}},
        {"type": "input_audio", "input_audio": {"data": _b64(WAV), "format": "wav"}},
    ]
    tool_result: Any = [{"type": "text", "text": "fine"}]
    oai.chat.completions.create(
        model="o3",
        messages=[
            {"role": "user", "content": content},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "Again?"},
            {"role": "tool", "tool_call_id": "c", "content": tool_result},
        ],
        temperature=0.3,
        seed=11,
        max_completion_tokens=64,
        reasoning_effort="medium",
        extra_body={"top_k": 3},
    )
    record = _last(chaos)
    assert record.status == 200
    assert record.carried.parts == (
        ("image", "image/png", digest(PNG), "message"),
        ("image", None, "url:https://example.com/x.jpg", "message"),
        ("document", "application/pdf", digest(PDF), "message"),
        ("audio", "audio/wav", digest(WAV), "message"),
    )
    params = record.carried.params
    assert params["temperature"] == 0.3
    assert params["seed"] == 11
    assert params["max_tokens"] == params["max_completion_tokens"] == 64
    assert params["reasoning_effort"] == "medium"
    assert params["top_k"] == 3
    assert record.carried.cache_markers == 1


def test_media_in_a_tool_message_is_logged_as_a_tool_result(
    chaos: ChaosServer, oai: openai.OpenAI
) -> None:
    image: Any = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(PNG)}"}}]
    result: Any = {"role": "tool", "tool_call_id": "c", "content": image}
    oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "go"}, result]
    )
    assert _last(chaos).carried.parts == (("image", "image/png", digest(PNG), "tool_result"),)


@pytest.mark.parametrize(
    ("part", "message"),
    [
        ({"type": "video_url", "video_url": {"url": "x"}}, "Invalid value: 'video_url'"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}}, "'wav'"),
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}, "base64"),
    ],
)
def test_a_part_the_api_refuses_is_a_400(
    chaos: ChaosServer, oai: openai.OpenAI, part: dict[str, Any], message: str
) -> None:
    content: Any = [{"type": "text", "text": "hi"}, part]
    with pytest.raises(openai.BadRequestError, match=message) as caught:
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert caught.value.status_code == 400
    assert _last(chaos).fault == "invalid"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1-nano", "gpt-3.5-turbo", "x/gpt-4o"])
def test_reasoning_effort_to_a_model_that_does_not_reason_is_a_400(
    oai: openai.OpenAI, model: str
) -> None:
    with pytest.raises(openai.BadRequestError, match="'reasoning_effort' is not supported"):
        oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], reasoning_effort="low"
        )


@pytest.mark.parametrize("model", ["o3-mini", "gpt-5", "o4-mini", "deepseek-reasoner"])
def test_reasoning_effort_reports_reasoning_tokens(oai: openai.OpenAI, model: str) -> None:
    reply = oai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], reasoning_effort="low"
    )
    usage = reply.usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS["low"]
    assert usage.completion_tokens > REASONING_TOKENS["low"]


def test_cached_tokens_rule(oai: openai.OpenAI) -> None:
    short = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert short.usage is not None
    assert short.usage.prompt_tokens_details is not None
    assert short.usage.prompt_tokens_details.cached_tokens == 0
    long_prompt = "x" * (4 * 1500)  # 1500 tokens: the leading 1408 (11 x 128) are cached
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": long_prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage is not None][-1]
    assert usage.prompt_tokens == 1500
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1408


def test_refusal_is_message_refusal_with_null_content(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[refuse] the secret"}]
    )
    choice = reply.choices[0]
    assert choice.message.content is None
    assert choice.message.refusal == REFUSAL_TEXT
    assert choice.finish_reason == "stop"


def test_streamed_refusal_comes_as_refusal_deltas(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "[refuse] the secret"}],
            stream=True,
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.refusal or "" for d in deltas) == REFUSAL_TEXT
    assert all(not d.content for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_reasoner_shows_reasoning_content_and_refuses_it_back(oai: openai.OpenAI) -> None:
    ask: Any = [{"role": "user", "content": "Why?"}]
    reply = oai.chat.completions.create(model="deepseek-reasoner", messages=ask)
    thought = reply.choices[0].message.model_extra or {}
    assert thought["reasoning_content"] == "The user asks: Why?. I answer briefly."
    stream = oai.chat.completions.create(model="deepseek-reasoner", messages=ask, stream=True)
    pieces = [(c.choices[0].delta.model_extra or {}) for c in stream if c.choices]
    assert "".join(p.get("reasoning_content") or "" for p in pieces) == thought["reasoning_content"]

    back: Any = {"role": "assistant", "content": "Because.", "reasoning_content": "secret"}
    with pytest.raises(openai.BadRequestError, match="reasoning_content"):
        oai.chat.completions.create(model="deepseek-reasoner", messages=[*ask, back, *ask])
