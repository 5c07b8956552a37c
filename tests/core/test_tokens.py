"""Token estimation: offline tiktoken from package data, the calibrated heuristic, and the
promise that an estimate never raises and is always an ``int >= 1``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import statistics
import threading
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_llm.messages import ChatRequest, Message, Tool, ToolCall
from resilient_llm.policies import tokens
from resilient_llm.policies.tokens import (
    DEFAULT_OUTPUT_RESERVE,
    count_text_tokens,
    encoding_for_model,
    estimate_tokens,
    within,
)

CORPUS: dict[str, list[str]] = json.loads(
    (Path(__file__).parent / "data" / "token_corpus.json").read_text(encoding="utf-8")
)
CJK_HELLO = "你好\uff0c世界"  # with a fullwidth comma
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300) | st.text(
    st.characters(categories=["Cs", "Lo", "So", "Nd", "Po", "Zs", "Cc"]), max_size=300
)  # every category, and a mix dense in lone surrogates, CJK and emoji


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget loaded encodings for this test only, so it exercises the loader."""
    monkeypatch.setattr(tokens, "_LOADED", {})


def test_exported_names() -> None:
    assert sorted(tokens.__all__) == [
        "DEFAULT_OUTPUT_RESERVE",
        "count_text_tokens",
        "encoding_for_model",
        "estimate_tokens",
        "preload",
        "reserved_output",
        "usage_ceiling",
        "within",
    ]
    assert DEFAULT_OUTPUT_RESERVE == 1024


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_bpe_files_ship_as_package_data_with_tiktokens_hash(name: str) -> None:
    data = (files("resilient_llm") / "_bpe" / f"{name}.tiktoken").read_bytes()
    assert hashlib.sha256(data).hexdigest() == tokens._SPECS[name][0]


