"""Anthropic replies and stream events as neutral replies and chunks.

Thinking blocks become ``Reasoning(text, signature, family="anthropic")`` and
``redacted_thinking`` blocks ``Reasoning(signature=data, redacted=True)``, so a reply's
:attr:`~resilient_llm.messages.ChatResponse.message` sends them back as received. Usage adds
cache reads and writes into ``input_tokens`` (Anthropic reports them apart) and keeps them
as ``cached_input_tokens`` and ``cache_write_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...content import Reasoning
from ...errors import ProviderUnavailable
from ...messages import ChatChunk, ChatResponse, ToolCall, Usage
from .._shape import (
    Malformed,
    count,
    get,
    items,
    node,
    optional_node,
    reading,
    text,
    unavailable,
)
from .._tool_calls import tool_call
from ..base import rate_limit_headers
from .parts import FAMILY
from .structured import STRUCTURED_TOOL, structured_text

__all__ = ["AnthropicStreamState", "finish_reason", "refusal_reason", "response_from_message"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}


def finish_reason(raw: str | None) -> str | None:
    """Anthropic's stop reason, normalised (unknown reasons read as ``"stop"``)."""
    return None if raw is None else _FINISH.get(raw, "stop")


def refusal_reason(stop_reason: object, stop_details: object) -> str | None:
    """What a reply ended by ``stop_reason: "refusal"`` says about it: the explanation in
    ``stop_details`` if any, else its category, else just ``"refused"``; None otherwise."""
    if stop_reason != "refusal":
        return None
    explanation = _detail(stop_details, "explanation")
    if explanation:
        return explanation
    category = _detail(stop_details, "category")
    return f"refused: {category}" if category else "refused"


def _detail(details: object, name: str) -> str | None:
    value = details.get(name) if isinstance(details, Mapping) else getattr(details, name, None)
    return value if isinstance(value, str) and value else None


_CACHE = ("cache_creation_input_tokens", "cache_read_input_tokens")


def _usage(usage: Any, path: str) -> Usage | None:
    if usage is None:
        return None
    node(usage, path)
    fresh = count(usage, "input_tokens", path)
    writes, reads = (count(usage, name, path) for name in _CACHE)
    return Usage(
        fresh + writes + reads,
        count(usage, "output_tokens", path),
        cached_input_tokens=reads,
        cache_write_tokens=writes,
    )


def _call(block: Any, path: str, raw: object, *, decoded: bool) -> ToolCall:
    name = text(block, "name", path, required=True)
    if not name:
        raise Malformed(f"{path}.name is empty")
    return tool_call(text(block, "id", path) or "", name, raw, decoded=decoded)


def _structured(call: ToolCall, wrapped: bool) -> str:
    if call.invalid:
        raise Malformed(f"the {STRUCTURED_TOOL} input is not an object")
    return structured_text(call.arguments, wrapped)


def _reasoning(block: Any, kind: str | None, path: str) -> Reasoning | None:
    if kind == "thinking":
        signature = text(block, "signature", path) or None
        return Reasoning(text(block, "thinking", path) or "", signature, FAMILY)
    if kind == "redacted_thinking":
        data = text(block, "data", path, required=True) or ""
        return Reasoning(signature=data, family=FAMILY, redacted=True)
    return None


def response_from_message(
    message: Any, route: str, headers: Mapping[str, str] | None, wrapped: bool = False
) -> ChatResponse:
    """An Anthropic ``Message`` as a neutral reply.

    A ``structured_output`` tool call becomes the content, and the reply a plain stop. A
    body that is not a message (``type`` other than ``"message"``, ``content`` not a list
    of blocks...) raises ``ProviderUnavailable`` naming the field: a failed attempt.
    """
    with reading(route):
        return _response(message, route, headers, wrapped)


def _response(
    message: Any, route: str, headers: Mapping[str, str] | None, wrapped: bool
) -> ChatResponse:
    node(message, "body")
    kind = text(message, "type", "body")
    if kind not in (None, "message"):
        raise Malformed("body.type is not 'message'")
    if get(message, "content") is None:
        raise Malformed("body.content is missing")
    texts: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[Reasoning] = []
    structured: str | None = None
    for index, block in enumerate(items(message, "content", "body")):
        path = f"content[{index}]"
        node(block, path)
        kind = text(block, "type", path, required=True)
        if kind == "text":
            texts.append(text(block, "text", path, required=True) or "")
        elif kind == "tool_use":
            call = _call(block, path, get(block, "input"), decoded=True)
            if call.name == STRUCTURED_TOOL:
                structured = _structured(call, wrapped)
            else:
                calls.append(call)
        elif (piece := _reasoning(block, kind, path)) is not None:
            reasoning.append(piece)
    raw_finish = text(message, "stop_reason", "body")
    finish = finish_reason(raw_finish)
    if structured is not None and not calls:
        finish = "stop" if finish == "tool_calls" else finish
    return ChatResponse(
        content=structured if structured is not None else "".join(texts),
        provider=route,
        model=text(message, "model", "body") or "",
        tool_calls=tuple(calls),
        usage=_usage(get(message, "usage"), "body.usage"),
        finish_reason=finish,
        metadata={"raw_finish_reason": raw_finish, "id": text(message, "id", "body")},
        rate_limit_headers=rate_limit_headers(headers),
        refusal=refusal_reason(raw_finish, get(message, "stop_details")),
        reasoning=tuple(reasoning),
    )


@dataclass
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


