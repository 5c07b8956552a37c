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

from ._message_checks import (
    check_provider_options,
    check_roles,
    check_sendable,
    is_int,
    is_number,
    optional,
)
from .content import (
    Part,
    Reasoning,
    Text,
    is_part,
    parts_from_openai,
)
from .errors import ConfigurationError
from .policies.hints import RateLimitHints
from .policies.quota import Tokens

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "ReasoningEffort",
    "Role",
    "Tool",
    "ToolCall",
    "Usage",
    "to_messages",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
ReasoningEffort = Literal["minimal", "low", "medium", "high"]
REASONING_EFFORTS: tuple[str, ...] = ("minimal", "low", "medium", "high")


@dataclass(frozen=True)
class ToolCall:
    """A model's request to call a tool, with its arguments already parsed from JSON.

    A call whose arguments are not a JSON object (text that does not parse, or JSON that
    is a list, a string, a number) is *invalid*: it is still part of the answer, since the
    model did ask for the tool, but it cannot be run. Its ``arguments`` are empty,
    ``raw_arguments`` holds the text exactly as the model wrote it, and ``error`` says what
    is wrong (LangChain lists such calls in ``invalid_tool_calls``). Sent back in a later
    request, OpenAI-protocol routes receive the raw text as it came; Anthropic and Gemini
    take only an object there, so those routes are skipped for that request (see README).

    ``signature`` is the opaque data the ``family`` (provider kind) that made the call
    attached to it (Gemini's ``thought_signature``): it goes back to that family exactly
    as received and is left out for any other.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None
    error: str | None = None
    signature: str | None = None
    family: str | None = None

    def __post_init__(self) -> None:
        if self.error is not None and not isinstance(self.raw_arguments, str):
            raise ConfigurationError(
                f"ToolCall {self.name!r} has an error but no raw_arguments (the text sent)"
            )
        if self.error is not None and self.arguments:
            raise ConfigurationError(
                f"ToolCall {self.name!r} has an error, so its arguments must be empty"
            )
        if self.signature is not None and not self.family:
            raise ConfigurationError(
                f"ToolCall {self.name!r} has a signature but no family (the provider kind)"
            )

    @property
    def invalid(self) -> bool:
        """Whether the arguments did not parse as a JSON object (see ``error``)."""
        return self.error is not None


@dataclass(frozen=True)
class Message:
    """One chat turn. ``tool_call_id`` is set on ``tool`` messages (the result of a call).

    ``content`` is a str or a sequence of parts (:class:`~resilient_llm.content.Text`,
    ``Image``, ``Document``, ``Audio``, ``Reasoning``), held as a tuple; a plain str in the
    sequence is a ``Text``. ``text`` is the text of either form; ``parts`` the parts of
    either form.
    """

    role: Role
    content: str | tuple[Part, ...] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ConfigurationError(
                f"Message.role must be one of {sorted(_ROLES)}, got {self.role!r}"
            )
        content = self.content
        if not isinstance(content, str):
            if isinstance(content, bytes | Mapping) or not isinstance(content, list | tuple):
                raise ConfigurationError(
                    f"Message.content must be a str or a list of parts, "
                    f"got {type(content).__name__}"
                )
            parts = tuple(Text(p) if isinstance(p, str) else p for p in content)
            for index, part in enumerate(parts):
                if not is_part(part):
                    raise ConfigurationError(
                        f"Message.content[{index}] must be a part (Text, Image, Document, "
                        f"Audio, Reasoning), got {type(part).__name__}"
                    )
            object.__setattr__(self, "content", parts)
            check_roles(self.role, parts)
        if not isinstance(self.tool_calls, tuple):
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.role == "tool" and not self.tool_call_id:
            raise ConfigurationError("a 'tool' Message needs tool_call_id (the call it answers)")

    @property
    def text(self) -> str:
        """The message's text: the content, or its ``Text`` parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, Text))

    @property
    def parts(self) -> tuple[Part, ...]:
        """The content as parts (a non-empty str is one ``Text``)."""
        if isinstance(self.content, str):
            return (Text(self.content),) if self.content else ()
        return self.content


