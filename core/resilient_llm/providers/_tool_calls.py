"""Tool calls from what a provider sent, and their arguments on the way back.

A model may write arguments that are not a JSON object. Such a call is kept, marked
invalid with the text as sent (see :class:`~resilient_llm.messages.ToolCall`), never guessed
into an object; on the way back, protocols that take only an object refuse it by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import BadRequest
from ..messages import ChatRequest, Message, ToolCall
from ._shape import describe
from .base import unsendable_reason

__all__ = ["object_arguments", "tool_call"]


def tool_call(call_id: str, name: str, raw: object, *, decoded: bool = False) -> ToolCall:
    """A tool call from the arguments as a provider sent them.

    ``raw`` is JSON text (OpenAI's ``arguments``, a stream's joined deltas), or with
    ``decoded`` the JSON value itself (Anthropic's ``input``, Gemini's ``args``).
    Arguments that are not a JSON object make an invalid call (see :class:`ToolCall`):
    kept, with the text as sent and what is wrong, never guessed into an object. Empty
    text or null is no arguments (some servers send ``""`` for a tool without parameters).
    """
    if isinstance(raw, Mapping):
        return ToolCall(call_id, name, dict(raw))
    if raw is None or (isinstance(raw, str) and not decoded and not raw.strip()):
        return ToolCall(call_id, name, {})
    if isinstance(raw, str) and not decoded:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return ToolCall(call_id, name, raw_arguments=raw, error=_not_json(exc))
        text = raw
    else:
        value = raw
        try:
            text = json.dumps(raw, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            text = repr(raw)
    if isinstance(value, Mapping):
        return ToolCall(call_id, name, dict(value))
    error = f"the arguments are {describe(value)}, not a JSON object"
    return ToolCall(call_id, name, raw_arguments=text, error=error)


def object_arguments(call: ToolCall, kind: str) -> dict[str, Any]:
    """A call's arguments for a protocol that takes only an object (Anthropic, Gemini).

    The engine skips such routes for a history with an invalid call
    (:func:`~resilient_llm.providers.base.unsendable_reason`); an adapter driven directly
    refuses it here rather than send something the model did not write.
    """
    if call.invalid:
        request = ChatRequest((Message("assistant", tool_calls=(call,)),))
        raise BadRequest(str(unsendable_reason(kind, request)))
    return dict(call.arguments)


def _not_json(exc: BaseException) -> str:
    where = f": {exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
    return f"the arguments are not valid JSON{where}"