def _index(event: Any, kind: str) -> int:
    index = get(event, "index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise Malformed(f"{kind}.index is not an integer")
    return index


@dataclass
class AnthropicStreamState:
    """Turns Anthropic stream events into neutral chunks.

    Text deltas pass on as they arrive, and thinking deltas as reasoning pieces (the
    block's signature in a piece of its own, a redacted block whole); tool calls are
    assembled from their JSON deltas and emitted once at the end; the
    ``structured_output`` call's input is emitted as one text delta when its block
    closes, serialised as in the non-streamed reply. Usage comes from ``message_start``
    and ``message_delta`` (the later counts win). A stream without ``message_stop`` was
    cut: :meth:`finish` raises.
    """

    route: str
    wrapped: bool = False
    model: str = ""
    _input: Usage | None = None
    _output_tokens: int = 0
    _stop_reason: str | None = None
    _stop_details: Any = None
    _stopped: bool = False
    _blocks: dict[int, _Block] = field(default_factory=dict)
    _calls: list[ToolCall] = field(default_factory=list)
    _structured: bool = False
    _id: str | None = None

    def _chunk(self, text: str = "", reasoning: Reasoning | None = None) -> ChatChunk:
        pieces = () if reasoning is None else (reasoning,)
        return ChatChunk(delta=text, provider=self.route, model=self.model, reasoning=pieces)

    def feed(self, event: Any) -> list[ChatChunk]:
        # As reading() does, without a context manager's frames per event.
        try:
            return self._feed(node(event, "event"))
        except Malformed as exc:
            raise unavailable(self.route, exc) from None

    def _feed(self, event: Any) -> list[ChatChunk]:
        kind = text(event, "type", "event", required=True)
        if kind == "message_start":
            message = node(get(event, "message"), "message_start.message")
            self.model = text(message, "model", "message_start.message") or self.model
            self._id = text(message, "id", "message_start.message") or self._id
            usage = optional_node(message, "usage", "message_start.message")
            self._input = _usage(usage, "message_start.message.usage")
            self._output_tokens = count(usage, "output_tokens", "message_start.usage")
        elif kind == "content_block_start":
            return self._open_block(event, kind)
        elif kind == "content_block_delta":
            return self._delta(event, kind)
        elif kind == "content_block_stop":
            return self._close_block(_index(event, kind))
        elif kind == "message_delta":
            self._message_delta(event)
        elif kind == "message_stop":
            self._stopped = True
        return []

    def _open_block(self, event: Any, kind: str) -> list[ChatChunk]:
        path = "content_block_start.content_block"
        block = node(get(event, "content_block"), path)
        block_kind = text(block, "type", path, required=True) or ""
        self._blocks[_index(event, kind)] = _Block(
            kind=block_kind, id=text(block, "id", path) or "", name=text(block, "name", path) or ""
        )
        if block_kind == "redacted_thinking":
            piece = _reasoning(block, block_kind, path)
            return [self._chunk(reasoning=piece)] if piece else []
        return []

    def _delta(self, event: Any, kind: str) -> list[ChatChunk]:
        index = _index(event, kind)
        path = "content_block_delta.delta"
        delta = node(get(event, "delta"), path)
        delta_kind = text(delta, "type", path, required=True)
        if delta_kind == "text_delta":
            piece = text(delta, "text", path, required=True)
            return [self._chunk(piece)] if piece else []
        if delta_kind == "thinking_delta":
            thought = text(delta, "thinking", path, required=True)
            return [self._chunk(reasoning=Reasoning(thought, family=FAMILY))] if thought else []
        if delta_kind == "signature_delta":
            signature = text(delta, "signature", path, required=True) or ""
            return [self._chunk(reasoning=Reasoning("", signature, FAMILY))]
        if delta_kind == "input_json_delta" and index in self._blocks:
            part = text(delta, "partial_json", path, required=True)
            self._blocks[index].parts.append(part or "")
        return []

    def _message_delta(self, event: Any) -> None:
        delta = optional_node(event, "delta", "message_delta")
        reason = text(delta, "stop_reason", "message_delta.delta") if delta else None
        self._stop_reason = reason or self._stop_reason
        details = get(delta, "stop_details") if delta else None
        self._stop_details = details or self._stop_details
        usage = optional_node(event, "usage", "message_delta")
        if usage is not None:
            output = count(usage, "output_tokens", "message_delta.usage")
            self._output_tokens = output or self._output_tokens
            if get(usage, "input_tokens") is not None:
                self._input = _usage(usage, "message_delta.usage")

    def _close_block(self, index: int) -> list[ChatChunk]:
        block = self._blocks.pop(index, None)
        if block is None or block.kind != "tool_use":
            return []
        if not block.name:
            raise Malformed(f"tool_use block {index} has no name")
        call = tool_call(block.id, block.name, "".join(block.parts))
        if block.name == STRUCTURED_TOOL:
            self._structured = True
            return [self._chunk(_structured(call, self.wrapped))]
        self._calls.append(call)
        return []

    def finish(self) -> list[ChatChunk]:
        if not self._stopped:
            raise ProviderUnavailable(
                f"{self.route}: stream ended without its terminal event", provider=self.route
            )
        finish = finish_reason(self._stop_reason)
        if self._structured and not self._calls and finish == "tool_calls":
            finish = "stop"
        inputs = self._input or Usage()
        usage = Usage(
            inputs.input_tokens,
            self._output_tokens,
            cached_input_tokens=inputs.cached_input_tokens,
            cache_write_tokens=inputs.cache_write_tokens,
        )
        return [
            ChatChunk(
                provider=self.route,
                model=self.model,
                tool_calls=tuple(self._calls),
                usage=usage,
                finish_reason=finish,
                refusal=refusal_reason(self._stop_reason, self._stop_details),
                # As a whole reply's metadata says (a reply assembled from chunks keeps it).
                metadata={"raw_finish_reason": self._stop_reason, "id": self._id},
            )
        ]
