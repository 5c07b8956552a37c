"""Neutral requests as OpenAI chat-completions parameters, as pure functions.

No I/O and no SDK import at runtime: the parameters are plain dicts (what the SDK sends
as JSON), so these functions are tested on their own. Replies are read in ``reply``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...errors import ConfigurationError
from ...messages import ChatRequest, Message, ToolCall
from ...policies.capabilities import capabilities_for
from .._passthrough import passthrough
from ..base import Provider
from .parts import content_parts
from .reply import OpenAIStreamState, finish_reason, response_from_completion

__all__ = [
    "REQUEST_OPTIONS",
    "OpenAIStreamState",
    "build_params",
    "finish_reason",
    "message_to_openai",
    "response_from_completion",
]

REQUEST_OPTIONS = {"extra_headers": "headers", "extra_query": "params"}
"""Passthrough keys that are the SDK's request options rather than body fields (sent as
headers and as query parameters); ``extra_body`` is merged into the body."""

# What the adapter itself sets for a call: a passthrough key may not replace them.
_OWN = frozenset({"model", "messages", "stream", "stream_options", "timeout"})


def message_to_openai(message: Message) -> dict[str, Any]:
    """One neutral message as an OpenAI chat message dict.

    A user message with media goes as content parts; every other message as its text
    (the protocol takes text only there: ``parts.unsendable`` names media elsewhere).
    Reasoning parts are left out: chat completions take none back.
    """
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    content: Any = message.text
    if message.role == "user" and _has_media(message):
        content = content_parts(message.parts)
    out: dict[str, Any] = {"role": message.role, "content": content}
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


def _has_media(message: Message) -> bool:
    return not isinstance(message.content, str) and any(
        p.kind in ("image", "document", "audio") for p in message.content
    )


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
    """The chat-completions body for ``request``: what the SDK sends as JSON.

    ``max_tokens`` goes out as ``max_completion_tokens`` to OpenAI itself (its reasoning
    models refuse ``max_tokens``) and as ``max_tokens`` to an OpenAI-compatible
    ``base_url`` (vLLM, Ollama, Groq and older servers know only that one).
    ``parallel_tool_calls`` goes only with tools (OpenAI refuses it without), and
    ``reasoning_effort`` only to a model that reasons or is unknown to the capability
    table (OpenAI answers 400 to it on gpt-4o, gpt-4.1...), and ``"minimal"`` as ``"low"`` to
    the o-series, which has no minimal effort.

    The route's passthrough (``Provider(options=...)`` and the call's
    ``provider_options["openai"]``) is laid over what the request says, as ``model_kwargs``
    are in ``ChatOpenAI``: every key is a body field, ``extra_body``'s keys too, except
    ``extra_headers`` and ``extra_query``, kept as they are for the adapter to send as the
    SDK's request options (see :data:`REQUEST_OPTIONS`).
    """
    model = request.model or provider.model
    params: dict[str, Any] = {
        "model": model,
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
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.seed is not None:
        params["seed"] = request.seed
    if request.tools and request.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = request.parallel_tool_calls
    if request.reasoning_effort is not None and (
        capabilities_for(model, provider.capabilities).reasoning is not False
    ):
        params["reasoning_effort"] = _effort(model, request.reasoning_effort)
    _lay_over(params, passthrough(provider, request))
    return params


def _effort(model: str, effort: str) -> str:
    # The o-series takes low, medium and high only; "minimal" came with gpt-5.
    name = model.lower().rsplit("/", 1)[-1]
    if effort == "minimal" and name[:2] in ("o1", "o3", "o4"):
        return "low"
    return effort


def _lay_over(params: dict[str, Any], extra: dict[str, Any]) -> None:
    given = extra.pop("extra_body", None) or {}
    if not isinstance(given, Mapping):
        raise ConfigurationError(f"OpenAI route option extra_body must be a dict, got {given!r}")
    clash = sorted(_OWN.intersection(extra).union(_OWN.intersection(given)))
    if clash:
        raise ConfigurationError(
            f"OpenAI route options may not set {clash}: the adapter sends them itself"
        )
    for key in REQUEST_OPTIONS:
        value = extra.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise ConfigurationError(f"OpenAI route option {key} must be a dict, got {value!r}")
    params.update(extra)
    # As the SDK's extra_body: over the named fields.
    params.update(given)