@pytest.mark.parametrize(
    ("model", "text", "ids"),
    [
        ("gpt-4o", "hello world", [24912, 2375]),
        ("gpt-4o", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
        ("gpt-4o", CJK_HELLO, [177519, 979, 28428]),
        ("gpt-4", "hello world", [15339, 1917]),
        ("gpt-4", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
        ("gpt-4", CJK_HELLO, [57668, 53901, 3922, 3574, 244, 98220]),
    ],
)
def test_openai_models_count_exactly_from_package_data(
    model: str, text: str, ids: list[int]
) -> None:
    name = encoding_for_model(model)
    assert name is not None
    encoding = tokens._encoding(name)
    assert encoding is not None
    assert encoding.encode_ordinary(text) == ids  # the ids pin which file was loaded
    assert count_text_tokens(text, model) == len(ids)


def test_loading_never_touches_tiktokens_registry_or_downloader(
    fresh_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tiktoken's downloading path was used")

    monkeypatch.setattr(tiktoken, "get_encoding", forbidden)
    monkeypatch.setattr(tiktoken.registry, "get_encoding", forbidden)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", forbidden)
    monkeypatch.setattr(tiktoken.load, "load_tiktoken_bpe", forbidden)
    before = dict(tiktoken.registry.ENCODINGS)
    assert count_text_tokens("hello world", "gpt-4o") == 2
    assert count_text_tokens("hello world", "gpt-3.5-turbo") == 2
    assert before == tiktoken.registry.ENCODINGS


def test_each_encoding_loads_once_across_threads(
    fresh_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = tokens._load_encoding

    def counting(name: str, path: Any = None) -> Any:
        calls.append(name)
        return real(name, path)

    monkeypatch.setattr(tokens, "_load_encoding", counting)
    threads = [
        threading.Thread(target=count_text_tokens, args=("hi there", "gpt-4o")) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["o200k_base"]


def _corrupt_copy(tmp_path: Path, name: str) -> Path:
    data = bytearray((files("resilient_llm") / "_bpe" / f"{name}.tiktoken").read_bytes())
    data[100] ^= 1
    path = tmp_path / f"{name}.tiktoken"
    path.write_bytes(bytes(data))
    return path


def test_loader_rejects_corrupt_or_missing_file_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="resilient_llm"):
        assert tokens._load_encoding("o200k_base", _corrupt_copy(tmp_path, "o200k_base")) is None
        assert tokens._load_encoding("cl100k_base", tmp_path / "missing.tiktoken") is None
    assert "SHA-256 mismatch" in caplog.records[0].getMessage()
    assert len(caplog.records) == 2


def test_corrupt_package_data_falls_back_to_heuristic_and_warns_once(
    tmp_path: Path,
    fresh_cache: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _corrupt_copy(tmp_path, "o200k_base")
    monkeypatch.setattr(tokens, "_BPE_DIR", tmp_path)
    text = "The capital of France is Paris."
    with caplog.at_level(logging.WARNING, logger="resilient_llm"):
        assert count_text_tokens(text, "gpt-4o") == tokens._heuristic_tokens(text)
        assert count_text_tokens(text, "gpt-4o-mini") == tokens._heuristic_tokens(text)
        assert estimate_tokens(text, "gpt-4o") >= 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("OpenAI/GPT-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("claude-haiku-4-5", None),
        ("anthropic/claude-sonnet-4", None),
        ("gemini-2.5-flash", None),
        ("models/gemini-2.5-pro", None),
        ("llama-3.1-70b", None),
        ("", None),
        (None, None),
    ],
)
def test_family_detection(model: str | None, family: str | None) -> None:
    assert encoding_for_model(model) == family


def _request(**kwargs: Any) -> ChatRequest:
    messages = (
        Message("system", "You are terse."),
        Message("user", "What is the capital of France?"),
    )
    return ChatRequest(messages=messages, model="gpt-4o", **kwargs)


WEATHER = Tool(
    "get_weather",
    "Get the current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


def test_openai_estimate_follows_the_chat_format() -> None:
    # 3 per message + content, 3 for the reply priming, then the output reserve.
    expected = (3 + 4) + (3 + 7) + 3 + DEFAULT_OUTPUT_RESERVE
    assert estimate_tokens(_request()) == expected
    assert estimate_tokens(_request(max_tokens=10)) == expected - DEFAULT_OUTPUT_RESERVE + 10


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "claude-haiku-4-5", "gemini-2.5-flash"])
def test_every_component_adds_tokens(model: str) -> None:
    base = estimate_tokens(_request(), model)
    with_tools = estimate_tokens(_request(tools=(WEATHER,)), model)
    with_schema = estimate_tokens(_request(response_schema=SCHEMA), model)
    both = estimate_tokens(_request(tools=(WEATHER,), response_schema=SCHEMA), model)
    assert base < with_tools < both
    assert base < with_schema < both
    assert estimate_tokens(_request(max_tokens=5000), model) == base - 1024 + 5000
    two_tools = (WEATHER, Tool("get_time", "Current time.", {"type": "object"}))
    assert estimate_tokens(_request(tools=two_tools), model) > with_tools


def test_tool_calls_and_tool_results_count() -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Paris", "unit": "celsius"})
    plain = (Message("user", "Weather in Paris?"),)
    turn = (
        *plain,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "18 degrees, sunny", tool_call_id="call_1", name="get_weather"),
    )
    assert estimate_tokens(ChatRequest(turn)) > estimate_tokens(ChatRequest(plain)) + 20


def test_model_defaults_to_the_requests_and_the_argument_overrides_it() -> None:
    text = "断路器模式可以防止应用程序反复尝试执行很可能失败的操作。" * 3
    request = ChatRequest((Message("user", text),), model="gpt-4o")
    unnamed = ChatRequest((Message("user", text),))
    assert estimate_tokens(request) == estimate_tokens(unnamed, "gpt-4o")
    assert estimate_tokens(request, "claude-haiku-4-5") == estimate_tokens(unnamed, "claude-x")
    assert estimate_tokens(request) != estimate_tokens(request, "claude-haiku-4-5")


def test_dicts_sequences_and_strings_are_accepted() -> None:
    dicts: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
    ]
    neutral = [
        Message("system", "You are terse."),
        Message("user", "What is the capital of France?"),
    ]
    assert estimate_tokens(dicts, "gpt-4o") == estimate_tokens(neutral, "gpt-4o")
    assert estimate_tokens(dicts, "gpt-4o") == estimate_tokens(_request())
    one = estimate_tokens("What is the capital of France?", "gpt-4o")
    assert one == 3 + 7 + 3 + DEFAULT_OUTPUT_RESERVE
    with_call: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "w", "arguments": '{"city":"P"}'}}],
        },
    ]
    assert estimate_tokens(with_call) > estimate_tokens(with_call[:1])


