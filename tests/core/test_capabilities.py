"""Capabilities: the model table, overrides, and which requests a route cannot take."""

from __future__ import annotations

import pytest

from resilient_llm import Capabilities, ChatRequest, Message, Tool, estimate_tokens
from resilient_llm.errors import ConfigurationError
from resilient_llm.policies.capabilities import capabilities_for, unfit_reason
from resilient_llm.policies.tokens import DEFAULT_OUTPUT_RESERVE, reserved_output

TOOL = Tool("lookup", "find a thing", {"type": "object", "properties": {}})


def request(**fields: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", "hi"),), **fields)  # type: ignore[arg-type]


def test_the_longest_prefix_wins_and_vendor_prefixes_are_ignored() -> None:
    assert capabilities_for("gpt-4o-mini").context_window == 128_000
    assert capabilities_for("gpt-4-turbo-2024").json_schema is False
    assert capabilities_for("gpt-4").context_window == 8_192
    assert capabilities_for("openai/gpt-4o").max_output == 16_384
    assert capabilities_for("gemini-2.0-flash-lite-001").max_output == 8_192


def test_an_unknown_model_is_never_skipped_on_a_guess() -> None:
    caps = capabilities_for("my-local-llama")
    assert caps == Capabilities()
    huge = request(tools=(TOOL,), tool_choice="required", max_tokens=10**6)
    assert unfit_reason(caps, huge, 10**7) is None


def test_an_override_replaces_only_the_fields_it_sets() -> None:
    caps = capabilities_for("gpt-4o", Capabilities(tools=False))
    assert caps.tools is False
    assert caps.context_window == 128_000


@pytest.mark.parametrize(
    ("caps", "fields", "estimate", "reason", "too_long"),
    [
        (Capabilities(tools=False), {"tools": (TOOL,)}, 10, "takes no tools", False),
        (
            Capabilities(tool_choice=False),
            {"tools": (TOOL,), "tool_choice": "lookup"},
            10,
            "cannot be made to call a tool",
            False,
        ),
        (Capabilities(json_schema=False), {"response_schema": {}}, 10, "no JSON schema", False),
        (Capabilities(max_output=100), {"max_tokens": 101}, 10, "max_tokens 101", False),
        # The estimate already holds max_tokens: 1001 with 100 out is 901 of prompt.
        (Capabilities(context_window=1000), {"max_tokens": 100}, 1001, "1000-token window", True),
    ],
)
def test_requests_a_route_cannot_take(
    caps: Capabilities, fields: dict[str, object], estimate: int, reason: str, too_long: bool
) -> None:
    unfit = unfit_reason(caps, request(**fields), estimate)
    assert unfit is not None
    assert reason in unfit.reason
    assert unfit.too_long is too_long


def test_requests_that_fit_exactly_are_taken() -> None:
    caps = Capabilities(context_window=1000, max_output=100, tool_choice=False)
    assert unfit_reason(caps, request(max_tokens=100), 1000) is None
    assert unfit_reason(caps, request(tools=(TOOL,), tool_choice="auto"), 10) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"context_window": 0}, "Capabilities.context_window"),
        ({"max_output": 1.5}, "Capabilities.max_output"),
        ({"tools": "yes"}, "Capabilities.tools"),
        ({"images": 1}, "Capabilities.images"),
    ],
)
def test_bad_capabilities_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Capabilities(**kwargs)  # type: ignore[arg-type]


def _prompt_of(tokens: int, max_tokens: int | None) -> ChatRequest:
    """A gpt-4 request whose prompt is exactly ``tokens`` long (tiktoken counts exactly)."""
    text = "word " * tokens
    for _ in range(5):
        req = ChatRequest(messages=(Message("user", text),), max_tokens=max_tokens)
        prompt = estimate_tokens(req, "gpt-4") - reserved_output(req)
        if prompt == tokens:
            return req
        text = "word " * (text.count("word ") + tokens - prompt)
    raise AssertionError("could not build a prompt of the exact size")


@pytest.mark.parametrize("max_tokens", [3000, 1, None])
def test_the_window_holds_prompt_and_max_tokens_once(max_tokens: int | None) -> None:
    caps = capabilities_for("gpt-4")  # 8,192 tokens
    out = max_tokens or DEFAULT_OUTPUT_RESERVE
    fits = _prompt_of(8192 - out, max_tokens)
    assert unfit_reason(caps, fits, estimate_tokens(fits, "gpt-4")) is None
    over = _prompt_of(8192 - out + 1, max_tokens)
    unfit = unfit_reason(caps, over, estimate_tokens(over, "gpt-4"))
    assert unfit is not None
    assert unfit.too_long
    assert f"~{8193 - out} tokens (+{out} out) exceed its 8192-token window" in unfit.reason


def test_a_3000_token_prompt_with_3000_out_fits_an_8k_window() -> None:
    request = _prompt_of(3000, 3000)
    assert (
        unfit_reason(capabilities_for("gpt-4"), request, estimate_tokens(request, "gpt-4")) is None
    )


@pytest.mark.parametrize(
    ("model", "prefill"),
    [
        ("claude-opus-4-6", False),
        ("claude-opus-4-7", False),  # newer than the table: still refuses a prefill
        ("claude-sonnet-5", False),
        ("claude-sonnet-4-5", None),
        ("claude-opus-4-20250514", None),  # a date is not a minor version
        ("claude-3-5-sonnet-20241022", None),
        ("gpt-4o", None),
    ],
)
def test_claude_4_6_and_later_take_no_prefill(model: str, prefill: bool | None) -> None:
    assert capabilities_for(model).prefill is prefill
    assert capabilities_for(model, Capabilities(prefill=True)).prefill is True
