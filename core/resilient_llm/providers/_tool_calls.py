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

__all__ = ["invalid_call_reason", "invalid_calls", "object_arguments", "tool_call"]


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
    (:func:`invalid_call_reason`); an adapter driven directly
    refuses it here rather than send something the model did not write.
    """
    if call.invalid:
        request = ChatRequest((Message("assistant", tool_calls=(call,)),))
        raise BadRequest(str(invalid_call_reason(kind, request)))
    return dict(call.arguments)


def _not_json(exc: BaseException) -> str:
    where = f": {exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
    return f"the arguments are not valid JSON{where}"


def invalid_call_reason(kind: str, request: ChatRequest) -> str | None:
    """Why a family that takes only object arguments cannot carry ``request``, or None.

    An invalid tool call in the history (arguments that were not a JSON object) goes to
    the OpenAI protocol as the text the model wrote, since its arguments are text; the
    Anthropic and Gemini protocols take only an object there, and inventing one would
    change what the model said. Such a route is skipped for the request, with this reason.
    """
    call = next(iter(invalid_calls(request)), None)
    if call is None:
        return None
    return (
        f"the history holds tool call {call.name!r} (id {call.id!r}) whose arguments are not "
        f"a JSON object ({call.error}); {kind} takes only an object there: answer the call "
        "with a tool result saying so, or drop it, or use an OpenAI-protocol route"
    )


def invalid_calls(request: ChatRequest) -> list[ToolCall]:
    """The invalid tool calls in the request's assistant turns, in order."""
    return [c for m in request.messages if m.role == "assistant" for c in m.tool_calls if c.invalid]