def _unchecked(messages: tuple[Message, ...], **fields: Any) -> ChatRequest:
    """A ChatRequest built without ``__post_init__``'s checks."""
    request = object.__new__(ChatRequest)
    for spec in dataclasses.fields(ChatRequest):
        value = fields.get(spec.name, spec.default)
        object.__setattr__(request, spec.name, messages if spec.name == "messages" else value)
    return request


def test_odd_content_is_estimated_not_rejected() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    odd: list[Any] = [
        {"role": "bogus", "content": "x" * 400},  # to_messages would raise
        {"role": "assistant", "tool_calls": [{"function": {"arguments": "{not json"}}]},
        {"content": 12345},
        "a bare string in the list",
        42,
    ]
    assert estimate_tokens(odd) > estimate_tokens([]) + 100
    calls = (
        ToolCall("c", "f", {"when": object(), "tags": {1, 2}}),
        ToolCall("d", "g", circular),
    )
    # A ChatRequest refuses all of this (tests/test_hostile_input.py); the estimator must
    # still not raise on one that got past its checks.
    request = _unchecked(
        (Message("assistant", "\ud800 lone surrogate", tool_calls=calls),),
        tools=(Tool("t", "d", {"default": object(), "keys": {(1, 2): "tuple key"}}),),
        response_schema=circular,
    )
    for model in ("gpt-4o", "gpt-4", "claude-haiku-4-5", None):
        assert estimate_tokens(request, model) > DEFAULT_OUTPUT_RESERVE
    assert estimate_tokens(object()) >= 1  # type: ignore[arg-type]
    assert estimate_tokens(b"bytes") >= 1  # type: ignore[arg-type]


def test_special_token_text_is_counted_as_text() -> None:
    assert count_text_tokens("<|endoftext|>", "gpt-4o") > 1
    assert count_text_tokens("", "gpt-4o") == count_text_tokens("", "claude-x") == 0
    assert estimate_tokens("", "gpt-4o") >= 1


