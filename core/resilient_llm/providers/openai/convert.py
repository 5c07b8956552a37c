"""Neutral request/response <-> OpenAI chat completions, as pure functions.

No I/O and no SDK import at runtime: the parameters are plain dicts (what the SDK sends
as JSON) and responses are read by attribute, so these functions are tested on their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import ProviderUnavailable
from ...messages import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
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
from ..base import Provider, rate_limit_headers

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

__all__ = [
    "OpenAIStreamState",
    "build_params",
    "finish_reason",
    "message_to_openai",
    "response_from_completion",
]

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(raw: str | None) -> str | None:
    """OpenAI's finish reason, normalised (unknown reasons read as ``"stop"``).

    A refusal is not told by the finish reason but by ``refusal`` text: see
    :func:`response_from_completion`.
    """
    return None if raw is None else _FINISH.get(raw, "stop")


def message_to_openai(message: Message) -> dict[str, Any]:
    """One neutral message as an OpenAI chat message dict."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    out: dict[str, Any] = {"role": message.role, "content": message.text}
    if message.name and message.role in ("user", "system"):
        out["name"] = message.name
    if message.role == "assistant" and message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments_text(call)},
            }
            for call in message.tool_calls
        ]
        if not message.text:
            out["content"] = None
    return out


def _arguments_text(call: ToolCall) -> str:
    # An invalid call goes back exactly as the model wrote it: this protocol carries the
    # arguments as text, so nothing needs to be guessed.
    if call.raw_arguments is not None and call.invalid:
        return call.raw_arguments
    return json.dumps(dict(call.arguments))


