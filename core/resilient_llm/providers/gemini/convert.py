"""Neutral request/response <-> Gemini ``generateContent`` (google-genai), as pure functions.

Contents and config are plain dicts in the SDK's snake_case field names, which its
pydantic models validate at call time; that keeps these functions free of SDK imports
and of the differences between google-genai 2.x and 3.x. Responses are read by attribute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import ProviderUnavailable
from ...messages import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
from .._shape import Malformed, count, get, items, node, optional_node, reading, text
from .._tool_calls import object_arguments, tool_call
from ..base import Provider, rate_limit_headers

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
    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text)
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
                        "response": _response_object(message.text),
                    }
                }
            )
        else:
            if message.text or not message.tool_calls:
                parts.append({"text": message.text})
            for call in message.tool_calls if message.role == "assistant" else ():
                names[call.id] = call.name
                parts.append(
                    {
                        "function_call": {
                            "id": call.id,
                            "name": call.name,
                            "args": object_arguments(call, "gemini"),
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
    path = "usageMetadata"
    node(metadata, path)
    output = count(metadata, "candidates_token_count", path) + count(
        metadata, "thoughts_token_count", path
    )
    return Usage(count(metadata, "prompt_token_count", path), output)


def _parts(response: Any) -> tuple[list[str], list[ToolCall], str | None, bool]:
    """Text pieces, function calls and the raw finish reason of the first candidate, and
    whether there was a candidate at all."""
    candidates = items(response, "candidates", "body")
    if not candidates:
        return [], [], None, False
    candidate = node(candidates[0], "candidates[0]")
    texts: list[str] = []
    calls: list[ToolCall] = []
    content = optional_node(candidate, "content", "candidates[0]")
    for index, part in enumerate(items(content, "parts", "candidates[0].content")):
        path = f"candidates[0].content.parts[{index}]"
        node(part, path)
        if get(part, "thought"):
            continue  # the model's reasoning summary is not the reply
        call = optional_node(part, "function_call", path)
        if call is not None:
            calls.append(_call(call, f"{path}.functionCall"))
        else:
            piece = text(part, "text", path)
            if piece:
                texts.append(piece)
    return texts, calls, _raw_reason(get(candidate, "finish_reason")), True


def _call(call: Any, path: str) -> ToolCall:
    name = text(call, "name", path, required=True)
    if not name:
        raise Malformed(f"{path}.name is empty")
    call_id = text(call, "id", path) or f"call_{name}"
    return tool_call(call_id, name, get(call, "args"), decoded=True)


def _block_reason(response: Any) -> str | None:
    """Why the prompt itself was blocked (``promptFeedback.blockReason``), if it was."""
    feedback = optional_node(response, "prompt_feedback", "body")
    return None if feedback is None else _raw_reason(get(feedback, "block_reason"))


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
    prompt blocked before any candidate (``promptFeedback.blockReason``, also kept as
    ``metadata["block_reason"]``) is a refusal. Any other reply without a candidate, or
    whose candidate has no finish reason, is not a reply: ``ProviderUnavailable`` naming
    what is missing (a failed attempt).
    """
    with reading(route):
        return _response(response, route, fallback_model, headers)


def _response(
    response: Any, route: str, fallback_model: str, headers: Mapping[str, str] | None
) -> ChatResponse:
    node(response, "body")
    texts, calls, raw, found = _parts(response)
    blocked = _block_reason(response)
    metadata: dict[str, Any] = {"raw_finish_reason": raw}
    if not found and blocked is None:
        raise Malformed("the reply had no candidates")
    if found and raw is None:
        raise Malformed("candidates[0].finishReason is missing")
    if not found:
        metadata["block_reason"] = blocked
    refusal = refusal_reason(raw, blocked)
    finish = "refusal" if refusal is not None else finish_reason(raw, bool(calls))
    return ChatResponse(
        content="".join(texts),
        provider=route,
        model=text(response, "model_version", "body") or fallback_model,
        tool_calls=_unique_ids(calls),
        usage=_usage(get(response, "usage_metadata")),
        finish_reason=finish,
        metadata=metadata,
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
        out.append(replace(call, id=call_id))
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
        with reading(self.route):
            return self._feed(node(event, "event"))

    def _feed(self, event: Any) -> list[ChatChunk]:
        self.model = text(event, "model_version", "event") or self.model
        usage = _usage(get(event, "usage_metadata"))
        self._usage = usage or self._usage
        texts, calls, raw, _ = _parts(event)
        self._calls.extend(calls)
        if raw is not None and raw not in _NOT_TERMINAL:
            self._raw = raw
        blocked = _block_reason(event)
        if blocked is not None:
            self._blocked = blocked
        piece = "".join(texts)
        return [ChatChunk(delta=piece, provider=self.route, model=self.model)] if piece else []

    def finish(self) -> list[ChatChunk]:
        if self._raw is None and self._blocked is None:
            raise ProviderUnavailable(
                f"{self.route}: stream ended without its terminal event", provider=self.route
            )
        calls = _unique_ids(self._calls)
        refusal = refusal_reason(self._raw, self._blocked)
        finish = "refusal" if refusal is not None else finish_reason(self._raw, bool(calls))
        blocked = {"block_reason": self._blocked} if self._raw is None else {}
        return [
            ChatChunk(
                provider=self.route,
                model=self.model,
                tool_calls=calls,
                usage=self._usage,
                finish_reason=finish,
                refusal=refusal,
                metadata=blocked,
            )
        ]
