"""Pure converters between LangChain messages and the engine's neutral types.

Nothing here calls the engine or LangChain's callbacks: LangChain messages go in, neutral
:class:`~resilient_llm.Message` objects come out, and neutral replies and chunks turn back
into ``AIMessage`` / ``AIMessageChunk``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages import InvalidToolCall as LCInvalidToolCall
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import ToolCall as LCToolCall

from resilient_llm import ChatChunk, ChatResponse, Message, ToolCall, Usage

__all__ = [
    "call_metadata",
    "to_ai_message",
    "to_chunk",
    "to_messages",
    "tool_call_chunks",
    "tool_choice",
    "usage_metadata",
]

# Content blocks that carry no text the engine could send: the engine speaks text only.
_MEDIA_BLOCKS = frozenset({"image", "image_url", "audio", "input_audio", "file", "video"})
# Blocks that are dropped on purpose: tool calls travel in ``tool_calls``; reasoning traces
# belong to the provider that produced them and cannot be replayed to another family.
_SKIPPED_BLOCKS = frozenset(
    {"tool_use", "tool_call", "function_call", "thinking", "redacted_thinking", "reasoning"}
)
_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}
_ROLES |= {"system": "system", "developer": "system", "tool": "tool"}


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as neutral messages; unsupported content raises ``ValueError``."""
    return [_message(m, i) for i, m in enumerate(messages)]


def _message(message: BaseMessage, index: int) -> Message:
    text = _text(message.content, index)
    if isinstance(message, SystemMessage):
        return Message("system", text)
    if isinstance(message, HumanMessage):
        return Message("user", text, name=message.name)
    if isinstance(message, AIMessage):
        calls = tuple(
            ToolCall(id=c.get("id") or "", name=c["name"], arguments=dict(c["args"]))
            for c in message.tool_calls
        ) + tuple(_invalid_call(c, index) for c in message.invalid_tool_calls)
        return Message("assistant", text, tool_calls=calls, name=message.name)
    if isinstance(message, ToolMessage):
        return Message("tool", text, tool_call_id=message.tool_call_id, name=message.name)
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        role = _ROLES[message.role]
        if role == "tool":
            raise ValueError(f"messages[{index}]: use ToolMessage for tool results")
        return Message(role, text, name=message.name)  # type: ignore[arg-type]
    raise ValueError(
        f"messages[{index}]: ChatResilientLLM cannot send a {type(message).__name__}"
        + (f" with role {message.role!r}" if isinstance(message, ChatMessage) else "")
    )


def _invalid_call(call: LCInvalidToolCall, index: int) -> ToolCall:
    """An ``invalid_tool_calls`` entry, kept invalid: the engine decides per route whether
    its text can be sent back (see ``ToolCall``)."""
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"messages[{index}]: an invalid tool call without a name cannot be sent")
    raw = call.get("args")
    return ToolCall(
        id=call.get("id") or "",
        name=name,
        raw_arguments=raw if isinstance(raw, str) else "",
        error=call.get("error") or "the arguments did not parse",
    )


def _text(content: str | list[str | dict[Any, Any]], index: int) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if not isinstance(kind, str):
            raise ValueError(
                f"messages[{index}]: a content block's type must be a str, got {kind!r}"
            )
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind in _MEDIA_BLOCKS:
            raise ValueError(
                f"messages[{index}]: {kind!r} content is not supported: "
                "resilient-llm routes text, tool calls and structured output only"
            )
        elif kind not in _SKIPPED_BLOCKS:
            raise ValueError(f"messages[{index}]: unknown content block type {kind!r}")
    return "".join(parts)