def _tool_choice(choice: str | None) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def build_params(request: ChatRequest, provider: Provider) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for ``request``.

    ``max_tokens`` goes out as ``max_completion_tokens`` to OpenAI itself (its reasoning
    models refuse ``max_tokens``) and as ``max_tokens`` to an OpenAI-compatible
    ``base_url`` (vLLM, Ollama, Groq and older servers know only that one).
    """
    params: dict[str, Any] = {
        "model": request.model or provider.model,
        "messages": [message_to_openai(m) for m in request.messages],
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters),
                },
            }
            for tool in request.tools
        ]
        if request.tool_choice is not None:
            params["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_schema is not None:
        schema = dict(request.response_schema)
        name = schema.get("title") if isinstance(schema.get("title"), str) else None
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name or "response", "schema": schema, "strict": False},
        }
    elif request.json_mode:
        params["response_format"] = {"type": "json_object"}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        key = "max_tokens" if provider.base_url is not None else "max_completion_tokens"
        params[key] = request.max_tokens
    if request.stop:
        params["stop"] = list(request.stop)
    return params


def _tool_calls(message: Any, path: str) -> tuple[ToolCall, ...]:
    calls = []
    for index, raw in enumerate(items(message, "tool_calls", path)):
        where = f"{path}.tool_calls[{index}]"
        node(raw, where)
        function = optional_node(raw, "function", where)
        if function is None:  # a custom (non-function) tool call: not ours to represent
            if text(raw, "type", where) in (None, "function"):
                raise Malformed(f"{where}.function is missing")
            continue
        name = text(function, "name", f"{where}.function", required=True)
        if not name:
            raise Malformed(f"{where}.function.name is empty")
        arguments = get(function, "arguments")
        if arguments is not None and not isinstance(arguments, str):
            raise Malformed(f"{where}.function.arguments is not a string")
        calls.append(tool_call(text(raw, "id", where) or "", name, arguments))
    return tuple(calls)


def _usage(holder: Any, path: str) -> Usage | None:
    usage = optional_node(holder, "usage", path)
    if usage is None:
        return None
    where = f"{path}.usage"
    return Usage(count(usage, "prompt_tokens", where), count(usage, "completion_tokens", where))


def response_from_completion(
    completion: ChatCompletion, route: str, headers: Mapping[str, str] | None
) -> ChatResponse:
    """A ``ChatCompletion`` as a neutral reply (first choice only).

    A body without a chat completion's shape raises ``ProviderUnavailable`` naming the
    field that is wrong: the attempt failed, and is retried or failed over.
    """
    with reading(route):
        return _response(completion, route, headers)


def _response(completion: Any, route: str, headers: Mapping[str, str] | None) -> ChatResponse:
    node(completion, "body")
    choices = items(completion, "choices", "body")
    if not choices:
        raise ProviderUnavailable(f"{route}: the reply had no choices", provider=route)
    choice = node(choices[0], "choices[0]")
    message = get(choice, "message")
    if message is None:
        raise Malformed("choices[0].message is missing")
    node(message, "choices[0].message")
    raw_finish = text(choice, "finish_reason", "choices[0]")
    content = text(message, "content", "choices[0].message")
    calls = _tool_calls(message, "choices[0].message")
    refusal = _refusal(text(message, "refusal", "choices[0].message"))
    return ChatResponse(
        content=content or "",
        provider=route,
        model=text(completion, "model", "body") or "",
        tool_calls=calls,
        usage=_usage(completion, "body"),
        finish_reason="refusal" if refusal is not None else finish_reason(raw_finish),
        metadata={"raw_finish_reason": raw_finish, "id": text(completion, "id", "body")},
        rate_limit_headers=rate_limit_headers(headers),
        refusal=refusal,
    )


def _refusal(value: object) -> str | None:
    """OpenAI's refusal text; OpenAI reports a refusal with ``finish_reason: "stop"``, so
    the text itself is the sign."""
    return value if isinstance(value, str) and value else None


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class OpenAIStreamState:
    """Turns ``ChatCompletionChunk``s into neutral chunks.

    Text is passed on as it arrives; tool calls are assembled from their deltas and
    emitted once, complete, with usage on the last chunk. A stream that ends before any
    choice reported a finish reason was cut: :meth:`finish` raises.
    """

    route: str
    model: str = ""
    _finish: str | None = None
    _usage: Usage | None = None
    _calls: dict[int, _PartialCall] = field(default_factory=dict)
    _refused: bool = False

    def feed(self, event: ChatCompletionChunk) -> list[ChatChunk]:
        with reading(self.route):
            return self._feed(event)

    def _feed(self, event: Any) -> list[ChatChunk]:
        node(event, "event")
        self.model = text(event, "model", "event") or self.model
        usage = _usage(event, "event")
        self._usage = usage or self._usage
        out: list[ChatChunk] = []
        for choice in items(event, "choices", "event")[:1]:
            node(choice, "choices[0]")
            delta = optional_node(choice, "delta", "choices[0]")
            path = "choices[0].delta"
            for position, call in enumerate(items(delta, "tool_calls", path) if delta else ()):
                self._delta(node(call, f"{path}.tool_calls[{position}]"), position)
            piece = (text(delta, "content", path) or "") if delta is not None else ""
            if piece:
                out.append(ChatChunk(delta=piece, provider=self.route, model=self.model))
            refusal = _refusal(text(delta, "refusal", path)) if delta is not None else None
            if refusal is not None:
                self._refused = True
                out.append(ChatChunk(refusal=refusal, provider=self.route, model=self.model))
            raw_finish = text(choice, "finish_reason", "choices[0]")
            if raw_finish is not None:
                self._finish = raw_finish
        return out

    def _delta(self, call: Any, position: int) -> None:
        where = f"choices[0].delta.tool_calls[{position}]"
        index = get(call, "index")
        if index is None:
            index = position  # some OpenAI-compatible servers leave it out
        elif isinstance(index, bool) or not isinstance(index, int):
            raise Malformed(f"{where}.index is not an integer")
        partial = self._calls.setdefault(index, _PartialCall())
        partial.id = text(call, "id", where) or partial.id
        function = optional_node(call, "function", where)
        if function is not None:
            partial.name = text(function, "name", f"{where}.function") or partial.name
            partial.arguments.append(text(function, "arguments", f"{where}.function") or "")

    def finish(self) -> list[ChatChunk]:
        if self._finish is None:
            raise ProviderUnavailable(
                f"{self.route}: stream ended without its terminal event", provider=self.route
            )
        for index, partial in sorted(self._calls.items()):
            if not partial.name:
                raise unavailable(self.route, Malformed(f"tool call {index} has no name"))
        calls = tuple(
            tool_call(p.id, p.name, "".join(p.arguments)) for _, p in sorted(self._calls.items())
        )
        return [
            ChatChunk(
                provider=self.route,
                model=self.model,
                tool_calls=calls,
                usage=self._usage,
                finish_reason="refusal" if self._refused else finish_reason(self._finish),
            )
        ]
