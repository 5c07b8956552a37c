"""Generation parameters: fields, ``model_kwargs`` and call keywords as the engine's options.

``model_kwargs`` takes flat keys, as ``ChatOpenAI``'s does, but only ones every route can
be given: the engine's parameters (``temperature``, ``top_p``, ``seed``, ``max_tokens``,
``stop``, ``reasoning_effort``, ``parallel_tool_calls``) and the partner packages'
spellings of them (``max_completion_tokens``, ``max_output_tokens``, ``stop_sequences``).
Anything else would reach one family and break the others on failover, so it raises,
pointing to ``provider_options={"openai": {...}}``, which sends a family's own parameters
to that family's routes only. Precedence: ``model_kwargs`` < fields < call keywords;
``provider_options`` merge per family, the call's keys over the field's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resilient_llm import Tool

__all__ = ["CALL_OPTIONS", "PARAMS", "call_options", "check_model_kwargs", "check_provider_options"]

PARAMS = ("temperature", "max_tokens", "top_p", "seed", "reasoning_effort")
"""Parameters that are fields and call keywords of the same name."""

CALL_OPTIONS = frozenset(
    {"tools", "tool_choice", "response_schema", "json_mode", "model", "timeout"}
    | {"parallel_tool_calls", "provider_options", *PARAMS}
)
_FLAT = frozenset({*PARAMS, "stop", "parallel_tool_calls"})
_SPELLINGS = {
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "stop_sequences": "stop",
}


def check_model_kwargs(value: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``model_kwargs`` under the engine's names; ``fields`` are the ones set explicitly."""
    if not isinstance(value, Mapping):
        raise ValueError(f"model_kwargs must be a dict, got {type(value).__name__}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _SPELLINGS.get(key, key)
        if name not in _FLAT:
            raise ValueError(
                f"model_kwargs[{key!r}] is not a parameter every route takes "
                f"(those are {sorted(_FLAT)}); send a family's own parameter to its routes "
                f"only with provider_options, e.g. provider_options={{'openai': {{{key!r}: ...}}}}"
            )
        if fields.get(name) is not None:
            raise ValueError(f"model_kwargs[{key!r}] repeats the field {name}; set one of them")
        out[name] = item
    return out


def check_provider_options(value: object) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items()
    ):
        raise ValueError(
            "provider_options must map a provider kind to its parameters, "
            f"e.g. {{'anthropic': {{'top_k': 5}}}}, got {value!r}"
        )
    return {k: dict(v) for k, v in value.items()}


def call_options(
    defaults: Mapping[str, Any],
    provider_options: Mapping[str, Mapping[str, Any]],
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """The engine's keyword options for one call: ``defaults`` (model_kwargs then fields,
    None for unset), then the call's ``kwargs``; unknown keywords raise."""
    unknown = set(kwargs) - CALL_OPTIONS - {"stream"}
    if unknown:
        raise TypeError(f"ChatResilientLLM got unexpected call options {sorted(unknown)}")
    options = {k: v for k, v in defaults.items() if v is not None}
    options |= {k: v for k, v in kwargs.items() if k != "stream"}
    merged = {kind: dict(values) for kind, values in provider_options.items()}
    for kind, values in check_provider_options(kwargs.get("provider_options") or {}).items():
        merged[kind] = merged.get(kind, {}) | values
    options["provider_options"] = merged or None
    if "tools" in options:
        options["tools"] = [_tool(t) for t in options["tools"]]
    return options


def _tool(tool: Any) -> Any:
    """A bound tool; an OpenAI-form dict keeps its ``cache_control`` (set on Anthropic-form
    tools, as ``ChatAnthropic`` users do) as the engine's ``Tool``."""
    if not isinstance(tool, Mapping) or "cache_control" not in tool:
        return tool
    spec = tool.get("function", tool)
    return Tool(
        name=spec["name"],
        description=str(spec.get("description") or ""),
        parameters=spec.get("parameters") or {"type": "object", "properties": {}},
        cache_control=tool["cache_control"],
    )
