"""Replies no provider should send, per protocol: what the crafted-reply tests serve.

Each family has a well-formed reply and stream (``OK``/``OK_EVENTS``) and named hostile
variants of both. ``BODIES[kind][name]`` is an :class:`Answer` for a plain call,
``EVENTS[kind][name]`` one for a stream.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .crafted import Answer, sse

__all__ = [
    "BODIES",
    "EVENTS",
    "OK",
    "anthropic_tool_input",
    "ok_answer",
    "openai_tool_arguments",
]


def _json(value: Any) -> Answer:
    return Answer(body=json.dumps(value).encode())


def _raw(body: str, content_type: str = "application/json") -> Answer:
    return Answer(body=body.encode(), content_type=content_type)


def _changed(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


_OPENAI = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-x",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
_ANTHROPIC = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}
_GEMINI = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
    "modelVersion": "gemini-x",
}
OK = {"openai": _OPENAI, "anthropic": _ANTHROPIC, "gemini": _GEMINI}

_OPENAI_CALL = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}

_COMMON = {
    "html": _raw("<html><body>502 Bad Gateway</body></html>", "text/html"),
    "null": _raw("null"),
    "list": _raw("[]"),
    "string": _raw('"str"'),
    "not_a_message": _json({"malformed": "response"}),
}

BODIES: dict[str, dict[str, Answer]] = {
    "openai": {
        **_COMMON,
        "choices_string": _json(_changed(_OPENAI, ("choices",), "x")),
        "choice_string": _json(_changed(_OPENAI, ("choices",), ["x"])),
        "message_null": _json(_changed(_OPENAI, ("choices", 0, "message"), None)),
        "message_missing": _json(_changed(_OPENAI, ("choices", 0), {"finish_reason": "stop"})),
        "usage_strings": _json(
            _changed(_OPENAI, ("usage",), {"prompt_tokens": "3", "completion_tokens": "1"})
        ),
        "usage_negative": _json(
            _changed(_OPENAI, ("usage",), {"prompt_tokens": -3, "completion_tokens": 1})
        ),
        "content_number": _json(_changed(_OPENAI, ("choices", 0, "message", "content"), 123)),
        "content_list": _json(
            _changed(_OPENAI, ("choices", 0, "message", "content"), [{"type": "text"}])
        ),
        "tool_calls_string": _json(_changed(_OPENAI, ("choices", 0, "message", "tool_calls"), "x")),
        "tool_name_null": _json(
            _changed(
                _OPENAI,
                ("choices", 0, "message", "tool_calls"),
                [_changed(_OPENAI_CALL, ("function", "name"), None)],
            )
        ),
        "tool_arguments_object": _json(
            _changed(
                _OPENAI,
                ("choices", 0, "message", "tool_calls"),
                [_changed(_OPENAI_CALL, ("function", "arguments"), {"a": 1})],
            )
        ),
        "finish_number": _json(_changed(_OPENAI, ("choices", 0, "finish_reason"), 5)),
    },
    "anthropic": {
        **_COMMON,
        "error_type": _json({"type": "error", "error": {"type": "api_error", "message": "x"}}),
        "content_missing": _json({k: v for k, v in _ANTHROPIC.items() if k != "content"}),
        "content_string": _json(_changed(_ANTHROPIC, ("content",), "x")),
        "block_string": _json(_changed(_ANTHROPIC, ("content",), ["x"])),
        "text_number": _json(_changed(_ANTHROPIC, ("content", 0, "text"), 123)),
        "usage_strings": _json(
            _changed(_ANTHROPIC, ("usage",), {"input_tokens": "3", "output_tokens": "1"})
        ),
        "usage_negative": _json(
            _changed(_ANTHROPIC, ("usage",), {"input_tokens": 3, "output_tokens": -1})
        ),
        "tool_name_null": _json(
            _changed(
                _ANTHROPIC,
                ("content",),
                [{"type": "tool_use", "id": "t1", "name": None, "input": {}}],
            )
        ),
        "stop_reason_number": _json(_changed(_ANTHROPIC, ("stop_reason",), 5)),
    },
    "gemini": {
        **_COMMON,
        "candidates_string": _json(_changed(_GEMINI, ("candidates",), "x")),
        "no_candidates": _json(_changed(_GEMINI, ("candidates",), [])),
        "finish_missing": _json(
            _changed(_GEMINI, ("candidates", 0), {"content": {"parts": [{"text": "Hi"}]}})
        ),
        "parts_string": _json(_changed(_GEMINI, ("candidates", 0, "content", "parts"), "x")),
        "text_number": _json(
            _changed(_GEMINI, ("candidates", 0, "content", "parts", 0, "text"), 123)
        ),
        "usage_strings": _json(
            _changed(_GEMINI, ("usageMetadata",), {"promptTokenCount": "three"})
        ),
        "usage_negative": _json(_changed(_GEMINI, ("usageMetadata",), {"promptTokenCount": -3})),
        "function_name_null": _json(
            _changed(
                _GEMINI,
                ("candidates", 0, "content", "parts"),
                [{"functionCall": {"name": None, "args": {}}}],
            )
        ),
        "function_args_string": _json(
            _changed(
                _GEMINI,
                ("candidates", 0, "content", "parts"),
                [{"functionCall": {"name": "f", "args": "not json"}}],
            )
        ),
    },
}


def _openai_chunk(choices: Any, **extra: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": choices,
        **extra,
    }


_OPENAI_TEXT = _openai_chunk([{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}])
_OPENAI_STOP = _openai_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
_OPENAI_USAGE = _openai_chunk([], usage={"prompt_tokens": 3, "completion_tokens": 1})


def _openai_events(*chunks: object) -> Answer:
    return Answer(events=(*sse(*chunks), "data: [DONE]\n\n"))


_ANTHROPIC_NAMES = (
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
)
_ANTHROPIC_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    },
    {"type": "message_stop"},
]


def _anthropic_events(index: int | None = None, replacement: Any = None) -> Answer:
    events: list[Any] = copy.deepcopy(_ANTHROPIC_EVENTS)
    if index is not None:
        events[index] = replacement
    return Answer(events=sse(*events, names=_ANTHROPIC_NAMES))


_GEMINI_TEXT = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}],
    "modelVersion": "gemini-x",
}
_GEMINI_STOP = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
    "modelVersion": "gemini-x",
}


def _gemini_events(*chunks: object) -> Answer:
    return Answer(events=sse(*chunks))


def _tool_start(name: Any) -> dict[str, Any]:
    return {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "id": "t1", "name": name, "input": {}},
    }


EVENTS: dict[str, dict[str, Answer]] = {
    "openai": {
        "event_null": _openai_events(_OPENAI_TEXT, "null", _OPENAI_STOP),
        "event_string": _openai_events(_OPENAI_TEXT, '"x"', _OPENAI_STOP),
        "event_html": _openai_events(_OPENAI_TEXT, "<html>", _OPENAI_STOP),
        "choices_string": _openai_events(_openai_chunk("x"), _OPENAI_STOP),
        "content_number": _openai_events(
            _openai_chunk([{"index": 0, "delta": {"content": 123}, "finish_reason": None}]),
            _OPENAI_STOP,
        ),
        "usage_strings": _openai_events(
            _OPENAI_TEXT,
            _OPENAI_STOP,
            _openai_chunk([], usage={"prompt_tokens": "3", "completion_tokens": "1"}),
        ),
        "tool_name_null": _openai_events(
            _openai_chunk(
                [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "id": "t1", "function": {"arguments": "{}"}}
                            ]
                        },
                        "finish_reason": None,
                    }
                ]
            ),
            _openai_chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        ),
        "tool_index_string": _openai_events(
            _openai_chunk(
                [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": "first", "function": {"name": "f"}}]},
                        "finish_reason": None,
                    }
                ]
            ),
            _OPENAI_STOP,
        ),
    },
    "anthropic": {
        "event_null": _anthropic_events(2, None),
        "event_string": _anthropic_events(2, "x"),
        "message_null": _anthropic_events(0, {"type": "message_start", "message": None}),
        "text_number": _anthropic_events(
            2,
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 1}},
        ),
        "index_string": _anthropic_events(3, {"type": "content_block_stop", "index": "first"}),
        "usage_strings": _anthropic_events(
            4,
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": "two"},
            },
        ),
        "tool_name_null": _anthropic_events(1, _tool_start(None)),
    },
    "gemini": {
        # google-genai reads an event that is not an object as an empty chunk, which the
        # stream's terminal-event check then judges: see the "only stream event" test.
        "event_html": _gemini_events(_GEMINI_TEXT, "<html>", _GEMINI_STOP),
        "parts_string": _gemini_events({"candidates": [{"content": {"parts": "x"}}]}, _GEMINI_STOP),
        "content_string": _gemini_events({"candidates": [{"content": "x"}]}, _GEMINI_STOP),
        "text_number": _gemini_events(
            {"candidates": [{"content": {"parts": [{"text": 123}]}}]}, _GEMINI_STOP
        ),
        "usage_strings": _gemini_events(
            _GEMINI_TEXT, {**_GEMINI_STOP, "usageMetadata": {"promptTokenCount": "three"}}
        ),
        "function_name_null": _gemini_events(
            {"candidates": [{"content": {"parts": [{"functionCall": {"name": None}}]}}]},
            _GEMINI_STOP,
        ),
    },
}


def ok_answer(kind: str, body: dict[str, Any] | None = None) -> Answer:
    """A well-formed reply (``body`` if given) and a well-formed stream for ``kind``."""
    events = {
        "openai": _openai_events(_OPENAI_TEXT, _OPENAI_STOP, _OPENAI_USAGE),
        "anthropic": _anthropic_events(),
        "gemini": _gemini_events(_GEMINI_TEXT, _GEMINI_STOP),
    }[kind]
    return Answer(body=json.dumps(body or OK[kind]).encode(), events=events.events)


def openai_tool_arguments(arguments: str) -> Answer:
    """A reply and a stream whose one tool call (``f``, id ``t1``) has ``arguments``."""
    body = json.loads(json.dumps(OK["openai"]))
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": arguments}}
        ],
    }
    body["choices"][0]["finish_reason"] = "tool_calls"
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}
    halves = (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :])
    deltas = [
        {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 0, "function": {"arguments": halves[0]}},
        {"index": 0, "function": {"arguments": halves[1]}},
    ]
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [d]}, "finish_reason": None}]}
        for d in deltas
    ]
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return Answer(body=json.dumps(body).encode(), events=(*sse(*events), "data: [DONE]\n\n"))


def anthropic_tool_input(value: Any, partial: str) -> Answer:
    """A reply whose tool call has ``input`` ``value``; a stream whose input is ``partial``."""
    body = json.loads(json.dumps(OK["anthropic"]))
    body["content"] = [{"type": "tool_use", "id": "t1", "name": "f", "input": value}]
    body["stop_reason"] = "tool_use"
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    }
    events = [
        start,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": partial},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    names = tuple(str(e["type"]) for e in events)
    return Answer(body=json.dumps(body).encode(), events=sse(*events, names=names))
