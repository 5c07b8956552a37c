"""Neutral request/response <-> OpenAI chat completions, as pure functions.

No I/O and no SDK import at runtime: the parameters are plain dicts (what the SDK sends
as JSON) and responses are read by attribute, so these functions are tested on their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ProviderUnavailable
from ..messages import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
from ._common import loads_arguments
from .base import Provider, rate_limit_headers

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
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name and message.role in ("user", "system"):
        out["name"] = message.name
    if message.role == "assistant" and message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
            }
            for call in message.tool_calls
        ]
        if not message.content:
            out["content"] = None
    return out


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


def _tool_calls(raw: Iterable[Any] | None) -> tuple[ToolCall, ...]:
    calls = []
    for call in raw or ():
        function = getattr(call, "function", None)
        if function is None:  # a custom (non-function) tool call: not ours to represent
            continue
        calls.append(
            ToolCall(
                id=call.id or "",
                name=function.name,
                arguments=loads_arguments(function.arguments),
            )
        )
    return tuple(calls)


def response_from_completion(
    completion: ChatCompletion, route: str, headers: Mapping[str, str] | None
) -> ChatResponse:
    """A ``ChatCompletion`` as a neutral reply (first choice only)."""
    if not completion.choices:
        raise ProviderUnavailable(f"{route}: the reply had no choices", provider=route)
    choice = completion.choices[0]
    usage = completion.usage
    raw_finish = choice.finish_reason
    refusal = _refusal(getattr(choice.message, "refusal", None))
    return ChatResponse(
        content=choice.message.content or "",
        provider=route,
        model=completion.model,
        tool_calls=_tool_calls(choice.message.tool_calls),
        usage=None if usage is None else Usage(usage.prompt_tokens, usage.completion_tokens),
        finish_reason="refusal" if refusal is not None else finish_reason(raw_finish),
        metadata={"raw_finish_reason": raw_finish, "id": completion.id},
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
        self.model = event.model or self.model
        if event.usage is not None:
            self._usage = Usage(event.usage.prompt_tokens, event.usage.completion_tokens)
        out: list[ChatChunk] = []
        for choice in event.choices[:1] if event.choices else ():
            delta = choice.delta
            for call in (delta.tool_calls or ()) if delta is not None else ():
                partial = self._calls.setdefault(call.index, _PartialCall())
                partial.id = call.id or partial.id
                if call.function is not None:
                    partial.name = call.function.name or partial.name
                    partial.arguments.append(call.function.arguments or "")
            text = (delta.content or "") if delta is not None else ""
            if text:
                out.append(ChatChunk(delta=text, provider=self.route, model=self.model))
            refusal = _refusal(getattr(delta, "refusal", None))
            if refusal is not None:
                self._refused = True
                out.append(ChatChunk(refusal=refusal, provider=self.route, model=self.model))
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
        return out

    def finish(self) -> list[ChatChunk]:
        if self._finish is None:
            raise ProviderUnavailable(
                f"{self.route}: stream ended without its terminal event", provider=self.route
            )
        calls = tuple(
            ToolCall(id=p.id, name=p.name, arguments=loads_arguments("".join(p.arguments)))
            for _, p in sorted(self._calls.items())
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
