"""Capabilities: the model table, overrides, and which requests a route cannot take."""

from __future__ import annotations

import pytest

from resilient_llm import Capabilities, ChatRequest, Message, Tool
from resilient_llm.capabilities import capabilities_for, unfit_reason
from resilient_llm.errors import ConfigurationError

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
        (Capabilities(context_window=1000), {"max_tokens": 100}, 901, "1000-token window", True),
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
    assert unfit_reason(caps, request(max_tokens=100), 900) is None
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
