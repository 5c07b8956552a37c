"""Structured output as a forced tool call, both ways.

Structured output uses no beta feature: the schema becomes a tool named
``structured_output`` that the model is made to call, and the tool's input, serialised as
JSON, is the reply's content. A schema that is not an object is wrapped in one
(``{"value": ...}``) because a tool's input must be an object, and unwrapped on the way
back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...messages import ChatRequest

__all__ = ["STRUCTURED_TOOL", "structured_schema", "structured_text", "wraps_schema"]

STRUCTURED_TOOL = "structured_output"


def structured_schema(request: ChatRequest) -> tuple[dict[str, Any], bool] | None:
    """The structured-output tool's input schema and whether it wraps a non-object."""
    if request.response_schema is not None:
        schema = dict(request.response_schema)
        if schema.get("type") == "object":
            return schema, False
        return {"type": "object", "properties": {"value": schema}, "required": ["value"]}, True
    if request.json_mode:
        return {"type": "object", "additionalProperties": True}, False
    return None


def wraps_schema(request: ChatRequest) -> bool:
    """Whether the structured-output schema was wrapped in ``{"value": ...}``."""
    structured = structured_schema(request)
    return structured is not None and structured[1]


def structured_text(arguments: Mapping[str, Any], wrapped: bool) -> str:
    """The reply's content for the structured-output tool's input."""
    value: Any = arguments.get("value") if wrapped else dict(arguments)
    return json.dumps(value, ensure_ascii=False)
