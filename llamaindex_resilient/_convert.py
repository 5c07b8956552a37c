"""LlamaIndex messages and tools -> the engine's neutral ones (pure).

Content blocks become parts (:mod:`._blocks`); tool calls travel as
:class:`~llama_index.core.base.llms.types.ToolCallBlock` s in the message blocks (what
current LlamaIndex reads) or, in older code, in ``additional_kwargs["tool_calls"]``.
Replies go the other way in :mod:`._reply`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool

from resilient_llm import ConfigurationError, Message, Reasoning, Text, Tool, ToolCall
from resilient_llm.content import Part
from resilient_llm.messages import Role

from ._blocks import ANTHROPIC, GEMINI, block_parts, gemini_signature, thought_signatures

__all__ = ["to_messages", "to_tool", "to_tool_choice", "tool_selections"]

_ROLES: Mapping[str, Role] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}


def to_messages(messages: Sequence[ChatMessage]) -> list[Message]:
    """Neutral messages for LlamaIndex ``ChatMessage`` s.

    Text, media, thinking blocks and cache points become content parts (see
    :mod:`._blocks`); a message of text blocks only stays one string, joined as
    ``ChatMessage.content`` joins it. Tool calls and their signatures become
    ``ToolCall`` s. A block the engine cannot send raises naming it: nothing is dropped.
    """
    return [_message(m, i) for i, m in enumerate(messages)]


def _message(message: ChatMessage, index: int) -> Message:
    role = _ROLES.get(str(getattr(message.role, "value", message.role)))
    where = f"messages[{index}]"
    if role is None:
        raise ConfigurationError(f"{where}.role {message.role!r} is not supported")
    extra = message.additional_kwargs
    found = block_parts(message.blocks, extra, where)
    parts = [p for _, p in found if p is not None]
    legacy = _legacy_thinking(extra.get("thinking")) if role == "assistant" else None
    if legacy is not None:
        parts.insert(0, legacy)
    if role != "assistant":
        for i, part in found:
            if isinstance(part, Reasoning):
                raise ConfigurationError(
                    f"{where}.blocks[{i}]: a ThinkingBlock belongs in an assistant message"
                )
    content: str | tuple[Part, ...]
    if all(isinstance(p, Text) and p.cache_control is None for p in parts):
        content = "\n".join(b.text for b in message.blocks if isinstance(b, TextBlock))
    else:
        content = tuple(parts)
    calls = _calls(message, role, where) if role == "assistant" else []
    tool_call_id = extra.get("tool_call_id") if role == "tool" else None
    name = extra.get("name")
    return Message(
        role=role,
        content=content,
        tool_calls=tuple(calls),
        tool_call_id=str(tool_call_id) if tool_call_id is not None else None,
        name=name if isinstance(name, str) else None,
    )


def _calls(message: ChatMessage, role: str, where: str) -> list[ToolCall]:
    """The assistant's tool calls: its ``ToolCallBlock`` s (signed by position from
    ``thought_signatures``), else the legacy ``additional_kwargs["tool_calls"]``."""
    extra = message.additional_kwargs
    signatures = thought_signatures(extra, where)
    calls = [
        _signed(_call(b.tool_call_id, b.tool_name, b.tool_kwargs), signatures.get(i))
        for i, b in enumerate(message.blocks)
        if isinstance(b, ToolCallBlock)
    ]
    if calls:
        return calls
    raw_calls = extra.get("tool_calls") or ()
    if not isinstance(raw_calls, list | tuple):
        raise ConfigurationError(f"{where} additional_kwargs['tool_calls'] must be a list")
    try:
        return [_legacy_call(c) for c in raw_calls]
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _signed(call: ToolCall, signature: str | None) -> ToolCall:
    if signature is None:
        return call
    return replace(call, signature=signature, family=GEMINI)


def _legacy_thinking(raw: object) -> Reasoning | None:
    """The thinking older llama-index-llms-anthropic kept in ``additional_kwargs["thinking"]``."""
    if not isinstance(raw, Mapping) or not raw.get("signature"):
        return None
    text, signature = raw.get("thinking") or "", raw["signature"]
    if not isinstance(text, str) or not isinstance(signature, str):
        raise ConfigurationError("additional_kwargs['thinking'] must hold text and a signature")
    return Reasoning(text, signature, ANTHROPIC)


def _call(call_id: str | None, name: str, arguments: Mapping[str, Any] | str) -> ToolCall:
    """A neutral call; arguments given as text that is not a JSON object make an invalid
    call that keeps the text (see ``ToolCall``), never an empty one that hides it."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            error = "the arguments are not valid JSON"
        else:
            if isinstance(parsed, Mapping):
                return ToolCall(id=call_id or "", name=name, arguments=dict(parsed))
            error = "the arguments are not a JSON object"
        return ToolCall(id=call_id or "", name=name, raw_arguments=arguments, error=error)
    if not isinstance(arguments, Mapping):
        raise ConfigurationError(f"tool call {name!r} arguments must be a JSON object")
    return ToolCall(id=call_id or "", name=name, arguments=dict(arguments))


