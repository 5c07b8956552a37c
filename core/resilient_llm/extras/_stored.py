"""A reply as the cache stores it: JSON text that gives back an equal ``ChatResponse``."""

from __future__ import annotations

import json
from typing import Any

from ..content import Reasoning
from ..errors import ConfigurationError
from ..messages import ChatResponse, ToolCall, Usage

__all__ = ["FORMAT", "dump_response", "load_response"]

# Bumped whenever the key material or the stored shape changes, so old entries just miss.
FORMAT = 3


def dump_response(reply: ChatResponse) -> str:
    """``reply`` as JSON text; :func:`load_response` gives back an equal ``ChatResponse``."""
    return json.dumps(
        {
            "v": FORMAT,
            "content": reply.content,
            "provider": reply.provider,
            "model": reply.model,
            "tool_calls": [_dump_call(c) for c in reply.tool_calls],
            "usage": None if reply.usage is None else _dump_usage(reply.usage),
            "finish_reason": reply.finish_reason,
            "metadata": reply.metadata,
            "rate_limit_headers": reply.rate_limit_headers,
            "refusal": reply.refusal,
            "reasoning": [[r.text, r.signature, r.family, r.redacted] for r in reply.reasoning],
        },
        ensure_ascii=False,
        allow_nan=False,
    )


def load_response(payload: str | bytes) -> ChatResponse:
    """The reply :func:`dump_response` wrote; ``ValueError`` if ``payload`` is not one."""
    try:
        data = json.loads(payload)
        if not isinstance(data, dict) or data.get("v") != FORMAT:
            raise ValueError("not a stored reply of this format")
        usage = data["usage"]
        return ChatResponse(
            content=_typed(data["content"], str),
            provider=_typed(data["provider"], str),
            model=_typed(data["model"], str),
            tool_calls=tuple(_load_call(c) for c in data["tool_calls"]),
            usage=None if usage is None else Usage(*(_typed(n, int) for n in usage)),
            finish_reason=None
            if data["finish_reason"] is None
            else _typed(data["finish_reason"], str),
            metadata=_typed(data["metadata"], dict),
            rate_limit_headers=_typed(data["rate_limit_headers"], dict),
            refusal=None if data["refusal"] is None else _typed(data["refusal"], str),
            reasoning=tuple(_load_reasoning(r) for r in data["reasoning"]),
        )
    except (
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        ConfigurationError,
        ValueError,
    ) as exc:
        raise ValueError(f"a corrupt cache entry: {type(exc).__name__}") from None


def _dump_usage(usage: Usage) -> list[int]:
    return [
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    ]


def _load_reasoning(data: Any) -> Reasoning:
    text, signature, family, redacted = data
    return Reasoning(
        _typed(text, str),
        None if signature is None else _typed(signature, str),
        None if family is None else _typed(family, str),
        _typed(redacted, bool),
    )


def _dump_call(call: ToolCall) -> dict[str, Any]:
    out: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": call.arguments}
    if call.signature is not None:
        out["signature"] = call.signature
        out["family"] = call.family
    if call.invalid:
        out["raw_arguments"] = call.raw_arguments
        out["error"] = call.error
    return out


def _load_call(data: Any) -> ToolCall:
    error = data.get("error")
    return ToolCall(
        id=_typed(data["id"], str),
        name=_typed(data["name"], str),
        arguments=_typed(data["arguments"], dict),
        raw_arguments=None if error is None else _typed(data["raw_arguments"], str),
        error=None if error is None else _typed(error, str),
        signature=None if data.get("signature") is None else _typed(data["signature"], str),
        family=None if data.get("family") is None else _typed(data["family"], str),
    )


def _typed(value: Any, kind: type[Any]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}")
    return value
