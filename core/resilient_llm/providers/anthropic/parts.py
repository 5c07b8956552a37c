"""Neutral messages as Anthropic content blocks: text, images, documents, tool results and
thinking, with their ``cache_control`` markers.

Reasoning goes back only as the family issued it: an Anthropic ``Reasoning`` with its
signature becomes a ``thinking`` block (``redacted_thinking`` when redacted), first in its
assistant turn; reasoning of another family, or without a signature, is left out (the API
answers 400 to a signature it did not issue). Audio has no Anthropic form: the spec skips
the route for it (see ``thinking.media_reason``), so it never reaches these converters.
"""

from __future__ import annotations

from typing import Any

from ...content import Document, Image, Part, Reasoning, Text
from ...errors import BadRequest
from ...messages import Message
from .._tool_calls import object_arguments

__all__ = ["FAMILY", "message_blocks", "messages_to_anthropic", "system_param"]

FAMILY = "anthropic"

Block = dict[str, Any]


def _cached(block: Block, part: Part) -> Block:
    marker = getattr(part, "cache_control", None)
    if marker is not None:
        block["cache_control"] = dict(marker)
    return block


def _source(part: Image | Document) -> Block:
    if part.url is not None:
        return {"type": "url", "url": part.url}
    if isinstance(part, Document) and part.mime_type == "text/plain":
        assert part.data is not None  # a part without a URL holds bytes
        return {"type": "text", "media_type": "text/plain", "data": part.data.decode("utf-8")}
    return {"type": "base64", "media_type": part.mime_type, "data": part.base64}


def part_block(part: Part) -> Block | None:
    """One part as a content block; None for what is not sent (foreign or unsigned
    reasoning, empty text)."""
    if isinstance(part, Text):
        return _cached({"type": "text", "text": part.text}, part) if part.text else None
    if isinstance(part, Image):
        return _cached({"type": "image", "source": _source(part)}, part)
    if isinstance(part, Document):
        block: Block = {"type": "document", "source": _source(part)}
        if part.name:
            block["title"] = part.name
        return _cached(block, part)
    if isinstance(part, Reasoning):
        if part.family != FAMILY or part.signature is None:
            return None
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.signature}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    # Audio: the spec's unsendable check skips the route before a request is built.
    raise BadRequest(f"anthropic takes no {part.kind} parts")


def _tool_result(message: Message) -> Block:
    content: str | list[Block]
    if isinstance(message.content, str):
        content = message.content
    else:
        blocks = [part_block(p) for p in message.content]
        content = [b for b in blocks if b is not None]
        if all(b["type"] == "text" and "cache_control" not in b for b in content):
            content = message.text  # plain text stays a string, as before
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}


def message_blocks(message: Message) -> list[Block]:
    """A message's content blocks: reasoning first (the API wants a turn's thinking
    before its text and tool use), then the parts in order, then its tool calls."""
    if message.role == "tool":
        return [_tool_result(message)]
    parts = message.parts
    ordered: list[Part] = [p for p in parts if isinstance(p, Reasoning)]
    ordered += [p for p in parts if not isinstance(p, Reasoning)]
    blocks = [b for b in (part_block(p) for p in ordered) if b is not None]
    for call in message.tool_calls if message.role == "assistant" else ():
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": object_arguments(call, FAMILY),
            }
        )
    return blocks


def system_param(messages: tuple[Message, ...]) -> str | list[Block] | None:
    """The system prompt: texts joined into one string, or a list of text blocks when
    any carries ``cache_control`` (a marker has no place in a string)."""
    system = [m for m in messages if m.role == "system"]
    texts = [p for m in system for p in m.parts if isinstance(p, Text) and p.text]
    if any(p.cache_control is not None for p in texts):
        return [_cached({"type": "text", "text": p.text}, p) for p in texts]
    joined = "\n\n".join(m.text for m in system if m.text)
    return joined or None


def messages_to_anthropic(
    messages: tuple[Message, ...],
) -> tuple[str | list[Block] | None, list[Block]]:
    """``(system, messages)``: tool results sent in user turns.

    Consecutive turns of one role merge into one message (several tool results answer one
    assistant turn together; a user text after tool results joins their turn).
    """
    out: list[Block] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = message_blocks(message)
        if not blocks:
            blocks = [{"type": "text", "text": message.text}]
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system_param(messages), out
