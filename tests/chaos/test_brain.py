"""The deterministic brain, without any wire protocol."""

from __future__ import annotations

import json

from resilient_llm.testing.chaos.brain import Ask, ToolSpec, Turn, answer, count_tokens, split_words


def ask(text: str, **kwargs: object) -> Ask:
    return Ask(turns=(Turn("user", text),), **kwargs)  # type: ignore[arg-type]


def test_facts_and_echo() -> None:
    assert answer(ask("what's the CAPITAL OF FRANCE?")).text == "The capital of France is Paris."
    compare = answer(ask("Paris or Lyon: which is bigger?")).text
    assert "Paris" in compare
    assert "Lyon" in compare
    assert answer(ask("hello")).text == "Echo: hello"
    assert answer(ask("x" * 500)).text == "Echo: " + "x" * 200


def test_usage_is_chars_over_four() -> None:
    reply = answer(Ask(turns=(Turn("system", "abcd"), Turn("user", "hello"))))
    assert reply.input_tokens == 3  # ceil(9 / 4)
    assert reply.output_tokens == count_tokens("Echo: hello")
    assert count_tokens("") == 1
    assert ask("abcdefgh", max_tokens=10).quota_tokens == 12


def test_split_words_round_trips() -> None:
    text = "The capital of France is Paris."
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert 1 < len(pieces) <= 4
    assert split_words("") == []


def test_tool_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "number"},
            "label": {"type": "string"},
            "city": {"type": "string"},
            "flag": {"type": "boolean"},
            "mode": {"enum": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "inner": {"$ref": "#/$defs/Inner"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        },
        "required": ["a", "b", "extra"],
        "$defs": {"Inner": {"type": "object", "properties": {"k": {"const": "v"}}}},
    }
    tools = (ToolSpec("first", schema), ToolSpec("second"))
    reply = answer(ask('Add 2 and 3.5 labelled "sum", in Madrid', tools=tools))
    assert reply.stop == "tool"
    assert reply.text == ""
    (call,) = reply.calls
    assert call.name == "first"
    assert call.arguments == {
        "a": 2,
        "b": 3.5,
        "label": "sum",
        "city": "Madrid",
        "flag": True,
        "mode": "fast",
        "tags": ["labelled"],  # then the longest words, in order
        "inner": {"k": "v"},
        "maybe": 0,  # no number left
        "extra": "Add",
    }
    again = answer(ask('Add 2 and 3.5 labelled "sum", in Madrid', tools=tools))
    assert again.calls[0].id == call.id


def test_tool_choice_and_results() -> None:
    tools = (ToolSpec("first"), ToolSpec("second"))
    assert answer(ask("hi", tools=tools, tool_choice="second")).calls[0].name == "second"
    assert answer(ask("hi", tools=tools, tool_choice="none")).calls == ()
    result = Ask(
        turns=(Turn("user", "hi"), Turn("assistant", "{}"), Turn("tool", "42"), Turn("tool", "7")),
        tools=tools,
    )
    reply = answer(result)
    assert (reply.text, reply.calls, reply.stop) == ("The tool returned: 42; 7", (), "stop")


def test_structured_output() -> None:
    schema = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}  # Gemini style
    assert json.loads(answer(ask("give me 7", schema=schema)).text) == {"n": 7}
    mode = answer(ask("capital of France", json_mode=True))
    assert json.loads(mode.text) == {"answer": "The capital of France is Paris."}


def test_max_tokens_cuts_text() -> None:
    reply = answer(ask("capital of France", max_tokens=1))
    assert (reply.text, reply.stop) == ("The ", "length")
