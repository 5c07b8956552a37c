"""Neutral requests as Gemini ``generateContent`` arguments (google-genai), as pure functions.

Contents and config are plain dicts in the SDK's snake_case field names, which its
pydantic models validate at call time; that keeps these functions free of SDK imports
and of the differences between google-genai 2.x and 3.x. Replies: :mod:`.reply`.

What a Gemini route receives (the README's table): ``temperature``, ``top_p``, ``seed``,
``stop`` (``stop_sequences``), ``max_tokens`` (``max_output_tokens``) as they are;
``reasoning_effort`` as a ``thinking_config`` with ``include_thoughts`` (see
:func:`thinking_config`), to models whose capabilities do not say they cannot reason;
``parallel_tool_calls`` is not sent (Gemini has no such switch and may call several
functions in one reply); the route's passthrough parameters last, over all of these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...content import Audio, Document, Image, Reasoning, Text
from ...messages import ChatRequest, Message, ReasoningEffort
from .._tool_calls import object_arguments
from ..base import Provider
from .parts import (
    FAMILY,
    SKIP_SIGNATURE,
    function_response_media,
    is_gemini_3,
    media_part,
    signature_bytes,
)

__all__ = ["build_config", "build_contents", "model_name", "thinking_config"]

_Part = dict[str, Any]


def _response_object(content: str) -> dict[str, Any]:
    """A tool result as the object ``functionResponse.response`` must be."""
    try:
        value = json.loads(content)
    except ValueError:
        return {"result": content}
    return dict(value) if isinstance(value, Mapping) else {"result": value}


def _signed(part: _Part, signature: str | None) -> _Part:
    raw = None if signature is None else signature_bytes(signature)
    if raw:
        part["thought_signature"] = raw
    return part


def _assistant_parts(message: Message, names: dict[str, str]) -> list[_Part]:
    """Thought parts, text and function calls, with Gemini's own signatures where they
    came: a thought's on its part, a signature-only reasoning's on the text after it, a
    call's on its ``function_call``. Reasoning of other families is left out."""
    parts: list[_Part] = []
    pending: str | None = None
    for part in message.parts:
        if isinstance(part, Reasoning):
            if part.family != FAMILY:
                continue
            if part.text:
                parts.append(_signed({"text": part.text, "thought": True}, part.signature))
            elif part.signature is not None:
                if pending is not None:
                    parts.append(_signed({"text": ""}, pending))
                pending = part.signature
        elif isinstance(part, Text):
            parts.append(_signed({"text": part.text}, pending))
            pending = None
    if pending is not None:
        parts.append(_signed({"text": ""}, pending))
    if not parts and not message.tool_calls:
        parts.append({"text": ""})
    for call in message.tool_calls:
        names[call.id] = call.name
        fc = {"id": call.id, "name": call.name, "args": object_arguments(call, FAMILY)}
        mine = call.signature if call.family == FAMILY else None
        parts.append(_signed({"function_call": fc}, mine))
    return parts


def _user_parts(message: Message) -> list[_Part]:
    parts: list[_Part] = []
    for part in message.parts:
        if isinstance(part, Text):
            parts.append({"text": part.text})
        elif isinstance(part, Image | Document | Audio):
            parts.append(media_part(part))
    return parts or [{"text": ""}]


def _tool_parts(message: Message, names: dict[str, str], gemini_3: bool) -> list[_Part]:
    """A tool result: its ``function_response`` (named after the call it answers, as
    Gemini matches them by name), then any media it held. A Gemini 3 model takes image,
    PDF and text bytes in the response's own ``parts``; the rest follows it in the same
    user turn."""
    call_id = message.tool_call_id or ""
    response: dict[str, Any] = {
        "id": call_id,
        "name": names.get(call_id) or message.name or call_id,
        "response": _response_object(message.text),
    }
    inner: list[_Part] = []
    beside: list[_Part] = []
    for part in message.parts:
        if isinstance(part, Image | Document | Audio):
            held = function_response_media(part) if gemini_3 else None
            if held is not None:
                inner.append(held)
            else:
                beside.append(media_part(part))
    if inner:
        response["parts"] = inner
    return [{"function_response": response}, *beside]


