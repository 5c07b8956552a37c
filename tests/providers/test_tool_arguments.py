"""Tool-call arguments as providers send them: an object, JSON text, or something broken.

Arguments that are not a JSON object make an *invalid* call (the model did ask for the
tool; nothing can run it): kept with the text as sent and what is wrong, never guessed
into an object. Sent back, the text goes verbatim to the OpenAI protocol; the protocols
that take only an object refuse it, naming the call.
"""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from resilient_llm.errors import BadRequest, ConfigurationError
from resilient_llm.messages import ChatRequest, Message, ToolCall
from resilient_llm.providers._tool_calls import tool_call
from resilient_llm.providers.anthropic import convert as ac
from resilient_llm.providers.base import unsendable_reason
from resilient_llm.providers.gemini import convert as gc
from resilient_llm.providers.openai import convert as oc

from .samples import provider


@pytest.mark.parametrize(
    ("raw", "arguments"),
    [('{"a": 1}', {"a": 1}), ({"a": 1}, {"a": 1}), ("", {}), ("  ", {}), (None, {})],
)
def test_objects_and_empty_arguments_are_valid(raw: object, arguments: dict[str, int]) -> None:
    call = tool_call("t", "f", raw)
    assert not call.invalid
    assert dict(call.arguments) == arguments
    assert call.raw_arguments is None


@pytest.mark.parametrize(
    ("raw", "decoded", "text", "error"),
    [
        ('{"a": ', False, '{"a": ', "not valid JSON"),
        ("[1, 2]", False, "[1, 2]", "a list, not a JSON object"),
        ('"x"', False, '"x"', "a string, not a JSON object"),
        ("7", False, "7", "a number, not a JSON object"),
        ("x", True, '"x"', "a string, not a JSON object"),  # Anthropic's input: a value
        ([1], True, "[1]", "a list, not a JSON object"),
    ],
)
def test_arguments_that_are_no_object_make_an_invalid_call(
    raw: object, decoded: bool, text: str, error: str
) -> None:
    call = tool_call("t", "f", raw, decoded=decoded)
    assert call.invalid
    assert call.raw_arguments == text
    assert dict(call.arguments) == {}
    assert error in (call.error or "")


def test_an_invalid_call_needs_its_text_and_no_arguments() -> None:
    with pytest.raises(ConfigurationError, match="raw_arguments"):
        ToolCall("t", "f", error="bad")
    with pytest.raises(ConfigurationError, match="arguments must be empty"):
        ToolCall("t", "f", {"a": 1}, raw_arguments="x", error="bad")


BROKEN = ToolCall("t1", "f", raw_arguments="{'a': 1}", error="the arguments are not valid JSON")
HISTORY = ChatRequest(
    (
        Message("user", "go"),
        Message("assistant", tool_calls=(BROKEN,)),
        Message("tool", "bad arguments", tool_call_id="t1"),
    )
)


def test_openai_sends_an_invalid_call_back_as_the_text_the_model_wrote() -> None:
    params = oc.build_params(HISTORY, provider("openai"))
    (sent,) = params["messages"][1]["tool_calls"]
    assert sent["function"] == {"name": "f", "arguments": "{'a': 1}"}
    assert unsendable_reason("openai", HISTORY) is None


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_families_that_take_only_objects_refuse_it_naming_the_call(kind: str) -> None:
    reason = unsendable_reason(kind, HISTORY)
    assert reason is not None
    assert "tool call 'f' (id 't1')" in reason
    build = {
        "anthropic": lambda: ac.build_params(HISTORY, provider("anthropic")),
        "gemini": lambda: gc.build_contents(HISTORY.messages),
    }[kind]
    with pytest.raises(BadRequest, match="tool call 'f'"):
        build()


def test_a_streamed_call_without_an_index_is_assembled_by_position() -> None:
    # Some OpenAI-compatible servers leave ``index`` out of a tool-call delta.
    def chunk(calls: list[object] | None, finish: str | None = None) -> object:
        delta = NS(content=None, tool_calls=calls)
        return NS(model="m", usage=None, choices=[NS(delta=delta, finish_reason=finish)])

    state = oc.OpenAIStreamState("r")
    state.feed(chunk([NS(id="t1", function=NS(name="f", arguments='{"a": 1}'))]))
    state.feed(chunk(None, "tool_calls"))
    (last,) = state.finish()
    assert last.tool_calls == (ToolCall("t1", "f", {"a": 1}),)