def tool_choice(choice: object, tool_names: Sequence[str]) -> str | None:
    """LangChain's ``tool_choice`` spellings as the engine's neutral one.

    ``"any"`` and ``"required"`` force some tool; ``True`` forces the only tool (or some
    tool, when several are bound); a tool's name, or an OpenAI-style
    ``{"type": "function", "function": {"name": ...}}``, forces that tool.
    """
    if choice is None or choice is False:
        return None
    if choice is True:
        return tool_names[0] if len(tool_names) == 1 else "required"
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        if isinstance(name, str):
            return name
        raise ValueError(f"tool_choice dict names no function: {choice!r}")
    if isinstance(choice, str):
        return {"any": "required"}.get(choice, choice)
    raise ValueError(f"unsupported tool_choice {choice!r}")


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def _tool_calls(calls: Iterable[ToolCall]) -> list[LCToolCall]:
    return [
        LCToolCall(name=c.name, args=dict(c.arguments), id=c.id or None, type="tool_call")
        for c in calls
        if not c.invalid
    ]


def _invalid_tool_calls(calls: Iterable[ToolCall]) -> list[LCInvalidToolCall]:
    """Calls whose arguments did not parse, as LangChain keeps them: the raw text in
    ``args`` and what is wrong in ``error``."""
    return [
        LCInvalidToolCall(
            name=c.name,
            args=c.raw_arguments,
            id=c.id or None,
            error=c.error,
            type="invalid_tool_call",
        )
        for c in calls
        if c.invalid
    ]


def call_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's account of a call (``ChatResponse.metadata``), as response metadata."""
    return {
        "attempts": list(metadata.get("attempts", ())),
        "attempt_count": metadata.get("attempt_count", 0),
        "failovers": list(metadata.get("failovers", ())),
        "waited": metadata.get("waited", 0.0),
        **({"cache": metadata["cache"]} if "cache" in metadata else {}),
    }


def _refusal(text: str | None) -> dict[str, Any]:
    # Where ChatOpenAI puts a refusal, so code written for it finds ours.
    return {} if text is None else {"refusal": text}


def to_ai_message(reply: ChatResponse) -> AIMessage:
    return AIMessage(
        content=reply.content,
        additional_kwargs=_refusal(reply.refusal),
        tool_calls=_tool_calls(reply.tool_calls),
        invalid_tool_calls=_invalid_tool_calls(reply.tool_calls),
        usage_metadata=usage_metadata(reply.usage),
        response_metadata={
            "model_name": reply.model,
            "provider": reply.provider,
            "finish_reason": reply.finish_reason,
            **call_metadata(reply.metadata),
        },
    )


def tool_call_chunks(calls: Iterable[ToolCall], first_index: int) -> list[ToolCallChunk]:
    """Complete tool calls as chunks (the engine streams each call whole, in one chunk);
    an invalid call's chunk carries the text the model wrote."""
    return [
        ToolCallChunk(
            name=c.name,
            args=(
                c.raw_arguments if c.invalid else json.dumps(dict(c.arguments), ensure_ascii=False)
            ),
            id=c.id or None,
            index=first_index + i,
            type="tool_call_chunk",
        )
        for i, c in enumerate(calls)
    ]


def to_chunk(chunk: ChatChunk, first_index: int) -> AIMessageChunk:
    """A streamed piece; ``first_index`` numbers its tool calls after earlier chunks' ones.

    LangChain derives a chunk's calls from its ``tool_call_chunks`` by a lenient partial
    parse, which would take some broken arguments for valid ones; each call arrives whole
    here, so the chunk states its calls as the engine judged them, invalid ones with their
    ``error``. Chunks added together are parsed again by LangChain, as for any model.
    """
    message = AIMessageChunk(
        content=chunk.delta,
        additional_kwargs=_refusal(chunk.refusal),
        tool_call_chunks=tool_call_chunks(chunk.tool_calls, first_index),
        usage_metadata=usage_metadata(chunk.usage),
    )
    if chunk.tool_calls:
        message.tool_calls = _tool_calls(chunk.tool_calls)
        message.invalid_tool_calls = _invalid_tool_calls(chunk.tool_calls)
    return message
