"""The checks a request's messages and parameters pass when they are built.

Each raises :class:`~resilient_llm.errors.ConfigurationError` naming the field, before
anything is sent (see :mod:`resilient_llm._checks` for why text and JSON are checked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ._checks import check_json, check_text
from .content import Audio, Document, Image, Part, Reasoning, Text, check_part
from .errors import ConfigurationError


class _Request(Protocol):
    """What :func:`check_sendable` reads of a ``ChatRequest`` (named structurally: the
    messages module imports this one)."""

    @property
    def messages(self) -> Sequence[Any]: ...
    @property
    def tools(self) -> Sequence[Any]: ...
    @property
    def response_schema(self) -> Mapping[str, Any] | None: ...
    @property
    def stop(self) -> Sequence[str]: ...
    @property
    def model(self) -> str | None: ...
    @property
    def tool_choice(self) -> str | None: ...


__all__ = [
    "check_provider_options",
    "check_roles",
    "check_sendable",
    "is_int",
    "is_number",
    "optional",
]


# What each role's content may hold. No family takes media from the model or in the
# system prompt, and reasoning is the model's own: refused here, named, rather than lost
# in a converter.
_ROLE_PARTS = {
    "system": (Text,),
    "user": (Text, Image, Document, Audio),
    "tool": (Text, Image, Document, Audio),
    "assistant": (Text, Reasoning),
}


def check_roles(role: str, parts: tuple[Part, ...]) -> None:
    """Refuse a part ``role``'s content cannot hold, naming it."""
    allowed = _ROLE_PARTS[role]
    for index, part in enumerate(parts):
        if not isinstance(part, allowed):
            names = ", ".join(kind.__name__ for kind in allowed)
            raise ConfigurationError(
                f"Message.content[{index}]: a {role!r} message takes {names} parts, "
                f"not {type(part).__name__}"
            )


def check_provider_options(options: object) -> None:
    """``{kind: {parameter: value}}`` with JSON values, else the wrong entry is named."""
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            f"provider_options must map a provider kind to a dict, got {type(options).__name__}"
        )
    for kind, values in options.items():
        if not isinstance(kind, str) or not isinstance(values, Mapping):
            raise ConfigurationError(
                "provider_options must map a provider kind ('openai', 'anthropic', "
                f"'gemini', ...) to a dict of parameters, got {kind!r}: {values!r}"
            )
        check_json(f"provider_options[{kind!r}]", values)


def check_sendable(request: _Request) -> None:
    """Every text encodes and every structure dumps as JSON, else the field is named."""
    for i, message in enumerate(request.messages):
        if isinstance(message.content, str):
            check_text(f"messages[{i}].content", message.content)
        else:
            for k, part in enumerate(message.content):
                check_part(f"messages[{i}].content[{k}]", part)
        for name in ("name", "tool_call_id"):
            value = getattr(message, name)
            if isinstance(value, str):
                check_text(f"messages[{i}].{name}", value)
        for j, call in enumerate(message.tool_calls):
            check_text(f"messages[{i}].tool_calls[{j}].id", call.id)
            check_text(f"messages[{i}].tool_calls[{j}].name", call.name)
            check_json(f"messages[{i}].tool_calls[{j}].arguments", call.arguments)
    for i, tool in enumerate(request.tools):
        check_text(f"tools[{i}].name", tool.name)
        check_text(f"tools[{i}].description", tool.description)
        check_json(f"tools[{i}].parameters", tool.parameters)
        if tool.cache_control is not None:
            check_json(f"tools[{i}].cache_control", tool.cache_control)
    if request.response_schema is not None:
        check_json("response_schema", request.response_schema)
    for i, stop in enumerate(request.stop):
        check_text(f"stop[{i}]", stop)
    for name in ("model", "tool_choice"):
        value = getattr(request, name)
        if value is not None:
            check_text(name, value)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def optional(name: str, value: object, ok: Callable[[Any], bool], what: str) -> None:
    """Raise a ConfigurationError naming ``name`` unless ``value`` is None or ``ok``."""
    if value is not None and not ok(value):
        raise ConfigurationError(f"{name} must be {what}, got {value!r}")
