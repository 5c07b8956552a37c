from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_llm.content import Text
from resilient_llm.errors import ConfigurationError
from resilient_llm.messages import ChatRequest, Message, Tool, ToolCall, to_messages


def test_openai_style_dicts_convert_including_tool_calls_and_parts() -> None:
    messages = to_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, "there"]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "3"},
            Message("user", "thanks"),
        ]
    )
    assert messages[1].content == (Text("Hi "), Text("there"))
    assert messages[1].text == "Hi there"
    assert messages[2].tool_calls == (ToolCall("call_1", "add", {"a": 1, "b": 2}),)
    assert messages[3].tool_call_id == "call_1"
    assert messages[4] == Message("user", "thanks")


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ({"role": "wizard", "content": "x"}, "role"),
        ({"role": "user", "content": 42}, "content"),
        ({"role": "tool", "content": "x"}, "tool_call_id"),
        ({"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}, "name"),
        (
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]},
            "not valid JSON",
        ),
        ("hello", "Message or a dict"),
    ],
)
def test_bad_messages_name_what_is_wrong(item: object, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        to_messages([item])  # type: ignore[list-item]


def test_request_validation_names_the_field() -> None:
    user = (Message("user", "hi"),)
    with pytest.raises(ConfigurationError, match="messages"):
        ChatRequest(messages=())
    with pytest.raises(ConfigurationError, match="max_tokens"):
        ChatRequest(messages=user, max_tokens=0)
    with pytest.raises(ConfigurationError, match="temperature"):
        ChatRequest(messages=user, temperature=3.0)
    with pytest.raises(ConfigurationError, match="tool_choice"):
        ChatRequest(messages=user, tools=(Tool("add"),), tool_choice="mul")
    assert ChatRequest(messages=user, tools=(Tool("add"),), tool_choice="add").tool_choice == "add"


@given(st.lists(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=4)))
def test_arbitrary_dicts_convert_or_raise_configuration_error(items: list[dict[str, str]]) -> None:
    with contextlib.suppress(ConfigurationError):
        to_messages(items)
