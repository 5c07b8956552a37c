"""LangChain messages as the engine's neutral messages (the history a call sends).

Content blocks become parts (``_content``), reasoning blocks and signatures of assistant
messages become ``Reasoning`` parts and signed tool calls (``_reasoning``); what no route
can take raises ``ValueError`` naming the message and the block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages import InvalidToolCall as LCInvalidToolCall

from resilient_llm import ConfigurationError, Message, Text, ToolCall

from . import _content as _content_parts
from . import _reasoning
from ._content import Part

__all__ = ["to_messages"]

# Blocks of an assistant message that travel elsewhere: its tool calls in ``tool_calls``.
_CALL_BLOCKS = frozenset(
    {"tool_use", "tool_call", "function_call", "tool_call_chunk", "invalid_tool_call"}
)
_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}
_ROLES |= {"system": "system", "developer": "system", "tool": "tool"}


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as neutral messages; content no route can take raises
    ``ValueError`` naming the message and the block."""
    return [out for i, m in enumerate(messages) for out in _message(m, i)]


def _message(message: BaseMessage, index: int) -> list[Message]:
    where = f"messages[{index}]"
    try:
        if isinstance(message, HumanMessage) and _has_results(message.content):
            return _results_then_user(message, where)
        return [_neutral(message, where)]
    except ConfigurationError as exc:  # what Message refuses (media in a system message...)
        text = str(exc)
        raise ValueError(text if text.startswith(where) else f"{where}: {text}") from None


def _has_results(content: str | list[str | dict[Any, Any]]) -> bool:
    return not isinstance(content, str) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def _results_then_user(message: HumanMessage, where: str) -> list[Message]:
    """A user turn holding Anthropic ``tool_result`` blocks (as ``ChatAnthropic`` takes
    them): a tool message per result, in order, then the rest of the turn."""
    out: list[Message] = []
    rest: list[str | dict[Any, Any]] = []
    for k, block in enumerate(message.content):
        if not (isinstance(block, dict) and block.get("type") == "tool_result"):
            rest.append(block)
            continue
        here = f"{where}.content[{k}]"
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise ValueError(f"{here}: a tool_result block needs its tool_use_id")
        result = block.get("content", "")
        content = _content(result if isinstance(result, str | list) else str(result), here, None)
        out.append(Message("tool", content, tool_call_id=call_id))
    if rest:
        out.append(Message("user", _content(rest, where, None), name=message.name))
    return out


def _neutral(message: BaseMessage, where: str) -> Message:
    if isinstance(message, AIMessage):
        return _assistant(message, where)
    content = _content(message.content, where, None)
    if isinstance(message, SystemMessage):
        return Message("system", content)
    if isinstance(message, HumanMessage):
        return Message("user", content, name=message.name)
    if isinstance(message, ToolMessage):
        return Message("tool", content, tool_call_id=message.tool_call_id, name=message.name)
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        role = _ROLES[message.role]
        if role == "tool":
            raise ValueError(f"{where}: use ToolMessage for tool results")
        if role == "assistant":
            return _assistant(AIMessage(message.content, name=message.name), where)
        return Message(role, content, name=message.name)  # type: ignore[arg-type]
    raise ValueError(
        f"{where}: ChatResilientLLM cannot send a {type(message).__name__}"
        + (f" with role {message.role!r}" if isinstance(message, ChatMessage) else "")
    )


def _assistant(message: AIMessage, where: str) -> Message:
    family = _reasoning.family_of(message)
    signed = _reasoning.call_signatures(message, family)
    listed = {c.get("id") for c in message.tool_calls} | {
        c.get("id") for c in message.invalid_tool_calls
    }
    calls = (
        _unlisted_uses(message, listed)
        + tuple(
            ToolCall(
                id=c.get("id") or "",
                name=c["name"],
                arguments=dict(c["args"]),
                signature=signed.get(c.get("id") or "", (None, None))[0],
                family=signed.get(c.get("id") or "", (None, None))[1],
            )
            for c in message.tool_calls
        )
        + tuple(_invalid_call(c, where) for c in message.invalid_tool_calls)
    )
    content = _content(message.content, where, family)
    shown = _reasoning.text_only_part(message)
    if shown is not None:  # first, as in the reply it came from
        rest = content if isinstance(content, tuple) else (Text(content),) if content else ()
        content = (shown, *rest)
    return Message("assistant", content, tool_calls=calls, name=message.name)


def _unlisted_uses(message: AIMessage, listed: set[str | None]) -> tuple[ToolCall, ...]:
    """Anthropic ``tool_use`` content blocks that ``tool_calls`` does not list (a history
    written by hand in ``ChatAnthropic``'s form), as tool calls."""
    if isinstance(message.content, str):
        return ()
    return tuple(
        ToolCall(id=b["id"], name=b["name"], arguments=dict(b.get("input") or {}))
        for b in message.content
        if isinstance(b, dict)
        and b.get("type") == "tool_use"
        and isinstance(b.get("id"), str)
        and isinstance(b.get("name"), str)
        and b["id"] not in listed
    )


def _invalid_call(call: LCInvalidToolCall, where: str) -> ToolCall:
    """An ``invalid_tool_calls`` entry, kept invalid: the engine decides per route whether
    its text can be sent back (see ``ToolCall``)."""
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: an invalid tool call without a name cannot be sent")
    raw = call.get("args")
    return ToolCall(
        id=call.get("id") or "",
        name=name,
        raw_arguments=raw if isinstance(raw, str) else "",
        error=call.get("error") or "the arguments did not parse",
    )


def _content(
    content: str | list[str | dict[Any, Any]], where: str, family: str | None
) -> str | tuple[Part, ...]:
    """A message's content: a str when it is plain text, else its parts in order.

    ``family`` is set for an assistant message: the family its reasoning blocks and
    signatures came from (see ``_reasoning``); elsewhere a reasoning block is an error.
    """
    if isinstance(content, str):
        return content
    parts: list[Part] = []
    for k, block in enumerate(content):
        parts.extend(_block(block, f"{where}.content[{k}]", family))
    if all(isinstance(p, Text) and p.cache_control is None for p in parts):
        return "".join(p.text for p in parts if isinstance(p, Text))
    # An empty text carries nothing, and some families refuse one.
    return tuple(
        p for p in parts if not (isinstance(p, Text) and not p.text and not p.cache_control)
    )


def _block(block: object, where: str, family: str | None) -> list[Part]:
    if isinstance(block, str):
        return [Text(block)]
    if not isinstance(block, Mapping):
        raise ValueError(f"{where}: a content block must be a str or a dict, got {block!r}")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"{where}: a content block's type must be a str, got {kind!r}")
    if kind == "non_standard" and isinstance(block.get("value"), Mapping):
        return _block(block["value"], where, family)
    if kind == "text":
        text = _content_parts.text_part(block, where)
        signed = None if family is None else _reasoning.text_signature(block, family)
        return [text] if signed is None else [signed, text]
    if kind in _reasoning.REASONING_TYPES:
        if family is None:
            raise ValueError(f"{where}: a {kind!r} block belongs in an assistant message only")
        part = _reasoning.reasoning_part(block, family, where)
        return [] if part is None else [part]
    if kind in _CALL_BLOCKS and family is not None:
        return []
    return [_content_parts.media_part(kind, block, where)]
