"""A caller's arguments, checked and turned into the engine's own types.

Every bad value raises :class:`~resilient_llm.errors.ConfigurationError` naming the
argument, before anything is sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ConfigurationError
from .messages import ChatRequest, Message, Tool, to_messages

__all__ = [
    "MAX_TIMEOUT",
    "MessagesIn",
    "as_list",
    "build_request",
    "number_setting",
    "timeout_setting",
]

MAX_TIMEOUT = 7 * 24 * 3600.0
"""The longest timeout taken, in seconds (a week). Larger values overflow the SDKs' and
the event loop's own clocks (``timeout=1e308`` is an ``OverflowError`` deep in a client),
and no call is meant to wait longer."""

MessagesIn = Sequence[Message | Mapping[str, Any]] | ChatRequest | str


def build_request(
    messages: MessagesIn,
    *,
    tools: Sequence[Tool | Mapping[str, Any]] = (),
    tool_choice: str | None = None,
    response_schema: Mapping[str, Any] | None = None,
    json_mode: bool = False,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stop: Sequence[str] | str | None = None,
    model: str | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    parallel_tool_calls: bool | None = None,
    reasoning_effort: str | None = None,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ChatRequest:
    """The neutral request for these arguments (a ``ChatRequest`` passes through)."""
    if isinstance(messages, ChatRequest):
        return messages
    if isinstance(messages, str):
        messages = [Message("user", messages)]
    if stop is not None and not isinstance(stop, str):
        stop = tuple(as_list("stop", stop))
    return ChatRequest(
        messages=to_messages(messages),
        model=model,
        tools=tuple(_tool(t) for t in as_list("tools", tools)),
        tool_choice=tool_choice,
        response_schema=response_schema,
        json_mode=json_mode,
        temperature=temperature,
        max_tokens=max_tokens,
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        top_p=top_p,
        seed=seed,
        parallel_tool_calls=parallel_tool_calls,
        reasoning_effort=reasoning_effort,  # type: ignore[arg-type]  # checked by ChatRequest
        provider_options={} if provider_options is None else provider_options,
    )


def number_setting(name: str, value: object, *, minimum: float, inclusive: bool) -> float:
    """A finite number above ``minimum`` (or equal, if ``inclusive``), else an error naming it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
        or (value == minimum and not inclusive)
    ):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ConfigurationError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def timeout_setting(name: str, value: object) -> float:
    """A timeout in seconds: a finite number > 0 and at most :data:`MAX_TIMEOUT`."""
    seconds = number_setting(name, value, minimum=0, inclusive=False)
    if seconds > MAX_TIMEOUT:
        raise ConfigurationError(
            f"{name} must be at most {MAX_TIMEOUT:g} s (a week), got {value!r}"
        )
    return seconds


def as_list(name: str, value: object) -> Iterable[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{name} must be a list, got {type(value).__name__}")
    return value


def _tool(tool: Tool | Mapping[str, Any]) -> Tool:
    if isinstance(tool, Tool):
        return tool
    if not isinstance(tool, Mapping):
        raise ConfigurationError(f"tools entries must be Tool or dict, got {type(tool).__name__}")
    spec = tool.get("function", tool)
    if not isinstance(spec, Mapping):
        raise ConfigurationError("a tool dict's 'function' must be a dict")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError("a tool dict needs a 'name' (or function.name)")
    return Tool(
        name=name,
        description=str(spec.get("description") or ""),
        parameters=spec.get("parameters") or {"type": "object", "properties": {}},
    )