def _legacy_call(raw: Any) -> ToolCall:
    """A tool call kept in ``additional_kwargs["tool_calls"]`` by older integrations:
    OpenAI's ``{"id", "function": {"name", "arguments"}}``, Anthropic's ``{"id", "name",
    "input"}``, google-genai's ``{"name", "args", "thought_signature"}``."""
    if isinstance(raw, ToolCallBlock):
        return _call(raw.tool_call_id, raw.tool_name, raw.tool_kwargs)
    if isinstance(raw, ToolSelection):
        return _call(raw.tool_id, raw.tool_name, raw.tool_kwargs)
    if not isinstance(raw, Mapping):  # an SDK object, e.g. openai's ChatCompletionMessageToolCall
        fn = getattr(raw, "function", None)
        raw = {"id": getattr(raw, "id", ""), "function": vars(fn) if fn is not None else {}}
    fn = raw.get("function", raw)
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ConfigurationError(f"a tool call needs a function name, got {raw!r}"[:200])
    arguments: Any = next((fn[k] for k in ("arguments", "input", "args") if fn.get(k)), {})
    call = _call(raw.get("id"), fn["name"], arguments)
    return _signed(call, gemini_signature(raw.get("thought_signature")))


def to_tool(tool: BaseTool) -> Tool:
    """The neutral tool for a LlamaIndex tool (name, description, JSON schema)."""
    meta = tool.metadata
    return Tool(
        name=meta.get_name(),
        description=meta.description,
        parameters=meta.get_parameters_dict(),
    )


def to_tool_choice(
    tool_choice: str | Mapping[str, Any] | None, tool_required: bool, tools: Iterable[Tool]
) -> str | None:
    """``"auto"``, ``"none"``, ``"required"`` or a tool's name, from LlamaIndex's forms.

    Accepts OpenAI's ``{"type": "function", "function": {"name": ...}}`` and ``{"name":
    ...}``; ``tool_required`` means ``"required"`` when no explicit choice is given.
    """
    if isinstance(tool_choice, Mapping):
        fn = tool_choice.get("function", tool_choice)
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if not isinstance(name, str):
            raise ConfigurationError(f"tool_choice {dict(tool_choice)!r} names no tool")
        return name
    if tool_choice is not None:
        return tool_choice
    if not any(True for _ in tools):
        return None
    return "required" if tool_required else "auto"


def tool_selections(response: ChatResponse) -> list[ToolSelection]:
    """The tool calls of a response: its ``ToolCallBlock`` s, else legacy ``tool_calls``.

    A call whose arguments did not parse is selected with no arguments, as LlamaIndex's
    own integrations do; its text stays in the message's ``ToolCallBlock``.
    """
    message = response.message
    calls = [
        _call(b.tool_call_id, b.tool_name, b.tool_kwargs)
        for b in message.blocks
        if isinstance(b, ToolCallBlock)
    ]
    if not calls:
        calls = [_legacy_call(c) for c in message.additional_kwargs.get("tool_calls") or ()]
    return [
        ToolSelection(tool_id=c.id, tool_name=c.name, tool_kwargs=dict(c.arguments)) for c in calls
    ]
