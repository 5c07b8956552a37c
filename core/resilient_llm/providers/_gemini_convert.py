"""Neutral request/response <-> Gemini ``generateContent`` (google-genai), as pure functions.

Contents and config are plain dicts in the SDK's snake_case field names, which its
pydantic models validate at call time; that keeps these functions free of SDK imports
and of the differences between google-genai 2.x and 3.x. Responses are read by attribute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProviderUnavailable
from ..messages import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
from ._common import loads_arguments
from .base import Provider, rate_limit_headers

__all__ = [
    "GeminiStreamState",
    "build_config",
    "build_contents",
    "finish_reason",
    "refusal_reason",
    "response_from_generate",
]

# Every reason by which Gemini withholds or cuts a reply for its content is a refusal: the
# model's answer is that it will not answer.
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "IMAGE_SAFETY": "refusal",
    "IMAGE_PROHIBITED_CONTENT": "refusal",
    "IMAGE_RECITATION": "refusal",
    "MODEL_ARMOR": "refusal",
    "LANGUAGE": "refusal",
}
# Reasons that do not end a reply: the stream must go on to a real one.
_NOT_TERMINAL = frozenset({"FINISH_REASON_UNSPECIFIED", "CONTINUATION"})


def _raw_reason(value: object) -> str | None:
    """The finish reason's name: the SDK gives an enum (a str subclass) or a str."""
    if value is None:
        return None
    name = getattr(value, "value", value)
    return str(name) if name else None


def finish_reason(raw: str | None, has_calls: bool = False) -> str | None:
    """Gemini's finish reason, normalised; ``STOP`` with function calls is ``tool_calls``."""
    if raw is None:
        return None
    normal = _FINISH.get(raw, "stop")
    return "tool_calls" if has_calls and normal == "stop" else normal


def _response_object(content: str) -> dict[str, Any]:
    """A tool result as the object ``functionResponse.response`` must be."""
    try:
        value = json.loads(content)
    except ValueError:
        return {"result": content}
    return dict(value) if isinstance(value, Mapping) else {"result": value}


def build_contents(messages: tuple[Message, ...]) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system_instruction, contents)``; roles ``user``/``model``.

    A tool result becomes a ``function_response`` part of a user turn, named after the
    assistant's earlier call with the same id (Gemini matches responses by name);
    consecutive turns of one role merge, so parallel results answer their calls together.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if message.role == "system":
            continue
        if message.role == "tool":
            call_id = message.tool_call_id or ""
            name = names.get(call_id) or message.name or call_id
            parts.append(
                {
                    "function_response": {
                        "id": call_id,
                        "name": name,
                        "response": _response_object(message.content),
                    }
                }
            )
        else:
            if message.content or not message.tool_calls:
                parts.append({"text": message.content})
            for call in message.tool_calls if message.role == "assistant" else ():
                names[call.id] = call.name
                parts.append(
                    {
                        "function_call": {
                            "id": call.id,
                            "name": call.name,
                            "args": dict(call.arguments),
                        }
                    }
                )
        role = "model" if message.role == "assistant" else "user"
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return (system or None), out