@dataclass(frozen=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    # Anthropic's prompt-caching marker, as on a Text part; left out elsewhere.
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens the provider reported for one call.

    ``input_tokens`` counts the whole prompt, cached or not (Anthropic reports cache
    reads and writes apart; they are added in); ``cached_input_tokens`` of them were read
    from the provider's prompt cache and ``cache_write_tokens`` written to it.
    ``output_tokens`` includes ``reasoning_tokens``, the ones spent thinking.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        # A number that also keeps its split, for limits on input and output apart.
        return Tokens(
            self.input_tokens + self.output_tokens,
            input=self.input_tokens,
            output=self.output_tokens,
            cached=self.cached_input_tokens,
        )


@dataclass(frozen=True)
class ChatRequest:
    """Everything a provider needs for one chat call, independent of any SDK.

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or the name of one tool.
    ``response_schema`` asks for structured output matching a JSON schema; ``json_mode``
    asks for any JSON object.

    ``reasoning_effort`` (``"minimal" | "low" | "medium" | "high"``) is sent to each
    family in its own form (OpenAI's ``reasoning_effort``, an Anthropic thinking budget,
    a Gemini thinking config); ``provider_options`` maps a provider kind to extra
    parameters sent as they are to that family's routes only (over each route's
    ``Provider(options=...)``). A value a family cannot take is not sent to it (no ``seed``
    to Anthropic): see the README's table.
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
    top_p: float | None = None
    seed: int | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: ReasoningEffort | None = None
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.messages:
            raise ConfigurationError("ChatRequest.messages must not be empty")
        optional("top_p", self.top_p, lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
        optional("seed", self.seed, is_int, "an int")
        optional(
            "parallel_tool_calls", self.parallel_tool_calls, lambda v: isinstance(v, bool), "a bool"
        )
        optional(
            "reasoning_effort",
            self.reasoning_effort,
            lambda v: v in REASONING_EFFORTS,
            f"one of {list(REASONING_EFFORTS)}",
        )
        check_provider_options(self.provider_options)
        optional("max_tokens", self.max_tokens, lambda v: is_int(v) and v > 0, "an int > 0")
        optional(
            "temperature",
            self.temperature,
            lambda v: is_number(v) and 0 <= v <= 2,
            "a number in [0, 2]",
        )
        optional("model", self.model, lambda v: isinstance(v, str) and bool(v), "a model name")
        optional("tool_choice", self.tool_choice, lambda v: isinstance(v, str), "a str")
        optional(
            "response_schema", self.response_schema, lambda v: isinstance(v, Mapping), "a dict"
        )
        if not isinstance(self.json_mode, bool):
            raise ConfigurationError(f"json_mode must be a bool, got {self.json_mode!r}")
        if not all(isinstance(s, str) for s in self.stop):
            raise ConfigurationError(f"stop must be strings, got {list(self.stop)!r}")
        for tool in self.tools:
            if not isinstance(tool, Tool) or not isinstance(tool.parameters, Mapping):
                raise ConfigurationError(f"tools must be Tools with a dict schema, got {tool!r}")
        names = {t.name for t in self.tools}
        if self.tool_choice not in (None, "auto", "none", "required") and (
            self.tool_choice not in names
        ):
            raise ConfigurationError(
                f"tool_choice {self.tool_choice!r} names no tool of this request "
                f"(tools: {sorted(names)})"
            )
        check_sendable(self)


@dataclass(frozen=True)
class ChatResponse:
    """A complete reply. ``metadata`` holds the engine's account of the call (attempts,
    waits, failovers); ``rate_limit_headers`` the provider's quota headers, if any, and
    ``quota`` what they say, parsed once by the adapter (never stored by a cache).

    A reply the model declined to give is still a reply: ``refusal`` holds the model's
    refusal text (OpenAI's ``message.refusal``), or a short reason when the provider gives
    none (``"blocked: SAFETY"``), and ``finish_reason`` is ``"refusal"``.

    ``reasoning`` holds the reply's reasoning blocks, with the signatures its family needs
    back; :attr:`message` is the reply as the assistant turn to send back in history.
    """

    content: str
    provider: str
    model: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rate_limit_headers: Mapping[str, str] = field(default_factory=dict)
    refusal: str | None = None
    # The rate-limit headers, parsed once by the adapter; the flow applies them.
    quota: RateLimitHints | None = field(default=None, compare=False, repr=False)
    reasoning: tuple[Reasoning, ...] = ()

    @property
    def message(self) -> Message:
        """The reply as an assistant :class:`Message`: reasoning, text and tool calls, so a
        tool loop sends back what the family needs (its signatures) and nothing else."""
        parts: tuple[Part, ...] = self.reasoning
        if self.content:
            parts += (Text(self.content),)
        content: str | tuple[Part, ...] = parts if self.reasoning else self.content
        return Message("assistant", content, tool_calls=self.tool_calls)


@dataclass(frozen=True)
class ChatChunk:
    """One piece of a streamed reply; the last chunk usually carries ``usage``.

    The first chunk a caller receives carries the engine's account of the call so far in
    ``metadata`` (provider, attempts, waits, failovers): after it, nothing is retried.
    ``refusal`` is a piece of refusal text, as ``delta`` is a piece of the content: the
    pieces joined are the reply's refusal, and the last chunk says ``"refusal"`` in
    ``finish_reason``. ``quota`` is the provider's quota headers, parsed, on the stream's
    first chunk (they come with the response's start). ``reasoning`` holds pieces of
    reasoning in order (see :class:`~resilient_llm.content.Reasoning`;
    :func:`~resilient_llm.content.join_reasoning` makes whole blocks of them).
    """

    delta: str = ""
    provider: str = ""
    model: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    refusal: str | None = None
    quota: RateLimitHints | None = field(default=None, compare=False, repr=False)
    reasoning: tuple[Reasoning, ...] = ()


def to_messages(items: Iterable[Message | Mapping[str, Any]]) -> tuple[Message, ...]:
    """Convert neutral messages and OpenAI-style dicts to a tuple of :class:`Message`.

    Anything that cannot be converted raises :class:`ConfigurationError` naming the
    message (``messages[2]...``) and what is wrong with it.
    """
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ConfigurationError(
            f"messages must be a list of Message or dicts, got {type(items).__name__}"
        )
    out: list[Message] = []
    for index, item in enumerate(items):
        if isinstance(item, Message):
            out.append(item)
        elif isinstance(item, Mapping):
            try:
                out.append(_from_dict(item, index))
            except ConfigurationError as exc:
                prefix = f"messages[{index}]"
                text = exc.message if exc.message.startswith(prefix) else f"{prefix}: {exc}"
                raise ConfigurationError(text) from None
        else:
            raise ConfigurationError(
                f"messages[{index}] must be a Message or a dict, got {type(item).__name__}"
            )
    return tuple(out)


def _from_dict(item: Mapping[str, Any], index: int) -> Message:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise ConfigurationError(
            f"messages[{index}].role must be one of {sorted(_ROLES)}, got {role!r}"
        )
    content = item.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list | tuple):
        content = parts_from_openai(content, f"messages[{index}].content")
    elif not isinstance(content, str):
        raise ConfigurationError(
            f"messages[{index}].content must be a str or a list of parts, "
            f"got {type(content).__name__}"
        )
    raw_calls = item.get("tool_calls") or ()
    if not isinstance(raw_calls, list | tuple):
        raise ConfigurationError(
            f"messages[{index}].tool_calls must be a list, got {type(raw_calls).__name__}"
        )
    for field_name in ("tool_call_id", "name"):
        value = item.get(field_name)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"messages[{index}].{field_name} must be a str, got {type(value).__name__}"
            )
    return Message(
        role=cast(Role, role),
        content=content,
        tool_calls=tuple(_tool_call(c, index) for c in raw_calls),
        tool_call_id=item.get("tool_call_id"),
        name=item.get("name"),
    )


def _tool_call(raw: Any, index: int) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"messages[{index}].tool_calls holds a {type(raw).__name__}")
    fn = raw.get("function", raw)
    if not isinstance(fn, Mapping):
        raise ConfigurationError(f"messages[{index}].tool_calls entry's function must be a dict")
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"messages[{index}].tool_calls entry has no function name")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ConfigurationError(
                f"messages[{index}].tool_calls[{name!r}].arguments is not valid JSON: {exc}"
            ) from None
    if not isinstance(args, Mapping):
        raise ConfigurationError(
            f"messages[{index}].tool_calls[{name!r}].arguments must be a JSON object"
        )
    signature, family = raw.get("signature"), raw.get("family")
    return ToolCall(
        id=str(raw.get("id") or ""),
        name=name,
        arguments=dict(args),
        signature=signature if isinstance(signature, str) else None,
        family=family if isinstance(family, str) else None,
    )
