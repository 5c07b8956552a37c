"""Pure converters between LangChain and the engine's neutral types.

Nothing here calls the engine or LangChain's callbacks: neutral replies and chunks turn
into ``AIMessage`` / ``AIMessageChunk`` (LangChain messages become neutral ones in
``_history``, re-exported here), and ``tool_choice`` takes LangChain's spellings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ToolCallChunk,
)
from langchain_core.messages import InvalidToolCall as LCInvalidToolCall
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import ToolCall as LCToolCall

from resilient_llm import ChatChunk, ChatResponse, ToolCall, Usage

from . import _reasoning
from ._history import to_messages

__all__ = [
    "call_metadata",
    "family_metadata",
    "reply_content",
    "to_ai_message",
    "to_chunk",
    "to_messages",
    "tool_call_chunks",
    "tool_choice",
    "usage_metadata",
]

# Families whose replies name themselves in ``response_metadata["model_provider"]``.
_NAMED_FAMILIES = frozenset({"gemini"})


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
    """Usage as LangChain's ``usage_metadata``: ``input_tokens`` the whole prompt, of which
    ``input_token_details`` ``cache_read`` / ``cache_creation`` were read from / written to
    the provider's prompt cache; ``output_tokens`` with ``output_token_details``
    ``reasoning`` among them (as ``ChatAnthropic`` and ``ChatGoogleGenerativeAI`` count)."""
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        input_token_details=InputTokenDetails(
            cache_read=usage.cached_input_tokens, cache_creation=usage.cache_write_tokens
        ),
        output_token_details=OutputTokenDetails(reasoning=usage.reasoning_tokens),
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


def reply_content(reply: ChatResponse) -> str | list[str | dict[Any, Any]]:
    """A reply's content: a str, or (when it has reasoning) ``ChatAnthropic``'s list of
    blocks, the reasoning first with its signatures, then the text."""
    reasoning, _ = _reasoning.split_text_only(reply.reasoning)
    if not reasoning:
        return reply.content
    blocks: list[str | dict[Any, Any]] = list(_reasoning.reasoning_blocks(reasoning))
    if reply.content:
        blocks.append({"type": "text", "text": reply.content})
    return blocks


def family_metadata(kind: str) -> dict[str, Any]:
    """``model_provider`` for a Gemini route's reply (see ``_reasoning``): LangChain's
    ``content_blocks`` then read its thinking blocks as Gemini's. Other families' replies
    go without it: a message without it is read as ``ChatAnthropic``'s, and LangChain's
    Anthropic translator would look for tool calls in ``tool_use`` content blocks."""
    name = _reasoning.model_provider(kind) if kind in _NAMED_FAMILIES else None
    return {} if name is None else {"model_provider": name}


def to_ai_message(reply: ChatResponse, kind: str = "") -> AIMessage:
    """The reply of a route of provider kind ``kind``."""
    return AIMessage(
        content=reply_content(reply),
        additional_kwargs=_refusal(reply.refusal)
        | _reasoning.split_text_only(reply.reasoning)[1]
        | _reasoning.signature_kwargs(reply.tool_calls),
        tool_calls=_tool_calls(reply.tool_calls),
        invalid_tool_calls=_invalid_tool_calls(reply.tool_calls),
        usage_metadata=usage_metadata(reply.usage),
        response_metadata={
            "model_name": reply.model,
            "provider": reply.provider,
            "finish_reason": reply.finish_reason,
            **family_metadata(kind),
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


def to_chunk(
    chunk: ChatChunk, first_index: int, blocks: _reasoning.StreamBlocks | None = None
) -> AIMessageChunk:
    """A streamed piece; ``first_index`` numbers its tool calls after earlier chunks' ones,
    ``blocks`` its content blocks after earlier ones (see ``StreamBlocks``).

    LangChain derives a chunk's calls from its ``tool_call_chunks`` by a lenient partial
    parse, which would take some broken arguments for valid ones; each call arrives whole
    here, so the chunk states its calls as the engine judged them, invalid ones with their
    ``error``. Chunks added together are parsed again by LangChain, as for any model.
    """
    blocks = blocks or _reasoning.StreamBlocks()
    message = AIMessageChunk(
        content=blocks.content(chunk.delta, chunk.reasoning),
        additional_kwargs=_refusal(chunk.refusal)
        | _reasoning.split_text_only(chunk.reasoning)[1]
        | _reasoning.signature_kwargs(chunk.tool_calls),
        tool_call_chunks=tool_call_chunks(chunk.tool_calls, first_index),
        usage_metadata=usage_metadata(chunk.usage),
    )
    if chunk.tool_calls:
        message.tool_calls = _tool_calls(chunk.tool_calls)
        message.invalid_tool_calls = _invalid_tool_calls(chunk.tool_calls)
    return message