def _skip_unsigned_calls(contents: list[dict[str, Any]]) -> None:
    """Gemini 3 answers 400 when the first function call of a model turn has no
    signature; history it did not write (another family's turns) gets Google's
    documented placeholder there, so a failover mid-conversation goes through."""
    for content in contents:
        if content["role"] != "model":
            continue
        first = next((p for p in content["parts"] if "function_call" in p), None)
        if first is not None and "thought_signature" not in first:
            first["thought_signature"] = SKIP_SIGNATURE


def build_contents(
    messages: tuple[Message, ...], model: str = ""
) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system_instruction, contents)``; roles ``user``/``model``.

    Consecutive turns of one role merge, so parallel results answer their calls
    together. ``model`` decides the Gemini 3 forms (media inside function responses,
    placeholder signatures on calls it did not make).
    """
    gemini_3 = is_gemini_3(model)
    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text)
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            parts = _tool_parts(message, names, gemini_3)
        elif message.role == "assistant":
            parts = _assistant_parts(message, names)
        else:
            parts = _user_parts(message)
        role = "model" if message.role == "assistant" else "user"
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    if gemini_3:
        _skip_unsigned_calls(out)
    return (system or None), out


# Gemini 2.5's thinking budgets (tokens) for each effort; "minimal" turns thinking off
# where the model allows it (Flash, Flash-Lite) and is Pro's floor (128) there.
_BUDGETS: dict[str, int] = {"minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
_PRO_FLOOR = 128


def thinking_config(effort: ReasoningEffort, model: str) -> dict[str, Any]:
    """``reasoning_effort`` as Gemini's ``thinking_config``, thoughts summarised back.

    Gemini 3: ``thinking_level`` of the same name, except that Pro models have no
    ``MINIMAL`` (sent as ``LOW``) and ``gemini-3-pro`` no ``MEDIUM`` (sent as ``HIGH``).
    Other models: ``thinking_budget`` 0 / 1024 / 8192 / 24576 tokens for minimal / low /
    medium / high (128 for minimal on Pro, which cannot stop thinking).
    """
    name = model.lower().rsplit("/", 1)[-1]
    pro = "-pro" in name
    config: dict[str, Any] = {"include_thoughts": True}
    if is_gemini_3(name):
        level = effort.upper()
        if pro and level == "MINIMAL":
            level = "LOW"
        if name.startswith("gemini-3-pro") and level == "MEDIUM":
            level = "HIGH"
        config["thinking_level"] = level
    else:
        budget = _BUDGETS[effort]
        config["thinking_budget"] = max(budget, _PRO_FLOOR) if pro else budget
    return config


def _tool_config(choice: str | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if choice in modes:
        return {"function_calling_config": {"mode": modes[choice]}}
    return {"function_calling_config": {"mode": "ANY", "allowed_function_names": [choice]}}


def build_config(
    request: ChatRequest,
    system: str | None,
    http_options: Mapping[str, Any],
    *,
    model: str = "",
    reasoning: bool | None = None,
    passthrough: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``GenerateContentConfig`` (as a dict) for ``request``.

    The SDK's automatic function calling is off: tools are only declared, and the
    caller runs them. ``reasoning`` is the model's capability (False: no thinking
    config is sent); ``passthrough`` (GenerateContentConfig fields) goes over the rest.
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
    sampling = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "max_output_tokens": request.max_tokens,
    }
    config.update({k: v for k, v in sampling.items() if v is not None})
    if request.stop:
        config["stop_sequences"] = list(request.stop)
    if request.reasoning_effort is not None and reasoning is not False:
        config["thinking_config"] = thinking_config(request.reasoning_effort, model)
    config.update(passthrough or {})
    return config


def model_name(request: ChatRequest, provider: Provider) -> str:
    return request.model or provider.model