def test_huge_strings_are_estimated() -> None:
    text = "The capital of France is Paris. " * 32_768  # 1 MiB
    assert 200_000 < estimate_tokens(text, "claude-haiku-4-5") < 350_000
    assert count_text_tokens("中" * 1_000_000, "gemini-2.5-flash") >= 700_000


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_huge_text_without_long_runs_is_still_counted_exactly(model: str) -> None:
    text = "\n".join(sample for samples in CORPUS.values() for sample in samples) * 20
    assert len(text) > 4 * tokens._WHOLE
    name = encoding_for_model(model)
    assert name is not None
    encoding = tokens._encoding(name)
    assert encoding is not None
    assert count_text_tokens(text, model) == len(encoding.encode_ordinary(text))


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_huge_text_is_estimated_near_its_true_count(
    model: str,
) -> None:
    # A run without whitespace is one piece to tiktoken, whose cost grows with its length
    # (seconds for 10 MB): such runs are sampled. Inputs whose true count is cheap to
    # know: one run of "a" (eight to a token in both encodings, whatever the length), and
    # an identifier that the pre-tokenizer splits at each "_" (so tiktoken counts it fast).
    name = encoding_for_model(model)
    assert name is not None
    encoding = tokens._encoding(name)
    assert encoding is not None
    size = 10_000_000
    per_block = len(encoding.encode_ordinary("a" * tokens._WHOLE))
    true_count = per_block * size // tokens._WHOLE
    assert 0.95 * true_count <= count_text_tokens("a" * size, model) <= 1.1 * true_count

    rng = random.Random(7)
    words = ["alpha", "Beta", "gamma42", "x", "résumé", "東京", "aGVsbG8", "{}", "0x1f"]
    identifier = "_".join(rng.choices(words, k=size // 6))
    exact = len(encoding.encode_ordinary(identifier))
    assert 0.95 * exact <= count_text_tokens(identifier, model) <= 1.1 * exact
    assert estimate_tokens(identifier, model) >= count_text_tokens(identifier, model)

    # Past a million characters, text with whitespace is sampled too.
    text = "\n".join(sample for samples in CORPUS.values() for sample in samples) * 200
    assert len(text) > 1 << 21
    exact = len(encoding.encode_ordinary(text))
    assert 0.95 * exact <= count_text_tokens(text, model) <= 1.1 * exact


@settings(max_examples=200, deadline=None)
@given(
    text=ANY_TEXT,
    model=st.one_of(
        st.none(),
        st.text(max_size=40),
        st.sampled_from(["gpt-4o", "gpt-4", "claude-haiku-4-5", "gemini-2.5-flash", "o3"]),
    ),
)
def test_any_text_any_model_never_raises(text: str, model: str | None) -> None:
    estimate = estimate_tokens(text, model)
    assert isinstance(estimate, int)
    assert estimate >= 1
    assert estimate_tokens([{"role": "user", "content": text}], model) >= 1
    assert count_text_tokens(text, model) >= (1 if text else 0)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(st.dictionaries(ANY_TEXT, JSONISH, max_size=5), max_size=4))
def test_any_dicts_never_raise(items: list[dict[str, Any]]) -> None:
    assert estimate_tokens(items, "gpt-4o") >= 1
    assert estimate_tokens(items, "claude-haiku-4-5") >= 1


# The bounds stated in tokens._heuristic_tokens's docstring, with a little slack.
MAX_MEAN_ABS_ERROR = {
    "prose": 0.10,
    "code": 0.17,
    "cjk": 0.13,
    "json": 0.09,
    "other": 0.17,
    "machine": 0.11,
    "lists": 0.09,
}
WORST_UNDER, WORST_OVER = -0.22, 0.42


def test_heuristic_stays_calibrated_against_o200k() -> None:
    encoding = tokens._encoding("o200k_base")
    assert encoding is not None
    assert set(CORPUS) == set(MAX_MEAN_ABS_ERROR)
    everything: list[float] = []
    for category, samples in CORPUS.items():
        errors = [
            tokens._heuristic_tokens(text) / len(encoding.encode_ordinary(text)) - 1
            for text in samples
        ]
        everything += errors
        assert statistics.mean(abs(e) for e in errors) <= MAX_MEAN_ABS_ERROR[category], category
        assert statistics.mean(errors) >= 0, f"{category} underestimates on average"
        assert min(errors) >= WORST_UNDER, category
        assert max(errors) <= WORST_OVER, category
    assert 0.05 <= statistics.mean(everything) <= 0.12  # leans over, by design


def test_preload_loads_an_openai_encoding_once_and_ignores_other_families() -> None:
    tokens.preload("claude-haiku-4-5")
    tokens.preload(None)
    tokens.preload("gpt-4o-mini")
    assert "o200k_base" in tokens._LOADED
    loaded = tokens._LOADED["o200k_base"]
    tokens.preload("gpt-4o")
    assert tokens._LOADED["o200k_base"] is loaded


SENDABLE_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300) | st.text(
    st.characters(categories=["Lo", "So", "Nd", "Po", "Zs", "Cc"]), max_size=300
)  # a message refuses lone surrogates
BOUND_MODELS = ["gpt-4o", "gpt-4", "claude-haiku-4-5", "gemini-2.5-flash", None]
# Each the densest text for one of the counts: a token per byte (emoji, CJK for tiktoken),
# a pair or run started at every character (the heuristic's worst cases).
DENSE = ["\U0001f600" * 500, "aA" * 800, "a\n" * 900, "1 " * 900, "é" * 700, "\x00" * 999]


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(SENDABLE_TEXT | st.sampled_from(DENSE), min_size=1, max_size=4),
    name=st.none() | st.text(max_size=20),
    max_tokens=st.none() | st.integers(1, 4096),
)
def test_a_length_bound_never_falls_below_any_estimate(
    texts: list[str], name: str | None, max_tokens: int | None
) -> None:
    request = ChatRequest(
        tuple(Message("user", text, name=name or None) for text in texts), max_tokens=max_tokens
    )
    most = max(estimate_tokens(request, model) for model in BOUND_MODELS)
    assert not within(request, most - 1) or most == 1
    assert within(request, 10 * most + 10_000)


def test_a_length_bound_needs_no_serialising_and_no_sampling() -> None:
    plain = ChatRequest((Message("system", "Be brief."), Message("user", "Hi")))
    assert within(plain, 2_000)
    assert not within(plain, 1_000)  # the reply's reserve counts
    tool = Tool("f", "does f", {"type": "object", "properties": {}})
    assert not within(dataclasses.replace(plain, tools=(tool,)), 10**9)
    assert not within(dataclasses.replace(plain, response_schema={"type": "object"}), 10**9)
    called = Message("assistant", "", tool_calls=(ToolCall("c1", "f", {"x": 1}),))
    assert not within(ChatRequest((*plain.messages, called)), 10**9)
    huge = ChatRequest((Message("user", "word " * 20_000),))
    assert not within(huge, 10**9)  # past the length counted whole: its count is sampled
