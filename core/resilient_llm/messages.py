"""The neutral request and response types.

These frozen dataclasses are the only shapes the engine, the provider adapters and the
LangChain / LlamaIndex plugins exchange: each plugin converts to them and back, and each
provider adapter maps them to its SDK. Callers may also pass OpenAI-style dicts
(``{"role": "user", "content": "..."}``); :func:`to_messages` converts them and names
whatever is wrong with one that cannot be converted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from .errors import ConfigurationError

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "Role",
    "Tool",
    "ToolCall",
    "Usage",
    "to_messages",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True)
class ToolCall:
    """A model's request to call a tool, with its arguments already parsed from JSON."""

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One chat turn. ``tool_call_id`` is set on ``tool`` messages (the result of a call)."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ConfigurationError(
                f"Message.role must be one of {sorted(_ROLES)}, got {self.role!r}"
            )
        if not isinstance(self.content, str):
            raise ConfigurationError(
                f"Message.content must be a str, got {type(self.content).__name__}"
            )
        if self.role == "tool" and not self.tool_call_id:
            raise ConfigurationError("a 'tool' Message needs tool_call_id (the call it answers)")


@dataclass(frozen=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True)
class Usage:
    """Tokens the provider reported for one call."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ChatRequest:
    """Everything a provider needs for one chat call, independent of any SDK.

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or the name of one tool.
    ``response_schema`` asks for structured output matching a JSON schema; ``json_mode``
    asks for any JSON object.
    """

    messages: tuple[Message, ...]
    model: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    response_schema: Mapping[str, Any] | None = None
    json_mode: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.messages:
            raise ConfigurationError("ChatRequest.messages must not be empty")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ConfigurationError(f"max_tokens must be positive, got {self.max_tokens!r}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ConfigurationError(f"temperature must be in [0, 2], got {self.temperature!r}")
        names = {t.name for t in self.tools}
        if self.tool_choice not in (None, "auto", "none", "required") and (
            self.tool_choice not in names
        ):
            raise ConfigurationError(
                f"tool_choice {self.tool_choice!r} names no tool of this request "
                f"(tools: {sorted(names)})"
            )


@dataclass(frozen=True)
class ChatResponse:
    """A complete reply. ``metadata`` holds the engine's account of the call (attempts,
    waits, failovers); ``rate_limit_headers`` the provider's quota headers, if any."""

    content: str
    provider: str
    model: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rate_limit_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatChunk:
    """One piece of a streamed reply; the last chunk usually carries ``usage``.

    The first chunk a caller receives carries the engine's account of the call so far in
    ``metadata`` (provider, attempts, waits, failovers): after it, nothing is retried.
    """

    delta: str = ""
    provider: str = ""
    model: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


def to_messages(items: Iterable[Message | Mapping[str, Any]]) -> tuple[Message, ...]:
    """Convert neutral messages and OpenAI-style dicts to a tuple of :class:`Message`."""
    out: list[Message] = []
    for index, item in enumerate(items):
        if isinstance(item, Message):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(_from_dict(item, index))
        else:
            raise ConfigurationError(
                f"messages[{index}] must be a Message or a dict, got {type(item).__name__}"
            )
    return tuple(out)


def _from_dict(item: Mapping[str, Any], index: int) -> Message:
    role = item.get("role")
    if role not in _ROLES:
        raise ConfigurationError(
            f"messages[{index}].role must be one of {sorted(_ROLES)}, got {role!r}"
        )
    content = item.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        # OpenAI content parts: keep the text parts, in order.
        texts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        content = "".join(t for t in texts if isinstance(t, str))
    elif not isinstance(content, str):
        raise ConfigurationError(
            f"messages[{index}].content must be a str or a list of parts, "
            f"got {type(content).__name__}"
        )
    calls = tuple(_tool_call(c, index) for c in item.get("tool_calls") or ())
    return Message(
        role=cast(Role, role),
        content=content,
        tool_calls=calls,
        tool_call_id=item.get("tool_call_id"),
        name=item.get("name"),
    )


def _tool_call(raw: Any, index: int) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"messages[{index}].tool_calls holds a {type(raw).__name__}")
    fn = raw.get("function", raw)
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"messages[{index}].tool_calls entry has no function name")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"messages[{index}].tool_calls[{name!r}].arguments is not valid JSON: {exc}"
            ) from None
    if not isinstance(args, Mapping):
        raise ConfigurationError(
            f"messages[{index}].tool_calls[{name!r}].arguments must be a JSON object"
        )
    return ToolCall(id=str(raw.get("id") or ""), name=name, arguments=dict(args))