def _tool_config(choice: str | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if choice in modes:
        return {"function_calling_config": {"mode": modes[choice]}}
    return {"function_calling_config": {"mode": "ANY", "allowed_function_names": [choice]}}


def build_config(
    request: ChatRequest, system: str | None, http_options: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``GenerateContentConfig`` (as a dict) for ``request``.

    The SDK's automatic function calling is off: tools are only declared, and the
    caller runs them.
    """
    config: dict[str, Any] = {
        "http_options": dict(http_options),
        "automatic_function_calling": {"disable": True},
    }
    if system is not None:
        config["system_instruction"] = system
    if request.tools:
        config["tools"] = [
            {
                "function_declarations": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "parameters_json_schema": dict(t.parameters),
                    }
                    for t in request.tools
                ]
            }
        ]
        tool_config = _tool_config(request.tool_choice)
        if tool_config is not None:
            config["tool_config"] = tool_config
    if request.response_schema is not None:
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = dict(request.response_schema)
    elif request.json_mode:
        config["response_mime_type"] = "application/json"
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.max_tokens is not None:
        config["max_output_tokens"] = request.max_tokens
    if request.stop:
        config["stop_sequences"] = list(request.stop)
    return config


def model_name(request: ChatRequest, provider: Provider) -> str:
    return request.model or provider.model


def _usage(metadata: Any) -> Usage | None:
    if metadata is None:
        return None
    output = (getattr(metadata, "candidates_token_count", None) or 0) + (
        getattr(metadata, "thoughts_token_count", None) or 0
    )
    return Usage(getattr(metadata, "prompt_token_count", None) or 0, output)


def _parts(response: Any) -> tuple[list[str], list[ToolCall], str | None]:
    """Text pieces, function calls and the raw finish reason of the first candidate."""
    candidates = getattr(response, "candidates", None) or ()
    if not candidates:
        return [], [], None
    candidate = candidates[0]
    texts: list[str] = []
    calls: list[ToolCall] = []
    content = getattr(candidate, "content", None)
    for part in getattr(content, "parts", None) or ():
        if getattr(part, "thought", None):
            continue  # the model's reasoning summary is not the reply
        call = getattr(part, "function_call", None)
        if call is not None:
            calls.append(
                ToolCall(
                    id=call.id or f"call_{call.name}",
                    name=call.name or "",
                    arguments=loads_arguments(call.args),
                )
            )
        elif getattr(part, "text", None):
            texts.append(part.text)
    return texts, calls, _raw_reason(getattr(candidate, "finish_reason", None))


def _block_reason(response: Any) -> str | None:
    """Why the prompt itself was blocked (``promptFeedback.blockReason``), if it was."""
    feedback = getattr(response, "prompt_feedback", None)
    return _raw_reason(getattr(feedback, "block_reason", None))


def refusal_reason(raw: str | None, blocked: str | None) -> str | None:
    """``"blocked: SAFETY"`` for a withheld reply or a blocked prompt; None otherwise."""
    if raw is not None and _FINISH.get(raw) == "refusal":
        return f"blocked: {raw}"
    if raw is None and blocked is not None:
        return f"blocked: {blocked}"
    return None


def response_from_generate(
    response: Any, route: str, fallback_model: str, headers: Mapping[str, str] | None
) -> ChatResponse:
    """A ``GenerateContentResponse`` as a neutral reply (first candidate only).

    A reply withheld by the safety filters (``finishReason: SAFETY`` and the like) or a
    prompt blocked before any candidate (``promptFeedback.blockReason``) is a refusal.
    """
    texts, calls, raw = _parts(response)
    refusal = refusal_reason(raw, _block_reason(response))
    finish = "refusal" if refusal is not None else finish_reason(raw, bool(calls))
    return ChatResponse(
        content="".join(texts),
        provider=route,
        model=getattr(response, "model_version", None) or fallback_model,
        tool_calls=_unique_ids(calls),
        usage=_usage(getattr(response, "usage_metadata", None)),
        finish_reason=finish,
        metadata={"raw_finish_reason": raw},
        rate_limit_headers=rate_limit_headers(headers),
        refusal=refusal,
    )


def _unique_ids(calls: list[ToolCall]) -> tuple[ToolCall, ...]:
    """Calls with ids unique in the reply (Gemini may omit ids; we derive them)."""
    seen: set[str] = set()
    out: list[ToolCall] = []
    for index, call in enumerate(calls):
        call_id = call.id
        if call_id in seen:
            call_id = f"{call_id}_{index}"
        seen.add(call_id)
        out.append(ToolCall(id=call_id, name=call.name, arguments=call.arguments))
    return tuple(out)


@dataclass
class GeminiStreamState:
    """Turns streamed ``GenerateContentResponse``s into neutral chunks.

    Text passes on as it arrives; function calls (which Gemini sends whole) are emitted
    once at the end with the usage. A stream in which no candidate reported a terminal
    finish reason was cut: :meth:`finish` raises.
    """

    route: str
    model: str
    _raw: str | None = None
    _blocked: str | None = None
    _usage: Usage | None = None
    _calls: list[ToolCall] = field(default_factory=list)

    def feed(self, event: Any) -> list[ChatChunk]:
        self.model = getattr(event, "model_version", None) or self.model
        usage = _usage(getattr(event, "usage_metadata", None))
        self._usage = usage or self._usage
        texts, calls, raw = _parts(event)
        self._calls.extend(calls)
        if raw is not None and raw not in _NOT_TERMINAL:
            self._raw = raw
        self._blocked = _block_reason(event) or self._blocked
        text = "".join(texts)
        return [ChatChunk(delta=text, provider=self.route, model=self.model)] if text else []

    def finish(self) -> list[ChatChunk]:
        if self._raw is None and self._blocked is None:
            raise ProviderUnavailable(
                f"{self.route}: stream ended without its terminal event", provider=self.route
            )
        calls = _unique_ids(self._calls)
        refusal = refusal_reason(self._raw, self._blocked)
        finish = "refusal" if refusal is not None else finish_reason(self._raw, bool(calls))
        return [
            ChatChunk(
                provider=self.route,
                model=self.model,
                tool_calls=calls,
                usage=self._usage,
                finish_reason=finish,
                refusal=refusal,
            )
        ]
