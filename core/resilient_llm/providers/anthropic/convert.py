"""Neutral request/response <-> Anthropic messages, as pure functions.

Structured output uses no beta feature: the schema becomes a tool named
``structured_output`` that the model is made to call, and the tool's input, serialised as
JSON, is the reply's content. A schema that is not an object is wrapped in one
(``{"value": ...}``) because a tool's input must be an object, and unwrapped on the way
back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ProviderUnavailable
from ...messages import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
from .._shape import Malformed, count, get, items, node, optional_node, reading, text
from .._tool_calls import object_arguments, tool_call
from ..base import Provider, rate_limit_headers

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "STRUCTURED_TOOL",
    "AnthropicStreamState",
    "build_params",
    "finish_reason",
    "messages_to_anthropic",
    "refusal_reason",
    "response_from_message",
]

DEFAULT_MAX_TOKENS = 1024
"""Anthropic requires ``max_tokens``; this is sent when the request sets none."""

STRUCTURED_TOOL = "structured_output"

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


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.text,
            }
        ]
    blocks: list[dict[str, Any]] = []
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    for call in message.tool_calls if message.role == "assistant" else ():
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": object_arguments(call, "anthropic"),
            }
        )
    return blocks


def messages_to_anthropic(
    messages: tuple[Message, ...],
) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system, messages)``: system texts joined, tool results sent in user turns.

    Consecutive turns of one role merge into one message (several tool results answer one
    assistant turn together; a user text after tool results joins their turn).
    """
    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text)
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            blocks = [{"type": "text", "text": message.text}]
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return (system or None), out


def _structured_schema(request: ChatRequest) -> tuple[dict[str, Any], bool] | None:
    """The structured-output tool's input schema and whether it wraps a non-object."""
    if request.response_schema is not None:
        schema = dict(request.response_schema)
        if schema.get("type") == "object":
            return schema, False
        return {"type": "object", "properties": {"value": schema}, "required": ["value"]}, True
    if request.json_mode:
        return {"type": "object", "additionalProperties": True}, False
    return None


def _tool_choice(choice: str | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


def build_params(request: ChatRequest, provider: Provider) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` for ``request``.

    With structured output and no tools of the caller's, the model is forced to call the
    ``structured_output`` tool; with tools too, it must call one of them (``any``) unless
    the caller named one or said ``none``.
    """
    system, messages = messages_to_anthropic(request.messages)
    params: dict[str, Any] = {
        "model": request.model or provider.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system is not None:
        params["system"] = system
    tools = [
        {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
        for t in request.tools
    ]
    choice = _tool_choice(request.tool_choice) if tools else None
    structured = _structured_schema(request)
    if structured is not None:
        tools.append(
            {
                "name": STRUCTURED_TOOL,
                "description": "Give the final answer as the input of this tool.",
                "input_schema": structured[0],
            }
        )
        if not request.tools:
            choice = {"type": "tool", "name": STRUCTURED_TOOL}
        elif choice is None or choice["type"] == "auto":
            choice = {"type": "any"}
    if tools:
        params["tools"] = tools
    if choice is not None:
        params["tool_choice"] = choice
    if request.temperature is not None:
        params["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is [0, 1]
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    return params


def wraps_schema(request: ChatRequest) -> bool:
    """Whether the structured-output schema was wrapped in ``{"value": ...}``."""
    structured = _structured_schema(request)
    return structured is not None and structured[1]


def structured_text(arguments: Mapping[str, Any], wrapped: bool) -> str:
    """The reply's content for the structured-output tool's input."""
    value: Any = arguments.get("value") if wrapped else dict(arguments)
    return json.dumps(value, ensure_ascii=False)


def _usage(usage: Any, path: str) -> Usage | None:
    if usage is None:
        return None
    node(usage, path)
    inputs = sum(
        count(usage, name, path)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(inputs, count(usage, "output_tokens", path))


def _call(block: Any, path: str, raw: object, *, decoded: bool) -> ToolCall:
    name = text(block, "name", path, required=True)
    if not name:
        raise Malformed(f"{path}.name is empty")
    return tool_call(text(block, "id", path) or "", name, raw, decoded=decoded)


def _structured(call: ToolCall, wrapped: bool) -> str:
    if call.invalid:
        raise Malformed(f"the {STRUCTURED_TOOL} input is not an object")
    return structured_text(call.arguments, wrapped)


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
        refusal=refusal_reason(raw_finish, getattr(message, "stop_details", None)),
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

    Text deltas pass on as they arrive; tool calls are assembled from their JSON deltas
    and emitted once at the end; the ``structured_output`` call's input is emitted as one
    text delta when its block closes, serialised as in the non-streamed reply. A stream
    without ``message_stop`` was cut: :meth:`finish` raises.
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

    def _chunk(self, text: str) -> ChatChunk:
        return ChatChunk(delta=text, provider=self.route, model=self.model)

    def feed(self, event: Any) -> list[ChatChunk]:
        with reading(self.route):
            return self._feed(node(event, "event"))

    def _feed(self, event: Any) -> list[ChatChunk]:
        kind = text(event, "type", "event", required=True)
        if kind == "message_start":
            message = node(get(event, "message"), "message_start.message")
            self.model = text(message, "model", "message_start.message") or self.model
            usage = optional_node(message, "usage", "message_start.message")
            self._input = _usage(usage, "message_start.message.usage")
            self._output_tokens = count(usage, "output_tokens", "message_start.usage")
        elif kind == "content_block_start":
            block = node(get(event, "content_block"), "content_block_start.content_block")
            path = "content_block_start.content_block"
            self._blocks[_index(event, kind)] = _Block(
                kind=text(block, "type", path, required=True) or "",
                id=text(block, "id", path) or "",
                name=text(block, "name", path) or "",
            )
        elif kind == "content_block_delta":
            index = _index(event, kind)
            delta = node(get(event, "delta"), "content_block_delta.delta")
            delta_kind = text(delta, "type", "content_block_delta.delta", required=True)
            if delta_kind == "text_delta":
                piece = text(delta, "text", "content_block_delta.delta", required=True)
                return [self._chunk(piece)] if piece else []
            if delta_kind == "input_json_delta" and index in self._blocks:
                part = text(delta, "partial_json", "content_block_delta.delta", required=True)
                self._blocks[index].parts.append(part or "")
        elif kind == "content_block_stop":
            return self._close_block(_index(event, kind))
        elif kind == "message_delta":
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
        elif kind == "message_stop":
            self._stopped = True
        return []

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
        inputs = self._input
        usage = Usage(inputs.input_tokens if inputs else 0, self._output_tokens)
        return [
            ChatChunk(
                provider=self.route,
                model=self.model,
                tool_calls=tuple(self._calls),
                usage=usage,
                finish_reason=finish,
                refusal=refusal_reason(self._stop_reason, self._stop_details),
            )
        ]
